"""Networks not in the tests: torchvision's architectures, exported by both PyTorch exporters,
run by `sweep` against onnxruntime on the same file (called by scripts/check-torchvision).

Per architecture (random weights, batch norms given non-trivial statistics, 10 classes, eval
mode) and export (the default exporter as the README shows it, with one example image and so a
fixed batch of 1; the default exporter with a dynamic batch; TorchScript with a dynamic batch): onnxruntime's argmax on 32 random 8-bit images is
written as the labels of an .npz dataset, so `sweep eval` must report accuracy 1 and
onnxruntime's cross-entropy loss. With --masks, a zeroing sweep (`sweep run`) of each fixed-batch
export must give, for every zeroKernel unit, the accuracy onnxruntime gives on a copy of the
file whose weight is zero (bias and batch norm kept). Prints one line per export and exits 1 on
any mismatch; an export the exporter itself refuses is listed, not counted.

Usage: check_torchvision.py SWEEP WORKDIR [--models a,b,...] [--size N] [--masks a,b,...]
"""
import argparse, csv, json, os, subprocess, sys
import numpy as np
import torch

# torchvision's compiled operators (nms, roi_align) do not load against the CPU torch wheel;
# classification models never call them, so their fake-tensor registrations are skipped.
torch.library.register_fake = lambda *a, **k: (lambda f: f)
import torchvision.models as tvm  # noqa: E402
import onnx, onnx.numpy_helper as nh, onnxruntime as ort  # noqa: E402

DEFAULT = ("resnet18,resnet50,resnext50_32x4d,mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large,efficientnet_b0,"
           "densenet121,googlenet,mnasnet0_5,regnet_y_400mf,shufflenet_v2_x0_5,squeezenet1_1,vgg11_bn,vgg16,alexnet,convnext_tiny")
MEAN, STD, IMAGES = 0.5, 0.25, 32

p = argparse.ArgumentParser()
p.add_argument("sweep"); p.add_argument("workdir")
p.add_argument("--models", default=DEFAULT); p.add_argument("--size", type=int, default=64)
p.add_argument("--masks", default="mobilenet_v3_small,efficientnet_b0,googlenet,regnet_y_400mf,densenet121")
args = p.parse_args()
os.makedirs(args.workdir, exist_ok=True)
rng = np.random.default_rng(0)
x8 = rng.integers(0, 256, size=(IMAGES, args.size, args.size, 3), dtype=np.uint8)
x = ((x8.astype(np.float32) / 255 - MEAN) / STD).transpose(0, 3, 1, 2).copy()
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def ort_logits(model):
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name, batch = s.get_inputs()[0].name, s.get_inputs()[0].shape[0]
    if isinstance(batch, int):  # a fixed-batch export: onnxruntime takes its images one at a time
        return np.concatenate([s.run(None, {name: x[i:i + batch]})[0] for i in range(0, IMAGES, batch)])
    return s.run(None, {name: x})[0]


def export(name, way, path):
    torch.manual_seed(0)
    kw = {"num_classes": 10}
    if name in ("googlenet", "inception_v3"):
        kw.update(aux_logits=False, init_weights=True)
    m = tvm.get_model(name, **kw)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
    m.eval()
    one = (torch.from_numpy(x[:1]),)
    if way == "dynamo":
        torch.onnx.export(m, one, path, dynamo=True)
    elif way == "dynamo-batch":
        torch.onnx.export(m, one, path, dynamo=True, input_names=["x"], dynamic_shapes=({0: torch.export.Dim("n")},))
    else:
        torch.onnx.export(m, one, path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})


failures, refused, lines = 0, [], []
for name in args.models.split(","):
    for way in ("dynamo", "dynamo-batch", "torchscript"):
        base = os.path.join(args.workdir, f"{name}-{way}")
        try:
            export(name, way, base + ".onnx")
        except Exception as e:  # the exporter's own refusal: not ours to count
            refused.append(f"{name} ({way}): {str(e).splitlines()[0][:120]}")
            continue
        logits = ort_logits(base + ".onnx").astype(np.float64)
        labels = logits.argmax(1)
        shifted = logits - logits.max(1, keepdims=True)
        loss = -(shifted[np.arange(IMAGES), labels] - np.log(np.exp(shifted).sum(1))).mean()
        # Every class in the training split, so the dataset has the network's 10 classes.
        np.savez(base + ".npz", x_train=x8, y_train=np.arange(IMAGES) % 10, x_test=x8, y_test=labels)
        r = subprocess.run([args.sweep, "eval", base + ".onnx", "--dataset", base + ".npz", "--mean", "0.5,0.5,0.5",
                            "--std", "0.25,0.25,0.25"], capture_output=True, text=True, env=env)
        out = (r.stdout + r.stderr).strip().splitlines()[-1] if (r.stdout + r.stderr).strip() else ""
        ok = r.returncode == 0 and "test accuracy 1.0000" in out and f"test loss {loss:.4f}" in out.replace("-0.0000", "0.0000")
        if way == "dynamo" and "exported with a fixed batch of 1 and runs on no other" in out:
            refused.append(f"{name} ({way}): layersweep cannot follow its fixed batch and says to export with dynamic_shapes")
            continue
        failures += not ok
        lines.append(f"{'ok  ' if ok else 'FAIL'} {name:20} {way:12} onnxruntime loss {loss:.4f} | {out[:200]}")
        print(lines[-1], flush=True)
        if way != "dynamo" or name not in args.masks.split(",") or not ok:
            continue
        units = json.loads(subprocess.run([args.sweep, "layers", base + ".onnx", "--json"], capture_output=True, text=True,
                                          check=True).stdout)
        spec = base + ".yaml"
        with open(spec, "w") as f:
            f.write(f"name: tv-{name}\nstudy: zeroing\n"
                    f"datasets: [{{name: tv, format: npz, train: {base}.npz, test: {base}.npz, "
                    f"normalization: {{mean: [{MEAN}, {MEAN}, {MEAN}], std: [{STD}, {STD}, {STD}]}}}}]\n"
                    f"models: [{{name: {name}, checkpoints: [{base}.onnx]}}]\nlayers: all\nmasks: [zeroKernel]\n"
                    f"output: {base}-run\n")
        subprocess.run([args.sweep, "run", spec], capture_output=True, text=True, env=env, check=True)
        ours = {row["layer"]: float(row["test_accuracy"]) for row in csv.DictReader(open(base + "-run/results.csv"))
                if row["mask"] == "zeroKernel"}
        model = onnx.load(base + ".onnx")
        weights = {t.name: t for t in model.graph.initializer}
        wrong = []
        for u in units:
            if u["kind"] == "branch":
                continue
            t = weights[u["name"] + ".weight"]  # the dynamo exporter names weights by module path
            kept = nh.to_array(t).copy()
            t.CopyFrom(nh.from_array(np.zeros_like(kept), t.name))
            theirs = float((ort_logits(model.SerializeToString()).argmax(1) == labels).mean())
            t.CopyFrom(nh.from_array(kept, t.name))
            if ours.get(u["name"]) != theirs:
                wrong.append(f"{u['name']}: {ours.get(u['name'])} vs {theirs}")
        failures += bool(wrong)
        lines.append(f"{'ok  ' if not wrong else 'FAIL'} {name:20} zeroKernel on {len(ours)} units: "
                     f"{len(ours) - len(wrong)} give onnxruntime's masked accuracy {'; '.join(wrong[:3])}")
        print(lines[-1], flush=True)
for r in refused:
    print(f"refused: {r}")
print(f"check-torchvision: {sum(l.startswith('ok') for l in lines)} ok, {failures} failed, {len(refused)} exports refused (listed above)")
sys.exit(1 if failures else 0)
