"""Writes images/: small PNG and JPEG files in the variants an image folder holds (grey, RGB,
16-bit, palette with and without transparency, alpha, 1-bit, interlaced, progressive and
greyscale JPEG) with Pillow's decoding of each as "L" and as "RGB" (what torchvision's
ImageFolder loader gives), and small .npz archives as NumPy writes them. The Swift tests decode
the same files with libpng / libjpeg-turbo and compare.

Run with numpy and Pillow installed:  python make_image_fixtures.py
"""
import base64
import json
import os
import random

import numpy as np
from PIL import Image, features

rng = random.Random(5)
os.makedirs("images", exist_ok=True)
W, H = 23, 17


def noise(channels, bits=8):
    top = (1 << bits) - 1
    return [[[(x * top // (W - 1) + y * 5 * (c + 1) + rng.randint(0, top // 4)) % (top + 1) for c in range(channels)]
             for x in range(W)] for y in range(H)]


rgb = np.array(noise(3), dtype=np.uint8)
grey = np.array(noise(1), dtype=np.uint8)[:, :, 0]
files = {}
Image.fromarray(grey, "L").save("images/grey8.png")
Image.fromarray(rgb, "RGB").save("images/rgb8.png")
Image.fromarray(grey, "L").convert("1").save("images/grey1.png")
Image.fromarray(rgb, "RGB").quantize(16).save("images/palette.png")
pal = Image.fromarray(rgb, "RGB").quantize(16)
pal.info["transparency"] = 3
pal.save("images/palette_trns.png", transparency=3)
Image.fromarray(np.dstack([grey, 255 - grey]), "LA").save("images/grey_alpha.png")
Image.fromarray(np.dstack([rgb, grey]), "RGBA").save("images/rgba.png")
Image.fromarray(rgb, "RGB").save("images/rgb_q95.jpg", quality=95)
Image.fromarray(grey, "L").save("images/grey_q95.jpg", quality=95)
Image.fromarray(rgb, "RGB").save("images/progressive.jpg", quality=80, progressive=True)
Image.fromarray(rgb, "RGB").save("images/rgb_444.jpg", quality=90, subsampling=0)
# 16-bit grey and RGB, written through NumPy's big-endian words as PNG stores them.
grey16 = np.array(noise(1, 16), dtype=np.uint16)[:, :, 0]
Image.fromarray(grey16).save("images/grey16.png")


def write_png(path, rows, width, height, bit_depth, colour_type, interlaced=False):
    """A PNG written chunk by chunk (Pillow writes neither 16-bit RGB nor Adam7 interlacing)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    if interlaced:   # Adam7: seven sub-images, each row filtered (type 0)
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        raw = b""
        for x0, y0, dx, dy in passes:
            for y in range(y0, height, dy):
                line = b"".join(rows[y][x] for x in range(x0, width, dx))
                if line:
                    raw += b"\0" + line
    else:
        raw = b"".join(b"\0" + b"".join(r) for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 1 if interlaced else 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


rgb16 = np.array(noise(3, 16), dtype=np.uint16)
write_png("images/rgb16.png", [[b"".join(int(v).to_bytes(2, "big") for v in rgb16[y, x]) for x in range(W)] for y in range(H)],
          W, H, 16, 2)
write_png("images/interlaced.png", [[bytes(rgb[y, x]) for x in range(W)] for y in range(H)], W, H, 8, 2, interlaced=True)

expected = {}
for name in sorted(os.listdir("images")):
    if not name.endswith((".png", ".jpg")):
        continue
    with Image.open(os.path.join("images", name)) as im:
        im.load()
        expected[name] = {
            "mode": im.mode, "width": im.size[0], "height": im.size[1],
            "L": base64.b64encode(im.convert("L").tobytes()).decode(),
            "RGB": base64.b64encode(im.convert("RGB").tobytes()).decode(),
        }

# NumPy archives: stored (savez) and deflated (savez_compressed), Keras' one-file layout,
# channels-last float32 images, Fortran order, big-endian labels.
x = np.arange(4 * 3 * 5 * 2, dtype=np.uint8).reshape(4, 3, 5, 2) * 3
y = np.array([0, 2, 1, 2], dtype=np.int64)
np.savez("images/nhwc.npz", x=np.transpose(x, (0, 2, 3, 1)).copy(), y=y)      # N, 5, 2, 3: channels last
np.savez_compressed("images/nchw_compressed.npz", images=x, labels=y.astype(np.int32))
np.savez("images/keras.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
np.savez("images/fortran_float.npz", x=np.asfortranarray(x.astype(np.float32) / 255), y=y.astype(">i2"))
np.savez("images/bad_labels.npz", x=x, y=np.array([0, 1, 2, 300]))
np.savez("images/bad_lengths.npz", x=x, y=y[:3])

with open("images/expected.json", "w") as f:
    json.dump({"pillow": Image.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"), "files": expected}, f, indent=0)
print(f"{len(expected)} images, Pillow {Image.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}")
