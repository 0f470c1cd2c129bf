"""Writes the first N training and N test images of Fashion-MNIST (the Debian package's IDX files)
in the formats layersweep reads, for the own-data tests:

  OUT/idx/        the same examples as IDX files
  OUT/png/        an image folder of PNGs: train/<label>_<name>/<index>.png, test/...
  OUT/jpeg/       the same as JPEGs (quality 95)
  OUT/data.npz    x_train, y_train, x_test, y_test (uint8, Keras' layout)
  OUT/pillow_jpeg.npz  Pillow's decoding of the JPEGs, in the image folder's order

Usage: python fashion_formats.py OUT N   (needs numpy and Pillow)
"""
import gzip
import os
import sys

import numpy as np
from PIL import Image

SOURCE = "/usr/share/datasets/fashion-mnist"
NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def read_idx(name):
    with gzip.open(os.path.join(SOURCE, name + ".gz")) as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.tobytes())


out, n = sys.argv[1], int(sys.argv[2])
splits = {
    "train": (read_idx("train-images-idx3-ubyte")[:n], read_idx("train-labels-idx1-ubyte")[:n]),
    "test": (read_idx("t10k-images-idx3-ubyte")[:n], read_idx("t10k-labels-idx1-ubyte")[:n]),
}
os.makedirs(os.path.join(out, "idx"), exist_ok=True)
for split, prefix in [("train", "train"), ("test", "t10k")]:
    x, y = splits[split]
    write_idx(os.path.join(out, "idx", f"{prefix}-images-idx3-ubyte"), x)
    write_idx(os.path.join(out, "idx", f"{prefix}-labels-idx1-ubyte"), y)
np.savez(os.path.join(out, "data.npz"), x_train=splits["train"][0], y_train=splits["train"][1],
         x_test=splits["test"][0], y_test=splits["test"][1])

decoded = {}
for kind, extension, options in [("png", "png", {}), ("jpeg", "jpg", {"quality": 95})]:
    for split, (x, y) in splits.items():
        order = []
        for i, (image, label) in enumerate(zip(x, y)):
            folder = os.path.join(out, kind, split, f"{label}_{NAMES[label]}")
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{i:05d}.{extension}")
            Image.fromarray(image).save(path, **options)
            order.append((label, i, path))
        if kind == "jpeg":
            # torchvision's ImageFolder order: classes sorted, files sorted within each.
            decoded[f"x_{split}"] = np.stack([np.array(Image.open(p).convert("L")) for _, _, p in sorted(order)])
np.savez(os.path.join(out, "pillow_jpeg.npz"), **decoded)
print(f"wrote {n} + {n} images to {out}")
