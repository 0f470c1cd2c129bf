"""Writes a CIFAR-style ResNet with PyTorch's names, a tiny IDX dataset and the reference answers.

Usage: pytorch_resnet.py OUT_DIR [A|B]

With torch installed, the network is a torch nn.Module trained for a few epochs and the reference
logits come from torch in eval mode. Without torch, the weights are drawn at random, the labels are
the network's own predictions (so that accuracy and mask deltas mean something), and the reference
is a NumPy forward pass. Either way OUT_DIR gets:
  net.safetensors                 the state_dict (PyTorch names, num_batches_tracked included)
  {train,t10k}-{images-idx3,labels-idx1}-ubyte   the dataset (12x12 grey images, 10 classes)
  reference.safetensors           logits of the test images (float32)
  reference.json                  {"framework", "accuracy", "masks": {"unit/mask": accuracy}}
Inputs are normalised as layersweep does: pixels / 255, then the training split's mean and
(population) standard deviation.
"""
import json
import os
import struct
import sys

import numpy as np
from safetensors.numpy import save_file

out, option = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "A")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(12)
side, classes, n_train, n_test = 12, 10, 512, 200

# Images: a class-specific pattern plus noise, as uint8.
patterns = rng.uniform(0, 255, size=(classes, side, side))
def images(labels):
    noise = rng.normal(0, 120, size=(len(labels), side, side))
    return np.clip(patterns[labels] * 0.6 + 50 + noise, 0, 255).astype(np.uint8)
train_labels = rng.integers(0, classes, n_train)
test_labels = rng.integers(0, classes, n_test)
train_images, test_images = images(train_labels), images(test_labels)

def normalise(x):
    mean = train_images.astype(np.float32).mean(dtype=np.float64) / 255
    std = np.sqrt(max((train_images.astype(np.float64) / 255) .var(), 1e-12))
    return ((x.astype(np.float32) / 255 - np.float32(mean)) * np.float32(1 / np.float32(std)))[:, None].astype(np.float32)

def conv(x, w, stride=1):
    """3x3 (or 1x1) convolution with padding k//2, NCHW, via sliding windows."""
    k = w.shape[2]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True).astype(np.float32)

calibrating = []  # non-empty: batch norms take their running statistics from the batch

def bn(x, s, name):
    if calibrating:
        s[f"{name}.running_mean"] = x.mean(axis=(0, 2, 3)).astype(np.float32)
        s[f"{name}.running_var"] = x.var(axis=(0, 2, 3)).astype(np.float32)
    g, b, m, v = (s[f"{name}.{t}"] for t in ("weight", "bias", "running_mean", "running_var"))
    inv = 1 / np.sqrt(v + 1e-5)
    return ((x - m[None, :, None, None]) * (g * inv)[None, :, None, None] + b[None, :, None, None]).astype(np.float32)

relu = lambda x: np.maximum(x, 0)

def forward(s, x, zero_branch=None, features=False):
    h = relu(bn(conv(x, s["conv1.weight"]), s, "bn1"))
    for stage, width in enumerate([16, 32, 64], start=1):
        name = f"layer{stage}.0"
        stride = 1 if stage == 1 else 2
        if stage == 1:
            skip = h
        elif option == "B":
            skip = bn(conv(h, s[f"{name}.shortcut.0.weight"], stride), s, f"{name}.shortcut.1")
        else:
            sub = h[:, :, ::2, ::2]
            pad = (width - sub.shape[1]) // 2
            skip = np.pad(sub, ((0, 0), (pad, pad), (0, 0), (0, 0)))
        if zero_branch == f"stage{stage}.block1":
            h = relu(skip)
            continue
        y = relu(bn(conv(h, s[f"{name}.conv1.weight"], stride), s, f"{name}.bn1"))
        y = bn(conv(y, s[f"{name}.conv2.weight"]), s, f"{name}.bn2")
        h = relu(y + skip)
    pooled = h.mean(axis=(2, 3))
    if features:
        return pooled
    return (pooled @ s["linear.weight"].T + s["linear.bias"]).astype(np.float32)

# Our unit names -> the PyTorch tensors a zeroKernel mask zeroes.
units = {"stem.conv": ["conv1.weight"], "fc": ["linear.weight", "linear.bias"]}
for stage in (1, 2, 3):
    for c in (1, 2):
        units[f"stage{stage}.block1.conv{c}"] = [f"layer{stage}.0.conv{c}.weight"]
    if option == "B" and stage > 1:
        units[f"stage{stage}.block1.shortcut.conv"] = [f"layer{stage}.0.shortcut.0.weight"]
branches = [f"stage{s}.block1" for s in (1, 2, 3)]

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    framework = "torch " + torch.__version__
except ImportError:
    torch = None
    framework = "numpy " + np.__version__

if torch is not None:
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.pad = cout - cin
            if stride != 1 and option == "B":
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            else:
                self.shortcut = None

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            if self.shortcut is not None:
                skip = self.shortcut(x)
            elif self.pad:
                skip = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad // 2))
            else:
                skip = x
            return F.relu(y + skip)

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.layer1 = nn.Sequential(Block(16, 16, 1))
            self.layer2 = nn.Sequential(Block(16, 32, 2))
            self.layer3 = nn.Sequential(Block(32, 64, 2))
            self.linear = nn.Linear(64, classes)

        def forward(self, x):
            h = F.relu(self.bn1(self.conv1(x)))
            h = self.layer3(self.layer2(self.layer1(h)))
            return self.linear(h.mean(dim=(2, 3)))

    model = ResNet8()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x_train, y_train = torch.from_numpy(normalise(train_images)), torch.from_numpy(train_labels)
    for epoch in range(6):
        for i in range(0, n_train, 32):
            opt.zero_grad()
            F.cross_entropy(model(x_train[i:i + 32]), y_train[i:i + 32]).backward()
            opt.step()
    model.eval()
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    def reference(zeroed=(), zero_branch=None):
        m = ResNet8()
        m.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        m.eval()
        with torch.no_grad():
            for name in zeroed:
                dict(m.named_parameters())[name].zero_()
            if zero_branch:
                block = getattr(m, f"layer{zero_branch[5]}")[0]
                block.forward = lambda x, b=block: F.relu(
                    b.shortcut(x) if b.shortcut is not None else
                    (F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, b.pad // 2, b.pad // 2)) if b.pad else x))
            return m(torch.from_numpy(normalise(test_images))).numpy()
else:
    def he(shape):
        return (rng.normal(0, 1, size=shape) * np.sqrt(2 / np.prod(shape[1:]))).astype(np.float32)
    state = {"conv1.weight": he((16, 1, 3, 3))}
    def bn_state(name, c):
        state[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        state[f"{name}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        state[f"{name}.running_mean"] = rng.normal(0, 0.2, c).astype(np.float32)
        state[f"{name}.running_var"] = rng.uniform(0.5, 2, c).astype(np.float32)
        state[f"{name}.num_batches_tracked"] = np.array(7, dtype=np.int64)
    bn_state("bn1", 16)
    for stage, (cin, cout) in enumerate([(16, 16), (16, 32), (32, 64)], start=1):
        name = f"layer{stage}.0"
        state[f"{name}.conv1.weight"] = he((cout, cin, 3, 3))
        bn_state(f"{name}.bn1", cout)
        state[f"{name}.conv2.weight"] = he((cout, cout, 3, 3))
        bn_state(f"{name}.bn2", cout)
        if option == "B" and stage > 1:
            state[f"{name}.shortcut.0.weight"] = he((cout, cin, 1, 1))
            bn_state(f"{name}.shortcut.1", cout)
    state["linear.weight"] = he((classes, 64))
    state["linear.bias"] = rng.normal(0, 0.1, classes).astype(np.float32)

    def reference(zeroed=(), zero_branch=None):
        s = dict(state)
        for name in zeroed:
            s[name] = np.zeros_like(s[name])
        return forward(s, normalise(test_images), zero_branch)

    # Batch statistics from the training images, so that random features still vary by image.
    calibrating.append(True)
    forward(state, normalise(train_images))
    calibrating.clear()
    # A head on the features' deviations from their mean: logits that vary by image.
    pooled = forward(state, normalise(train_images), features=True)
    state["linear.weight"] = (state["linear.weight"] / pooled.std(axis=0)[None, :]).astype(np.float32)
    state["linear.bias"] = (-state["linear.weight"] @ pooled.mean(axis=0)).astype(np.float32)
    # Labels the random network gets mostly right: its own predictions, a fifth replaced.
    test_labels = reference().argmax(axis=1)
    flip = rng.random(n_test) < 0.2
    test_labels[flip] = rng.integers(0, classes, flip.sum())

def write_idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for d in array.shape:
            f.write(struct.pack(">I", d))
        f.write(array.astype(np.uint8).tobytes())

write_idx(f"{out}/train-images-idx3-ubyte", train_images, 0x803)
write_idx(f"{out}/train-labels-idx1-ubyte", train_labels, 0x801)
write_idx(f"{out}/t10k-images-idx3-ubyte", test_images, 0x803)
write_idx(f"{out}/t10k-labels-idx1-ubyte", test_labels, 0x801)

save_file(state, f"{out}/net.safetensors")
logits = reference()
save_file({"logits": logits}, f"{out}/reference.safetensors")
accuracy = lambda l: float((l.argmax(axis=1) == test_labels).mean())
masks = {f"{u}/zeroKernel": accuracy(reference(zeroed=names)) for u, names in units.items()}
masks.update({f"{b}/zeroBranch": accuracy(reference(zero_branch=b)) for b in branches})
with open(f"{out}/reference.json", "w") as f:
    json.dump({"framework": framework, "accuracy": accuracy(logits), "masks": masks}, f, indent=1)
print(framework, accuracy(logits))
