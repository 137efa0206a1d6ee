"""Was the colour rule chosen on the labelled crops? The grouped cross-validated figure of that choice.

    PYTHONPATH=. .venv/bin/python benchmarks/models/colour_cv.py

Two parts of ``workers.detect.colours.classify_pixels`` were chosen after measuring alternatives on the labelled
crops of ``benchmarks/detect/data`` — choices made on the dev set:

* the hue vote (2026-12-02): each chromatic pixel weighs its saturation (``saturation``), 1 (``count``, the rule
  before) or its chroma S×V/255 (``chroma``);
* which pixels decide "coloured or not" (2026-12-02, third pass): the rule before took the chromatic share of all survivors;
  the ``lit ≥ x`` rules take it among the survivors lit enough to show a hue (V ≥ 50) and call the region coloured
  only when at least the share x of the survivors is lit. Every minimum that was looked at is a candidate here
  (0 … 0.5); the default is ``saturation, lit ≥ 0.3`` (0.3 = ``CHROMA_SHARE``, no new threshold), also with
  ``count`` votes at minimum 0.

So this harness scores the *choice*: leave one group out (one physical vehicle; for persons one 10-second block of
vtest.avi, the ``group`` column), pick the candidate rule with the most right answers on the other groups, score the
held-out group's crops with it. A tie keeps the earlier rule of ``RULES`` (the older rules first, then the new ones
in the order of their minimum): a change has to earn its place on data it is not scored on. Each set (vehicle,
person upper, person lower) makes its own choice. It prints, per set, each rule's fixed accuracy and the
cross-validated one; ``evaluate()`` returns the same as numbers.
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
from workers.detect.colours import Weighting, person_colours, vehicle_colour  # noqa: E402

Outcome = tuple[str, dict[str, bool]]  # (group, right? per rule)


def _lit(weighting: Weighting, minimum: float) -> tuple[str, Weighting, float]:
    return f"{weighting}, lit ≥ {minimum:g}", weighting, minimum


# (name, hue-vote weighting, lit_share of classify_pixels) in tie-break order: the earlier rule first
RULES: tuple[tuple[str, Weighting, float | None], ...] = (
    ("count", "count", None), ("saturation", "saturation", None), ("chroma", "chroma", None),
    *(_lit("saturation", m) for m in (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5)), _lit("count", 0.0))
PREFERENCE = tuple(name for name, _, _ in RULES)
DEFAULT = "saturation, lit ≥ 0.3"  # what workers.detect.colours ships


def outcomes() -> dict[str, list[Outcome]]:
    """Per set (``vehicle``, ``person upper``, ``person lower``), each labelled crop's group and whether each
    rule of ``RULES`` names it right (the label or its ``also`` colour)."""
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
            name: vehicle_colour(crop, inner, occluders=front, weighting=w, lit_share=lit).colour == row["colour"]
            for name, w, lit in RULES}))
    for row in persons:
        crop, inner, front = ca._crop(image(row["image"]), row["box"], boxes[row["image"]])
        answers = {name: person_colours(crop, inner, occluders=front, weighting=w, lit_share=lit)
                   for name, w, lit in RULES}
        out["person upper"].append((row["group"], {
            name: a[0].colour in {row["upper"], row["upper_also"]} for name, a in answers.items()}))
        if row["lower"]:
            out["person lower"].append((row["group"], {
                name: a[1].colour in {row["lower"], row["lower_also"]} for name, a in answers.items()}))
    return out


def cross_validated(rows: Sequence[Outcome]) -> int:
    """Right answers when each group is scored by the rule chosen on the other groups (ties: PREFERENCE)."""
    right = 0
    for group in sorted({g for g, _ in rows}):
        train = [r for g, r in rows if g != group]
        chosen = max(PREFERENCE, key=lambda w: (sum(r[w] for r in train), -PREFERENCE.index(w)))
        right += sum(r[chosen] for g, r in rows if g == group)
    return right


def evaluate() -> dict[str, dict[str, tuple[int, int]]]:
    """Per set: (right, total) for each fixed rule of ``RULES`` and for ``cross-validated`` (the choice left out)."""
    result = {}
    for name, rows in outcomes().items():
        scores: dict[str, tuple[int, int]] = {w: (sum(r[w] for _, r in rows), len(rows)) for w in PREFERENCE}
        scores["cross-validated"] = (cross_validated(rows), len(rows))
        result[name] = scores
    return result


def main() -> int:
    from models.benchmark import format_table

    result = evaluate()
    sets = list(result)
    table = [[f"{rule}{' (default)' if rule == DEFAULT else ''}",
              *(f"{r}/{t} = {100 * r / max(1, t):.1f} %" for r, t in (result[s][rule] for s in sets))]
             for rule in (*PREFERENCE, "cross-validated")]
    table[-1][0] = "choice cross-validated"
    print(format_table(["rule", *sets], table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
