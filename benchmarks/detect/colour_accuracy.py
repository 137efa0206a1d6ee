"""Colour accuracy on hand-labelled crops: vehicle body colour and person upper/lower-body colours (prints a table).

    PYTHONPATH=. .venv/bin/python benchmarks/detect/colour_accuracy.py [--verbose] [--method new|old]

Labels: data/vehicles.csv + data/vehicle_colours.csv (vehicles), data/person_colours.csv (persons); how they were
made is written in each file. Every labelled box is cut out the way the detect worker cuts its crops
(``detect.crop_margin`` 0.1 around the box, clipped to the frame), then:

* ``new`` — ``workers.detect.colours``: the box interior without background-like pixels (the margin ring as the
  background sample), without the pixels of other labelled objects standing in front of it (the worker uses the
  detector's boxes of the same frame) and, for persons, without skin; persons split into upper and lower body;
* ``old`` — the colour rule before this change (central region of the crop, no background model); it has no
  person split, so its upper-body colour is its person colour and it has no lower-body colour.

A prediction is right when it is the label or the label's ``also`` colour. ``always black`` is the majority-class
baseline of the person set (most people in vtest.avi wear dark clothes). Nothing is fitted to these labels: the
vehicle region is the one the rule used before (rows 45–85 %, columns 20–80 %), now of the box instead of the crop
with its margin; the person regions and the thresholds were set before the labels were looked at. The vehicle crops
are many views of few vehicles, so ``vehicle, per vehicle`` counts each physical vehicle once (the majority of its
crops' answers; a tie counts as wrong).
``evaluate()`` is what ``tubeline models eval`` calls.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = Path(__file__).resolve().parent / "data"
MARGIN = 0.1


@dataclass
class Score:
    right: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, ok: bool, what: str) -> None:
        self.right += ok
        self.total += 1
        if not ok:
            self.misses.append(what)

    def as_pair(self) -> tuple[int, int]:
        return self.right, self.total


def _rows(name: str) -> list[dict[str, str]]:
    lines = [line for line in (DATA / name).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def _box(text: str) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in text.split())
    return x1, y1, x2, y2


def _crop(image: np.ndarray, box: str, others: list[str] = ()) -> tuple[np.ndarray, tuple, list]:  # type: ignore[assignment]
    """The worker-style crop, the box inside it, and the other labelled boxes in front of it (crop pixels)."""
    from workers.detect.attributes import crop_box

    xyxy = np.asarray(_box(box), np.float32)
    x1, y1, x2, y2 = crop_box(xyxy, image.shape[1], image.shape[0], MARGIN)
    inner = (float(xyxy[0] - x1), float(xyxy[1] - y1), float(xyxy[2] - x1), float(xyxy[3] - y1))
    try:
        from workers.detect.colours import in_front
    except ImportError:  # code from before occlusion masking
        return image[y1:y2, x1:x2], inner, []
    front = in_front(_box(box), [_box(o) for o in others if o != box])
    return image[y1:y2, x1:x2], inner, [(a - x1, b - y1, c - x1, d - y1) for a, b, c, d in front]


def _old(crop: np.ndarray, is_vehicle: bool) -> str:
    """The rule before the background model: central region of the crop, HSV majority."""
    from workers.detect.colours import classify_pixels

    h, w = crop.shape[:2]
    if is_vehicle:
        region = crop[int(h * 0.45) : int(h * 0.85), int(w * 0.2) : int(w * 0.8)]
    else:
        region = crop[int(h * 0.2) : int(h * 0.6), int(w * 0.25) : int(w * 0.75)]
    hsv = cv2.cvtColor(region, cv2.COLOR_BGR2HSV).reshape(-1, 3)
    return classify_pixels(hsv).colour


def _colour_functions() -> tuple[Any, Any]:
    """The colour functions of the code under test (code from before ``workers.detect.colours``: its
    ``dominant_colour`` on the crop, a person's one colour as the top and no lower-body colour)."""
    try:
        from workers.detect.colours import person_colours, vehicle_colour
    except ImportError:
        from types import SimpleNamespace

        from workers.detect.attributes import dominant_colour

        def vehicle_colour(crop: np.ndarray, box: Any = None, occluders: Any = ()) -> Any:
            return SimpleNamespace(colour=dominant_colour(crop, is_vehicle=True)[0])

        def person_colours(crop: np.ndarray, box: Any = None, occluders: Any = ()) -> Any:
            return (SimpleNamespace(colour=dominant_colour(crop, is_vehicle=False)[0]),
                    SimpleNamespace(colour="unknown"))
    return vehicle_colour, person_colours


def evaluate(method: str = "new") -> dict[str, Score]:
    """Scores per set: ``vehicle``, ``person upper``, ``person lower``, ``person upper, always black``."""
    from benchmarks.detect.vehicles import load_image

    vehicle_colour, person_colours = _colour_functions()

    images: dict[str, np.ndarray] = {}

    def image(name: str) -> np.ndarray:
        if name not in images:
            images[name] = load_image(name)
        return images[name]

    names = ("vehicle", "vehicle, per vehicle", "person upper", "person lower", "person upper, always black")
    scores = {k: Score() for k in names}
    per_vehicle: dict[str, list[bool]] = {}
    vehicles = _rows("vehicles.csv") + _rows("vehicle_colours.csv")
    persons = _rows("person_colours.csv")
    boxes: dict[str, list[str]] = {}
    for row in vehicles + persons:  # every labelled object of an image can stand in front of another
        boxes.setdefault(row["image"], []).append(row["box"])
    for row in vehicles:
        crop, inner, front = _crop(image(row["image"]), row["box"], boxes[row["image"]])
        got = vehicle_colour(crop, inner, occluders=front).colour if method == "new" else _old(crop, True)
        scores["vehicle"].add(got == row["colour"], f"{row['image']} {row['vehicle']}: {row['colour']} read {got}")
        per_vehicle.setdefault(row["vehicle"], []).append(got == row["colour"])
    for vehicle, answers in sorted(per_vehicle.items()):
        scores["vehicle, per vehicle"].add(2 * sum(answers) > len(answers), vehicle)
    for row in persons:
        crop, inner, front = _crop(image(row["image"]), row["box"], boxes[row["image"]])
        if method == "new":
            upper, lower = (c.colour for c in person_colours(crop, inner, occluders=front))
        else:
            upper, lower = _old(crop, False), "unknown"
        where = f"{row['image']} {row['box']}"
        scores["person upper"].add(upper in {row["upper"], row["upper_also"]}, f"{where}: {row['upper']} read {upper}")
        scores["person upper, always black"].add("black" in {row["upper"], row["upper_also"]}, where)
        if row["lower"]:
            scores["person lower"].add(lower in {row["lower"], row["lower_also"]},
                                       f"{where}: {row['lower']} read {lower}")
    return scores


def summary(scores: dict[str, Score]) -> dict[str, Any]:
    return {f"colour: {k}": v.as_pair() for k, v in scores.items()}


def main() -> int:
    from models.benchmark import format_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("new", "old"), default="new")
    parser.add_argument("--verbose", action="store_true", help="list every wrong colour")
    args = parser.parse_args()
    scores = evaluate(args.method)
    rows = [[k, f"{s.right}/{s.total}", f"{100 * s.right / max(1, s.total):.1f} %"] for k, s in scores.items()]
    print(format_table(["set", "right", "accuracy"], rows))
    if args.verbose:
        for name, s in scores.items():
            if "always" not in name:
                for miss in s.misses:
                    print(f"  {name}: {miss}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
