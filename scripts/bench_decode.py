"""Decoding an image folder: `sweep datasets` (libpng, T threads) against Pillow (the loader
torchvision's ImageFolder uses) on the same 60,000 Fashion-MNIST training images as PNG files.

Writes the folder once (WORK/png/train/<class>/<index>.png), then alternates the two sides
REPEAT times and keeps each side's best wall time. Pillow decodes with a pool of T processes
(as a DataLoader with T workers would) into one uint8 array. Peak memory of ours is the peak
resident size of `sweep datasets` minus that of the same command on a ten-image folder (the
process itself), against the decoded pixels' count in bytes.

Usage: python bench_decode.py WORK SWEEP THREADS REPEAT   (needs numpy and Pillow)
"""
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

work, sweep, threads, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
root = os.path.join(work, "png", "train")
tiny = os.path.join(work, "tiny")


def read_idx(name):
    with gzip.open(os.path.join("/usr/share/datasets/fashion-mnist", name + ".gz")) as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


if not os.path.exists(os.path.join(work, "done")):
    x, y = read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte")
    for i, (image, label) in enumerate(zip(x, y)):
        for base, limit in [(root, len(x)), (tiny, 10)]:
            if i < limit:
                folder = os.path.join(base, str(label))
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(image).save(os.path.join(folder, f"{i:05d}.png"))
    open(os.path.join(work, "done"), "w").close()

files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def decode(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def pillow():
    start = time.perf_counter()
    out = np.empty((len(files), 28, 28), dtype=np.uint8)
    with Pool(threads) as pool:
        for i, a in enumerate(pool.imap(decode, files, chunksize=256)):
            out[i] = a
    return time.perf_counter() - start


def ours(folder):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([sweep, "datasets", folder, "--threads", str(threads)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def peak_kb(folder):
    script = f"import resource, subprocess; subprocess.run([{sweep!r}, 'datasets', {folder!r}, '--threads', '{threads}'], check=True, stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    return int(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)


times = {"ours": [], "pillow": []}
for _ in range(repeat):
    times["ours"].append(ours(root))
    times["pillow"].append(pillow())
peak, base = peak_kb(root), peak_kb(tiny)
pixels = len(files) * 28 * 28
print(json.dumps({"images": len(files), "threads": threads, "ours_s": min(times["ours"]), "pillow_s": min(times["pillow"]),
                  "ratio": min(times["pillow"]) / min(times["ours"]), "peak_mb": peak / 1024, "process_mb": base / 1024,
                  "pixels_mb": pixels / 2**20, "memory_per_pixel": (peak - base) * 1024 / pixels}))
