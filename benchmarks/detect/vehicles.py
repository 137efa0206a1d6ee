"""Vehicles in close-up, vehicle type and vehicle colour on the labelled set data/vehicles.csv (prints a table).

    PYTHONPATH=. .venv/bin/python benchmarks/detect/vehicles.py [--views stretch,square,square@2] [--verbose]

* close-up recall: labelled vehicles covering ≥ 30 % of their image, found by a vehicle-class detection (car,
  truck, bus, motorcycle, bicycle) at IoU ≥ 0.5; ``recall (all)`` the same over every labelled vehicle, difficult
  ones optional (PASCAL VOC); ``extra`` counts vehicle-class detections that match no labelled vehicle;
* type: for every labelled vehicle, the type of the best-overlapping vehicle detection (IoU ≥ 0.5), right when it
  is the label's ``type`` or ``also``; a vehicle that is not found counts as wrong (``type (found)`` leaves them out);
* colour: ``dominant_colour`` of the labelled box (independent of detection).

``evaluate()`` is what ``tubeline models eval`` calls.
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TESTDATA = ROOT.parent / "shared" / "testdata"
LABELS = Path(__file__).resolve().parent / "data" / "vehicles.csv"
VEHICLE = {"car", "truck", "bus", "motorcycle", "bicycle"}
CLOSE_UP = 0.30


@dataclass(frozen=True)
class Vehicle:
    image: str
    box: tuple[float, float, float, float]
    type: str
    also: str
    colour: str
    difficult: bool
    vehicle: str
    note: str


@dataclass
class VehicleResult:
    close_found: int = 0
    close_total: int = 0
    found: int = 0
    total: int = 0
    extra: int = 0
    type_right: int = 0
    type_labelled: int = 0
    type_found: int = 0
    colour_right: int = 0
    colour_total: int = 0
    rows: list[list[str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "close-up recall": (self.close_found, self.close_total),
            "vehicle recall": (self.found, self.total),
            "extra vehicle boxes": self.extra,
            "type accuracy": (self.type_right, self.type_labelled),
            "type accuracy (found)": (self.type_right, self.type_found),
            "vehicle colour (labelled boxes)": (self.colour_right, self.colour_total),
        }


def load_labels(path: Path = LABELS) -> list[Vehicle]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    out = []
    for row in csv.DictReader(lines):
        box = tuple(float(v) for v in row["box"].split())
        out.append(Vehicle(row["image"], box, row["type"], row["also"], row["colour"],  # type: ignore[arg-type]
                           row["difficult"] == "1", row["vehicle"], row["note"]))
    return out


@functools.lru_cache(maxsize=64)
def load_image(name: str) -> np.ndarray:
    """A labelled image: a testdata file, a vtest.avi frame (``vtest.avi@N``) or an enrichment still (cached: do
    not write into it)."""
    if name.startswith("enrich:"):
        from tests.fixtures.enrich.make_videos import vehicle_still

        actor, width = name.removeprefix("enrich:").split("@")
        return vehicle_still(actor, int(width), TESTDATA)[0]
    if "@" in name:
        video, frame = name.split("@")
        cap = cv2.VideoCapture(str(TESTDATA / video))
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(frame))
        ok, image = cap.read()
        cap.release()
        if not ok:
            msg = f"cannot read frame {frame} of {video}"
            raise FileNotFoundError(msg)
        return image
    image = cv2.imread(str(TESTDATA / name))
    if image is None:
        msg = f"cannot read {TESTDATA / name}"
        raise FileNotFoundError(msg)
    return image


def _vehicle_type(name: str) -> str:
    from workers.detect.attributes import vehicle_type

    return vehicle_type(name) or name


def evaluate(detector: Any, labels: list[Vehicle] | None = None, verbose: bool = False) -> VehicleResult:
    """Score ``detector`` (a models.protocols.Detector) and the colour attribute on the labelled vehicles."""
    from pipeline.core import box_iou
    from workers.detect.attributes import dominant_colour

    labels = labels if labels is not None else load_labels()
    result = VehicleResult()
    by_image: dict[str, list[Vehicle]] = {}
    for v in labels:
        by_image.setdefault(v.image, []).append(v)
    for name, vehicles in by_image.items():
        image = load_image(name)
        dets = detector.detect(image)
        keep = np.asarray([dets.class_name(i) in VEHICLE for i in range(len(dets))], dtype=bool)
        dets = dets[keep] if len(dets) else dets
        truth = np.asarray([v.box for v in vehicles], np.float32)
        overlaps = box_iou(dets.xyxy, truth) if len(dets) else np.zeros((0, len(vehicles)))
        area = image.shape[0] * image.shape[1]
        result.extra += int(np.sum(~(overlaps >= 0.5).any(axis=1))) if len(dets) else 0
        for j, v in enumerate(vehicles):
            x1, y1, x2, y2 = v.box
            close = (x2 - x1) * (y2 - y1) / area >= CLOSE_UP
            hit = int(np.argmax(overlaps[:, j])) if len(dets) and overlaps[:, j].max() >= 0.5 else None
            if not v.difficult:
                result.total += 1
                result.found += hit is not None
                if close:
                    result.close_total += 1
                    result.close_found += hit is not None
            predicted = _vehicle_type(dets.class_name(hit)) if hit is not None else "-"
            right = predicted in {v.type, v.also}
            result.type_labelled += 1
            result.type_found += hit is not None
            result.type_right += right
            crop = image[int(y1) : int(y2), int(x1) : int(x2)]
            colour, share = dominant_colour(crop, is_vehicle=True)
            result.colour_total += 1
            result.colour_right += colour == v.colour
            result.rows.append([f"{name} [{v.vehicle}]", "close" if close else "", v.type, predicted,
                                "" if right else "wrong", v.colour, colour, "" if colour == v.colour else "wrong"])
    if verbose:
        from models.benchmark import format_table

        print(format_table(["image", "close-up", "type", "detected", "", "colour", "predicted", ""], result.rows))
    return result


def _fraction(value: Any) -> str:
    if isinstance(value, tuple):
        right, total = value
        return f"{right}/{total} = {100 * right / max(1, total):.1f} %"
    return str(value)


def main() -> int:
    from models.benchmark import format_table
    from models.multiview import MultiViewDetector
    from models.zoo import ModelZoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", default=None, help="comma-separated detector views (default: configured)")
    parser.add_argument("--score", type=float, default=None, help="detector score floor (default: configured)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    zoo = ModelZoo.from_config()
    detector = zoo.detector()
    if args.views:
        detector = MultiViewDetector(getattr(detector, "base", detector), args.views.split(","))
    if args.score is not None:
        detector.score = args.score
    result = evaluate(detector, verbose=args.verbose)
    print(f"detector {detector.model_id}, labels {LABELS.relative_to(ROOT)}")
    print(format_table(["measure", "value"], [[k, _fraction(v)] for k, v in result.summary().items()]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
