"""Writes resize_fixtures.json: small images and what torchvision's Resize / CenterCrop make of
them as PIL images (the path of torchvision's ImageFolder + eval transform). The Swift tests check
layersweep's preprocessing against these values.

Run with torch and torchvision installed:  python make_resize_fixtures.py
(The CUDA torchvision wheel PyPI serves cannot load its C++ operators on a CPU-only machine;
its transforms on PIL images are pure Python, so the operators' registration is skipped.)
"""
import base64
import json
import random

import torch

torch._C._dispatch_has_kernel_for_dispatch_key = lambda *args: False
import torchvision  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402

rng = random.Random(20261205)


def image(mode, width, height):
    channels = 1 if mode == "L" else 3
    # Smooth gradients plus noise: resampling errors show on both.
    data = []
    for y in range(height):
        for x in range(width):
            for c in range(channels):
                v = (x * 255 // max(width - 1, 1) + y * 97 // max(height - 1, 1) + 60 * c + rng.randint(-40, 40)) % 256
                data.append(v)
    if channels == 1:
        return Image.frombytes("L", (width, height), bytes(data)), data
    return Image.frombytes("RGB", (width, height), bytes(data)), data


sources, cases = [], []
small = [
    {"resize": [16]}, {"resize": [40]}, {"resize": [12, 20]}, {"center_crop": [10]},
    {"center_crop": [45]}, {"center_crop": [8, 13]}, {"resize": [24], "center_crop": [20]}, {"resize": [7]},
]
# A photograph-sized image through ImageNet's eval transform (scaled down: Resize(64), CenterCrop(56)) and a
# strong reduction.
large = [{"resize": [64], "center_crop": [56]}, {"resize": [24]}]
for mode, width, height, transforms in [("L", 37, 23, small), ("RGB", 50, 64, small), ("L", 19, 19, small),
                                        ("RGB", 9, 14, small), ("RGB", 160, 121, large)]:
    img, data = image(mode, width, height)
    sources.append({"mode": mode, "width": width, "height": height, "pixels": base64.b64encode(bytes(data)).decode()})
    for t in transforms:
        steps = []
        if "resize" in t:
            size = t["resize"]
            steps.append(T.Resize(size[0] if len(size) == 1 else size, interpolation=T.InterpolationMode.BILINEAR))
        if "center_crop" in t:
            steps.append(T.CenterCrop(t["center_crop"]))
        out = T.Compose(steps)(img)
        cases.append({
            "source": len(sources) - 1, "transform": t,
            "out_width": out.size[0], "out_height": out.size[1], "out_pixels": base64.b64encode(out.tobytes()).decode(),
        })

with open("resize_fixtures.json", "w") as f:
    json.dump({"torchvision": torchvision.__version__, "sources": sources, "cases": cases}, f, separators=(",", ":"))
print(f"{len(cases)} cases, torchvision {torchvision.__version__}")
