"""Writes the ONNX fixtures of Tests/ONNXTests: three small CNNs of the architectures researchers
train (a torchvision-style ResNet-18, a MobileNetV2, a VGG with MaxPool and Dropout), trained
briefly on a tiny IDX dataset and exported three ways, with onnxruntime's logits and PyTorch's
masked accuracies as the reference.

Usage (torch, onnx, onnxscript and onnxruntime in a venv; scripts/setup-onnx-fixtures makes one):
    make_onnx_fixtures.py OUT_DIR

OUT_DIR gets:
  data/{train,t10k}-{images-idx3,labels-idx1}-ubyte    28x28 grey images, 10 classes (IDX)
  {arch}.onnx (+ {arch}.onnx.data)   torch.onnx.export(dynamo=True): BN folded, weights external
  {arch}-legacy.onnx                 the TorchScript exporter (opset 17), BN folded
  {arch}-bn.onnx                     the TorchScript exporter with BatchNormalization nodes kept
  {arch}.logits                      onnxruntime's logits of the test images (float32, little-endian)
  reference.json                     per arch: test accuracy, the normalisation, and for each
                                     unit (conv/linear module path, residual block path) PyTorch's
                                     test accuracy with that unit zeroed (zeroKernel) or the block's
                                     branch zeroed (zeroBranch); for conv/linear units also
                                     zeroKernelRecalibrated and half the weight pruned
                                     (unstructured/structured, each also with BN re-estimated)
Inputs are normalised as layersweep does: pixels / 255, then the training split's mean and
population standard deviation.
"""
import json
import os
import struct
import sys

import numpy as np
import onnxruntime
import torch
import torch.nn as nn

out = sys.argv[1]
os.makedirs(os.path.join(out, "data"), exist_ok=True)
torch.manual_seed(0)
rng = np.random.default_rng(7)
side, classes, n_train, n_test = 28, 10, 256, 256

# Images: a class pattern plus noise, uint8 (learnable in a few epochs, far from trivial).
patterns = rng.uniform(0, 255, size=(classes, side, side))
def images(labels):
    noise = rng.normal(0, 60, size=(len(labels), side, side))
    return np.clip(patterns[labels] * 0.6 + 50 + noise, 0, 255).astype(np.uint8)
train_labels, test_labels = rng.integers(0, classes, n_train), rng.integers(0, classes, n_test)
train_images, test_images = images(train_labels), images(test_labels)

def idx(path, array):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.ndim))
        for d in array.shape:
            f.write(struct.pack(">I", d))
        f.write(array.astype(np.uint8).tobytes())
for name, array in [("train-images-idx3-ubyte", train_images), ("train-labels-idx1-ubyte", train_labels),
                    ("t10k-images-idx3-ubyte", test_images), ("t10k-labels-idx1-ubyte", test_labels)]:
    idx(os.path.join(out, "data", name), array)

mean = np.float32(train_images.astype(np.float64).mean() / 255)
std = np.float32(np.sqrt((train_images.astype(np.float64) / 255).var()))
def normalise(x):
    return torch.from_numpy(((x.astype(np.float32) / 255 - mean) / std)[:, None].astype(np.float32))
x_train, x_test = normalise(train_images), normalise(test_images)
y_train, y_test = torch.from_numpy(train_labels), torch.from_numpy(test_labels)


# MARK: - The architectures (torchvision's structure and module names, small widths)

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.branch_enabled = True

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        if not self.branch_enabled:
            return self.relu(identity)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

class ResNet18(nn.Module):
    def __init__(self, widths=(4, 8, 16, 32)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.branch_enabled = True

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x) if self.branch_enabled else x
        return self.conv(x)

class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        # (expand, out, repeats, stride), as torchvision's table, narrowed.
        settings = [(1, 8, 1, 1), (4, 12, 2, 2), (4, 16, 2, 2), (4, 24, 1, 1)]
        features = [nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True))]
        cin = 8
        for t, c, n, s in settings:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(nn.Sequential(nn.Conv2d(cin, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))

class VGG(nn.Module):
    def __init__(self):
        super().__init__()
        cfg = [8, 8, "M", 16, 16, "M", 32, "M"]
        layers, cin = [], 1
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(32 * 3 * 3, 64), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# MARK: - Training, export, references

def accuracy(model):
    with torch.no_grad():
        return float((model(x_test).argmax(1) == y_test).float().mean())

def train(model, epochs=20):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, n_train, 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train[b]), y_train[b]).backward()
            opt.step()
    model.eval()

def masked_accuracies(model):
    """PyTorch's accuracy with each conv/linear unit zeroed (its weight; bias and BN kept) and each
    residual block's branch zeroed."""
    units = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            saved = module.weight.data.clone()
            module.weight.data.zero_()
            units.setdefault(name, {})["zeroKernel"] = accuracy(model)
            module.weight.data.copy_(saved)
        if hasattr(module, "branch_enabled") and (not isinstance(module, InvertedResidual) or module.use_res_connect):
            module.branch_enabled = False
            units.setdefault(name, {})["zeroBranch"] = accuracy(model)
            module.branch_enabled = True
    return units

def recalibrate(model):
    """PyTorch's BN re-estimation as layersweep does it: running statistics reset, momentum=None,
    only the BN layers in training mode, one pass over the whole training split as one batch."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        model(x_train)
    for m in norms:
        m.momentum = 0.1
        m.eval()

def prune(weight, fraction, structured):
    """layersweep's LayerPruning: round(fraction x entries) smallest |w| (unstructured) or
    round(fraction x filters) filters of smallest L1 norm (structured, dim 0); ties to the lower
    index; halves round up."""
    w = weight.data.view(-1) if not structured else weight.data.view(weight.shape[0], -1)
    if structured:
        norms = w.abs().double().sum(1).numpy()
        k = min(len(norms), int(fraction * len(norms) + 0.5))
        w[np.argsort(norms, kind="stable")[:k]] = 0
    else:
        k = min(w.numel(), int(fraction * w.numel() + 0.5))
        w[np.argsort(w.abs().numpy(), kind="stable")[:k]] = 0

def changed_accuracies(model, units):
    """Per conv/linear unit, PyTorch's test accuracy with the unit's weight zeroed and BN
    re-estimated (convs: zeroKernelRecalibrated) and pruned to half, alone and with BN
    re-estimated (the sensitivity study's unstructured/structured[+bn]/0.5000)."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    def restore():
        model.load_state_dict(saved)
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        entry = units.setdefault(name, {})
        if isinstance(module, nn.Conv2d):
            module.weight.data.zero_()
            recalibrate(model)
            entry["zeroKernelRecalibrated"] = accuracy(model)
            restore()
        for method in ["unstructured", "structured"]:
            prune(module.weight, 0.5, method == "structured")
            entry[method + "/0.5000"] = accuracy(model)
            recalibrate(model)
            entry[method + "+bn/0.5000"] = accuracy(model)
            restore()

reference = {"normalization": {"mean": [float(mean)], "std": [float(std)]}, "networks": {}}
for arch, make in [("resnet18", ResNet18), ("mobilenetv2", MobileNetV2), ("vgg", VGG)]:
    model = make()
    train(model)
    example = x_test[:2]
    base = os.path.join(out, arch)
    torch.onnx.export(model, (example,), base + ".onnx", dynamo=True, external_data=True,
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, input_names=["x"])
    torch.onnx.export(model, (example,), base + "-legacy.onnx", dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    torch.onnx.export(model, (example,), base + "-bn.onnx", dynamo=False, opset_version=17, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    session = onnxruntime.InferenceSession(base + ".onnx", providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: x_test.numpy()})[0].astype("<f4")
    logits.tofile(base + ".logits")
    units = masked_accuracies(model)
    changed_accuracies(model, units)
    reference["networks"][arch] = {"accuracy": accuracy(model), "units": units}
    print(f"{arch}: test accuracy {reference['networks'][arch]['accuracy']:.4f}, "
          f"{sum(p.numel() for p in model.parameters())} parameters")

with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(reference, f, indent=1, sort_keys=True)
