"""PyTorch CPU reference for the zeroing sweep benchmark (scripts/bench --zeroing), and, with
--train, for the peak memory of a training.

Loads a layersweep ResNet checkpoint (safetensors, layersweep's own tensor names), then evaluates
the unmasked network and every zeroKernel / zeroBranch variant in turn on the Fashion-MNIST test
set (BN in eval mode, batch 256, channels_last), the way a PyTorch user would run the study.
Prints JSON: {"seconds", "evaluations", "accuracies": {"unit/mask": accuracy}}.
Not part of layersweep itself.
"""
import argparse
import copy
import gzip
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

import bench_torch  # the benchmark's PyTorch models, next to this script


class ConvBN(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)


class Block(bench_torch.Block):
    """bench_torch's basic block, with the zeroBranch mask: a disabled branch adds nothing."""

    def __init__(self, cin, cout, stride):
        super().__init__(cin, cout, stride)
        self.branch_enabled = True

    def forward(self, x):
        return super().forward(x) if self.branch_enabled else F.relu(self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet (option A) with layersweep's module names: stem.conv, stage1.block1.conv1, fc."""

    def __init__(self, blocks, channels, classes=10):
        super().__init__()
        self.stem = ConvBN(channels, 16, 1)
        cin = 16
        for s, width in enumerate([16, 32, 64], start=1):
            stage = nn.Module()
            for b in range(1, blocks + 1):
                stride = 2 if (s > 1 and b == 1) else 1
                setattr(stage, f"block{b}", Block(cin, width, stride))
                cin = width
            setattr(self, f"stage{s}", stage)
        self.fc = nn.Linear(64, classes)
        self.blocks = blocks

    def forward(self, x):
        x = F.relu(self.stem.bn(self.stem.conv(x)))
        for s in (1, 2, 3):
            for b in range(1, self.blocks + 1):
                x = getattr(getattr(self, f"stage{s}"), f"block{b}")(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def train_epoch(args):
    """The training a PyTorch user would write: one epoch of ResNet-20 on the first --train-limit
    Fashion-MNIST images, batch 128, SGD as layersweep's defaults, channels_last (for its peak memory)."""
    start = time.time()
    torch.manual_seed(0)
    raw = idx(f"{args.data_dir}/train-images-idx3-ubyte.gz").astype(np.float32) / 255
    images = (raw - raw.mean()) / raw.std()
    x = torch.from_numpy(images[:args.train_limit, None]).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(idx(f"{args.data_dir}/train-labels-idx1-ubyte.gz")[:args.train_limit].astype(np.int64))
    model = ResNet(3, 1).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    order = torch.randperm(len(x))
    for i in range(0, len(x), 128):
        batch = order[i:i + 128]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        opt.step()
    print(json.dumps({"seconds": time.time() - start, "images": len(x)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", nargs="?")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train", action="store_true", help="train one epoch instead (scripts/bench's training memory)")
    parser.add_argument("--train-limit", type=int, default=10000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.train:
        return train_epoch(args)
    if args.checkpoint is None:
        parser.error("a checkpoint to evaluate (or --train)")
    start = time.time()
    state = load_file(args.checkpoint)
    blocks = len({k.split(".")[1] for k in state if k.startswith("stage1.")})
    model = ResNet(blocks, state["stem.conv.weight"].shape[1], state["fc.weight"].shape[0])
    model.load_state_dict(state, strict=False)
    model.eval()
    # layersweep normalises by the training split's mean and standard deviation.
    train = idx(f"{args.data_dir}/train-images-idx3-ubyte.gz").astype(np.float32) / 255
    mean, std = train.mean(), train.std()
    images = (idx(f"{args.data_dir}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255 - mean) / std
    x = torch.from_numpy(images[:, None]).contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(idx(f"{args.data_dir}/t10k-labels-idx1-ubyte.gz").astype(np.int64))

    def evaluate(net):
        net = net.to(memory_format=torch.channels_last)
        correct = 0
        with torch.no_grad():
            for i in range(0, len(x), args.batch_size):
                correct += (net(x[i:i + args.batch_size]).argmax(1) == labels[i:i + args.batch_size]).sum().item()
        return correct / len(x)

    variants = [(None, None)]
    for s in (1, 2, 3):
        for b in range(1, blocks + 1):
            name = f"stage{s}.block{b}"
            variants += [(name, "zeroBranch"), (f"{name}.conv1", "zeroKernel"), (f"{name}.conv2", "zeroKernel")]
    variants = [("stem.conv", "zeroKernel")] + variants + [("fc", "zeroKernel")]
    accuracies = {}
    for unit, mask in variants:
        net = copy.deepcopy(model)
        if mask == "zeroBranch":
            net.get_submodule(unit).branch_enabled = False
        elif mask == "zeroKernel":
            layer = net.get_submodule(unit)
            with torch.no_grad():
                layer.weight.zero_()
                if layer.bias is not None:
                    layer.bias.zero_()
        accuracies[f"{unit}/{mask}" if unit else "baseline"] = evaluate(net)
    print(json.dumps({"seconds": time.time() - start, "evaluations": len(variants), "accuracies": accuracies}))


if __name__ == "__main__":
    main()
