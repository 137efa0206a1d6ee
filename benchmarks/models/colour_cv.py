"""Was the colour rule chosen on the labelled crops? The grouped cross-validated figure of that choice.

    PYTHONPATH=. .venv/bin/python benchmarks/models/colour_cv.py

The hue vote of ``workers.detect.colours.classify_pixels`` can weigh each chromatic pixel by its saturation (the
default since 2026-12-02), by 1 (``count``, the rule before) or by its chroma S×V/255. The default was picked after
measuring the three on the labelled crops of ``benchmarks/detect/data`` — a choice made on the dev set — so this
harness also scores the *choice*: leave one group out (one physical vehicle; for persons one 10-second block of
vtest.avi, the ``group`` column), pick the weighting with the most right answers on the other groups, score the
held-out group's crops with it. On a tie the earlier rule (``count``) is kept: a change has to earn its place on
data it is not scored on. It prints, per set, each weighting's fixed-rule accuracy and the cross-validated one.
``evaluate()`` returns the same as numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.detect import colour_accuracy as ca  # noqa: E402
from benchmarks.detect.vehicles import load_image  # noqa: E402
from workers.detect.colours import WEIGHTINGS, person_colours, vehicle_colour  # noqa: E402

Outcome = tuple[str, dict[str, bool]]  # (group, right? per weighting)
PREFERENCE = ("count", "saturation", "chroma")  # tie-break order: the earlier rule first


def outcomes() -> dict[str, list[Outcome]]:
    """Per set (``vehicle``, ``person upper``, ``person lower``), each labelled crop's group and whether each
    weighting names it right (the label or its ``also`` colour)."""
    images: dict[str, np.ndarray] = {}

    def image(name: str) -> np.ndarray:
        if name not in images:
            images[name] = load_image(name)
        return images[name]

    vehicles = ca._rows("vehicles.csv") + ca._rows("vehicle_colours.csv")
    persons = ca._rows("person_colours.csv")
    boxes: dict[str, list[str]] = {}
    for row in vehicles + persons:
        boxes.setdefault(row["image"], []).append(row["box"])
    out: dict[str, list[Outcome]] = {"vehicle": [], "person upper": [], "person lower": []}
    for row in vehicles:
        crop, inner, front = ca._crop(image(row["image"]), row["box"], boxes[row["image"]])
        out["vehicle"].append((row["vehicle"], {
            w: vehicle_colour(crop, inner, occluders=front, weighting=w).colour == row["colour"] for w in WEIGHTINGS}))
    for row in persons:
        crop, inner, front = ca._crop(image(row["image"]), row["box"], boxes[row["image"]])
        answers = {w: person_colours(crop, inner, occluders=front, weighting=w) for w in WEIGHTINGS}
        out["person upper"].append((row["group"], {
            w: a[0].colour in {row["upper"], row["upper_also"]} for w, a in answers.items()}))
        if row["lower"]:
            out["person lower"].append((row["group"], {
                w: a[1].colour in {row["lower"], row["lower_also"]} for w, a in answers.items()}))
    return out


def cross_validated(rows: Sequence[Outcome]) -> int:
    """Right answers when each group is scored by the weighting chosen on the other groups (ties: PREFERENCE)."""
    right = 0
    for group in sorted({g for g, _ in rows}):
        train = [r for g, r in rows if g != group]
        chosen = max(PREFERENCE, key=lambda w: (sum(r[w] for r in train), -PREFERENCE.index(w)))
        right += sum(r[chosen] for g, r in rows if g == group)
    return right


def evaluate() -> dict[str, dict[str, tuple[int, int]]]:
    """Per set: (right, total) for each fixed weighting and for ``cross-validated`` (the choice left out)."""
    result = {}
    for name, rows in outcomes().items():
        scores: dict[str, tuple[int, int]] = {w: (sum(r[w] for _, r in rows), len(rows)) for w in WEIGHTINGS}
        scores["cross-validated"] = (cross_validated(rows), len(rows))
        result[name] = scores
    return result


def main() -> int:
    from models.benchmark import format_table

    result = evaluate()
    header = ["set", *WEIGHTINGS, "choice cross-validated"]
    table = [[name, *(f"{r}/{t} = {100 * r / max(1, t):.1f} %" for r, t in scores.values())]
             for name, scores in result.items()]
    print(format_table(header, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
