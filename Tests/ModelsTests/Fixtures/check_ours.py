"""Reads a safetensors file written by layersweep with the reference package and prints, per
tensor, its name, dtype, shape and sum: the Swift test compares that output with its own view."""
import sys
from safetensors import safe_open

with safe_open(sys.argv[1], framework="numpy") as f:
    meta = f.metadata() or {}
    for key in sorted(meta):
        print(f"meta {key}={meta[key]}")
    for name in sorted(f.keys()):
        t = f.get_tensor(name)
        print(f"{name} {t.dtype} {list(t.shape)} {float(t.astype('float64').sum()):.6f}")
