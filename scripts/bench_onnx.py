"""The ONNX side of `scripts/bench --onnx` and `--onnx-zeroing`: exports a ResNet-18 and a
MobileNetV2 of torchvision's widths (for 1x28x28 images, 10 classes, random weights and BN
statistics), the CIFAR ResNet-20 layersweep builds in, and a ResNet-18 trained one epoch on
10,000 Fashion-MNIST images with PyTorch's default exporter, and times onnxruntime on each (2 threads unless told, batch 128).

With `zeroing`, the way a user without layersweep would run the zeroing study on a graph: each
conv/linear weight of FILE zeroed in turn, a fresh onnxruntime session on the masked model, the
Fashion-MNIST test set (normalised as layersweep does: pixels / 255, then the training split's
mean and population standard deviation) evaluated; prints the wall time, the peak memory and
every accuracy as JSON.

Usage: bench_onnx.py OUT_DIR export
       bench_onnx.py OUT_DIR time FILE [--threads N] [--seconds S] [--batch B]
       bench_onnx.py OUT_DIR zeroing FILE [--threads N] [--batch B]
"""
import json
import os
import sys
import time

import numpy as np

out, verb = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


def fashion_mnist():
    """The Fashion-MNIST training images, test images and test labels (Debian's
    dataset-fashion-mnist), and the test images normalised as layersweep does."""
    import gzip
    import struct
    root = "/usr/share/datasets/fashion-mnist"
    def idx(name):
        with gzip.open(os.path.join(root, name)) as f:
            data = f.read()
        dims = data[3]
        shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
        return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
    train, test, labels = idx("train-images-idx3-ubyte.gz"), idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
    pixels = train.astype(np.float64) / 255
    mean, std = np.float32(pixels.mean()), np.float32(pixels.std())
    def normalise(images):
        return ((images.astype(np.float32) / 255 - mean) / std)[:, None].astype(np.float32)
    return normalise(train), idx("train-labels-idx1-ubyte.gz"), normalise(test), labels

if verb == "export":
    import torch
    import torch.nn as nn
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
            self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
            cin, layers = 64, []
            for i, w in enumerate([64, 128, 256, 512]):
                layers.append(nn.Sequential(Block(cin, w, 1 if i == 0 else 2), Block(w, w, 1)))
                cin = w
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.fc = nn.Linear(512, 10)
        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            h = cin * t
            layers = [] if t == 1 else [nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True)]
            layers += [nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
                       nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv, self.res = nn.Sequential(*layers), stride == 1 and cin == cout
        def forward(self, x):
            return x + self.conv(x) if self.res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            f, cin = [nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True))], 32
            for t, c, n, s in table:
                for i in range(n):
                    f.append(Inverted(cin, c, s if i == 0 else 1, t))
                    cin = c
            f.append(nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(inplace=True)))
            self.features, self.classifier = nn.Sequential(*f), nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 10))
        def forward(self, x):
            return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))

    class CifarBlock(nn.Module):
        """layersweep's built-in BasicBlock: option-A shortcut (strided identity, zero channels)."""
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.stride, self.pad = stride, (cout - cin) // 2
        def forward(self, x):
            identity = x if self.stride == 1 and self.pad == 0 else \
                nn.functional.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet20(nn.Module):
        """The CIFAR ResNet-20 layersweep builds in (`sweep bench` times the same shape)."""
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
            blocks, cin = [], 16
            for i, w in enumerate([16, 32, 64]):
                for j in range(3):
                    blocks.append(CifarBlock(cin, w, 2 if i > 0 and j == 0 else 1))
                    cin = w
            self.blocks, self.fc = nn.Sequential(*blocks), nn.Linear(64, 10)
        def forward(self, x):
            x = self.blocks(torch.relu(self.bn1(self.conv1(x))))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def train_briefly(model):
        """One epoch on the first 10,000 Fashion-MNIST training images: masks then matter."""
        x, y, _, _ = fashion_mnist()
        x, y = torch.from_numpy(x[:10000]), torch.from_numpy(y[:10000].astype(np.int64))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.train()
        for i in range(0, len(x), 128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 128]), y[i:i + 128]).backward()
            opt.step()

    torch.set_num_threads(os.cpu_count() or 1)
    for name, model in [("resnet18", ResNet18()), ("mobilenetv2", MobileNetV2()), ("resnet18-trained", ResNet18()), ("resnet20", ResNet20())]:
        if name.endswith("-trained"):
            train_briefly(model)
        else:
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1); m.running_var.uniform_(0.5, 2)
        model.eval()
        torch.onnx.export(model, (torch.randn(2, 1, 28, 28),), os.path.join(out, name + ".onnx"), dynamo=True, external_data=True,
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, input_names=["x"])
elif verb == "zeroing":
    import resource
    import onnx
    import onnxruntime
    from onnx import numpy_helper
    args = dict(zip(sys.argv[4::2], sys.argv[5::2]))
    threads, batch = int(args.get("--threads", 2)), int(args.get("--batch", 256))
    start = time.time()
    _, _, x, labels = fashion_mnist()
    model = onnx.load(sys.argv[3])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    def accuracy():
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        hits = 0
        for i in range(0, len(x), batch):
            hits += int((session.run(None, {name: x[i:i + batch]})[0].argmax(1) == labels[i:i + batch]).sum())
        return hits / len(x)
    initializers = {t.name: t for t in model.graph.initializer}
    made_by = {o: n for n in model.graph.node for o in n.output}
    def weight(node):
        name = node.input[1] if len(node.input) > 1 else ""
        for _ in range(8):
            if name in initializers:
                return name
            source = made_by.get(name)
            if source is None or source.op_type not in ("Identity", "Transpose", "Cast"):
                return None
            name = source.input[0]
        return None
    weights = []
    for node in model.graph.node:
        w = weight(node) if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") else None
        if w and w not in weights:
            weights.append(w)
    baseline = accuracy()
    units = {}
    for w in weights:
        tensor = initializers[w]
        saved = numpy_helper.to_array(tensor)
        tensor.CopyFrom(numpy_helper.from_array(np.zeros_like(saved), w))
        units[w[:-len(".weight")] if w.endswith(".weight") else w] = accuracy()
        tensor.CopyFrom(numpy_helper.from_array(saved, w))
    print(json.dumps({"file": sys.argv[3], "seconds": time.time() - start, "threads": threads,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "baseline": baseline, "units": units}))
elif verb == "time":
    import onnxruntime
    args = dict(zip(sys.argv[4::2], sys.argv[5::2]))
    threads, seconds, batch = int(args.get("--threads", 2)), float(args.get("--seconds", 5)), int(args.get("--batch", 128))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(sys.argv[3], options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(1).random((batch, 1, 28, 28), dtype=np.float32)
    session.run(None, {name: x})
    images, start = 0, time.time()
    while time.time() - start < seconds:
        session.run(None, {name: x})
        images += batch
    print(json.dumps({"file": sys.argv[3], "images_per_second": images / (time.time() - start), "threads": threads, "batch_size": batch}))
