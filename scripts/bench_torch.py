"""PyTorch CPU reference for `sweep bench`: the same models, shapes and batch, timed the same way.

Prints JSON: [{"model", "input", "train_images_per_second", "eval_images_per_second", "threads"}].
Used by scripts/bench --with-torch; not part of layersweep itself.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else None
        self.stride = stride

    def shortcut(self, x):
        return x if self.pad is None else F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet-(6n+2) with option-A shortcuts, as in `sweep`."""

    def __init__(self, depth, in_channels, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for s, w in enumerate([16, 32, 64]):
            for b in range(n):
                blocks.append(Block(cin, w, 2 if s > 0 and b == 0 else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def fcn(inputs, widths, classes=10):
    layers = [nn.Flatten()]
    for w in widths:
        layers += [nn.Linear(inputs, w, bias=False), nn.BatchNorm1d(w), nn.ReLU()]
        inputs = w
    return nn.Sequential(*layers, nn.Linear(inputs, classes))


def rate(step, seconds):
    step(); step()
    start, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - start < seconds:
        step()
        calls += 1
    return calls / (time.perf_counter() - start)


def bench(name, model, shape, batch, seconds, channels_last):
    x = torch.randn(batch, *shape)
    y = torch.arange(batch) % 10
    if channels_last and x.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def train():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    model.train()
    tr = rate(train, seconds)
    model.eval()
    with torch.no_grad():
        ev = rate(lambda: model(x), seconds / 2)
    return {"model": name, "input": list(shape), "train_images_per_second": tr * batch,
            "eval_images_per_second": ev * batch, "threads": torch.get_num_threads(),
            "channels_last": channels_last}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = []
    for shape in [(1, 28, 28), (3, 32, 32)]:
        # PyTorch's faster layout for these shapes here is channels_last; report the better one.
        runs = [bench("resnet20", ResNet(20, shape[0]), shape, a.batch_size, a.seconds, cl) for cl in (False, True)]
        out.append(max(runs, key=lambda r: r["train_images_per_second"]))
    out.append(bench("fcn-1024x3-bn", fcn(784, [1024] * 3), (1, 28, 28), a.batch_size, a.seconds, False))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
