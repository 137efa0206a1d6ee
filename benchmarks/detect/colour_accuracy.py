"""Accuracy of the dominant-colour attribute on hand-labelled vehicles (prints a table).

    .venv/bin/python benchmarks/detect/colour_accuracy.py

The set is tiny (see data/colour_labels.csv): it shows whether the palette rules behave, not a
statistically meaningful accuracy. Results are recorded in docs/detect.md.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from workers.detect.attributes import dominant_colour  # noqa: E402

TESTDATA = ROOT.parent / "shared" / "testdata"


def load(image: str):
    if "@" in image:
        name, frame = image.split("@")
        cap = cv2.VideoCapture(str(TESTDATA / name))
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(frame))
        ok, img = cap.read()
        cap.release()
        return img if ok else None
    return cv2.imread(str(TESTDATA / image))


def main() -> int:
    rows = [r for r in csv.reader(
        line for line in (ROOT / "benchmarks/detect/data/colour_labels.csv").read_text().splitlines()
        if not line.startswith("#"))][1:]
    correct = 0
    print(f"{'image':34} {'label':7} {'predicted':9} {'share':>5}")
    for image, box, label, _note in rows:
        img = load(image)
        if img is None:
            print(f"{image}: cannot read")
            return 1
        if box != "full":
            x1, y1, x2, y2 = (int(v) for v in box.split())
            img = img[y1:y2, x1:x2]
        colour, share = dominant_colour(img, is_vehicle=True)
        correct += colour == label
        print(f"{image:34} {label:7} {colour:9} {share:5.2f}{'' if colour == label else '   <- wrong'}")
    print(f"\naccuracy: {correct}/{len(rows)} = {correct / len(rows):.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
