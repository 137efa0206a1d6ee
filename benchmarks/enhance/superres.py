"""Super-resolution ×4 against bicubic, measured in the same run: PSNR and time per image.

Each image (the shared faces and Chinese plate scenes and crops, longest side scaled to ≤ 480 px, sizes a
multiple of 4) is downscaled ×4 with area averaging, upscaled back by bicubic interpolation and by SPAN ×4
(``span-x4`` from the model zoo, ncnn on the CPU), and both are compared with the original. Not a test: prints a
table. Run: ``.venv/bin/python -m benchmarks.enhance.superres``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2

from models.zoo import ModelZoo
from pipeline.cases.enhance import psnr

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"


def images() -> list[Path]:
    faces = sorted((TESTDATA / "faces").glob("*.jpg"))
    plates = sorted((TESTDATA / "plates" / "cn").glob("*.jpg"))[:6]
    return faces + plates


def main() -> int:
    upscaler = ModelZoo().super_resolver()
    rows = []
    for path in images():
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        s = min(1.0, 480 / max(h, w))
        image = cv2.resize(image, (int(w * s) // 4 * 4, int(h * s) // 4 * 4), interpolation=cv2.INTER_AREA)
        small = cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4), interpolation=cv2.INTER_AREA)
        t0 = time.monotonic()
        bicubic = cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)
        t1 = time.monotonic()
        learned = upscaler.upscale(small)
        t2 = time.monotonic()
        rows.append((path.name, f"{small.shape[1]}x{small.shape[0]}", psnr(bicubic, image), psnr(learned, image),
                     (t1 - t0) * 1000, (t2 - t1) * 1000))
    print(f"{'image':18} {'input':>8} {'bicubic dB':>10} {'SPAN dB':>8} {'gain':>6} {'bicubic ms':>10} {'SPAN ms':>8}")
    for name, size, b, s_, tb, ts in rows:
        print(f"{name:18} {size:>8} {b:10.2f} {s_:8.2f} {s_ - b:6.2f} {tb:10.2f} {ts:8.0f}")
    gains = [s_ - b for _, _, b, s_, _, _ in rows]
    print(f"mean gain {sum(gains) / len(gains):.2f} dB over {len(rows)} images (min {min(gains):.2f}, "
          f"max {max(gains):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
