"""Look-alike costs measured from the plate reader's own errors (pipeline/lookalikes.py), cross-validated.

For every labelled dev plate (as in plate_calibration.py) the ranked candidates' posteriors are soft counts of
"the reader says b where the label says a", per position. A pair's probability is its two directions' counts
over both characters' positions; its cost is ``clip(ln p / ln 0.001, 0.1, 1)``. The table prints:

* the measured pairs (inside the look-alike groups, and the strongest pairs outside them, to review the groups);
* grouped 5-fold CV: costs measured without the fold, then for the fold's *wrong* reads whether the true plate
  is within the hotlist limit (``max_cost`` 1) of the read (an alert that would still fire), and for every pair of
  two different dev plates whether they would falsely match — with measured costs, with the flat 0.25 cost,
  and with no look-alikes at all.

    python benchmarks/models/plate_confusions.py [--write]

``--write`` stores the costs measured on all plates in pipeline/lookalikes.json: the pairs with evidence (cost
below 1). Pairs the dev set gives no evidence for — mostly letter/digit pairs such as ``0/O``, which the plate
grammar never lets the reader confuse inside one template but which differ between formats and regions — keep
the configured ``hotlists.confusion_cost``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
from _common import ROOT, TESTDATA, table
from plate_calibration import collect


def soft_counts(samples: list) -> tuple[dict[tuple[str, str], float], dict[str, float]]:  # noqa: ANN001
    """(a, b) → expected count of reading b where the label has a; a → positions labelled a."""
    from models.plates.scoring import PlateCalibration

    calibration = PlateCalibration.load()
    pairs: dict[tuple[str, str], float] = defaultdict(float)
    totals: dict[str, float] = defaultdict(float)
    for sample in samples:
        scores = sample.candidates.scores(calibration)
        posterior = np.exp(scores - scores.max())
        posterior /= posterior.sum()
        truth = sample.candidates.texts[sample.truth]
        for ch in truth:
            totals[ch] += 1.0
        for text, p in zip(sample.candidates.texts, posterior, strict=True):
            if len(text) != len(truth) or text == truth:
                continue
            for a, b in zip(truth, text, strict=True):
                if a != b:
                    pairs[(a, b)] += float(p)
    return pairs, totals


def measured_costs(samples: list) -> dict[str, float]:  # noqa: ANN001
    from pipeline.lookalikes import cost_from_probability, pair_key

    pairs, totals = soft_counts(samples)
    out: dict[str, float] = {}
    for a, b in {tuple(sorted(k)) for k in pairs}:
        p = (pairs.get((a, b), 0.0) + pairs.get((b, a), 0.0)) / max(1.0, totals.get(a, 0.0) + totals.get(b, 0.0))
        out[pair_key(a, b)] = round(cost_from_probability(p), 3)
    return out


def evaluate(samples: list, k: int = 5) -> list[list[str]]:  # noqa: ANN001
    from models.plates.fit import _folds, predict
    from models.plates.scoring import PlateCalibration
    from pipeline.lookalikes import DEFAULT_GROUPS, LookAlikes
    from workers.plate.matching import weighted_distance

    calibration = PlateCalibration.load()
    folds = _folds([s.group for s in samples], k, 0)
    results = {"measured costs": [0, 0, 0], "flat 0.25": [0, 0, 0], "no look-alikes": [0, 0, 0]}
    wrong_total = 0
    for f in range(k):
        train = [s for s, g in zip(samples, folds, strict=True) if g != f]
        test = [s for s, g in zip(samples, folds, strict=True) if g == f]
        tables = {
            "measured costs": LookAlikes(DEFAULT_GROUPS, 0.25, measured_costs(train)),
            "flat 0.25": LookAlikes(DEFAULT_GROUPS, 0.25),
            "no look-alikes": LookAlikes((), 0.25),
        }
        reads = [(s.candidates.texts[predict(s, calibration)[0]], s.candidates.texts[s.truth]) for s in test]
        wrong = [(r, t) for r, t in reads if r != t]
        wrong_total += len(wrong)
        truths = sorted({s.candidates.texts[s.truth] for s in samples})
        for name, lookalikes in tables.items():
            results[name][0] += sum(weighted_distance(r, t, lookalikes, 1.0) <= 1.0 for r, t in wrong)
            results[name][1] += sum(weighted_distance(r, t, lookalikes, 1.0) <= 0.5 for r, t in wrong)
            results[name][2] += sum(weighted_distance(r, other, lookalikes, 1.0) <= 1.0
                                    for r, t in reads for other in truths if other != t)
    pairs = sum(len({s.candidates.texts[s.truth] for s in samples}) - 1 for _ in samples)
    return [[name, f"{v[0]}/{wrong_total}", f"{v[1]}/{wrong_total}", f"{v[2]}/{pairs}"] for name, v in results.items()]


def main() -> None:
    from pipeline.lookalikes import DEFAULT_GROUPS, MEASURED_FILE, LookAlikes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the measured costs in pipeline/lookalikes.json")
    args = parser.parse_args()
    collected, _ = collect([TESTDATA / "plates" / "cn", TESTDATA / "plates" / "latin"], 1)
    samples = [s for _, s in collected if s is not None and s.truth is not None]
    costs = measured_costs(samples)
    grouped = LookAlikes(DEFAULT_GROUPS)
    inside = sorted(((p, c) for p, c in costs.items() if grouped.confusable(p[0], p[1])), key=lambda x: x[1])
    outside = sorted(((p, c) for p, c in costs.items() if not grouped.confusable(p[0], p[1])), key=lambda x: x[1])
    print(table(["pair in a group", "cost"], [[p, f"{c:.2f}"] for p, c in inside]))
    print()
    print(table(["strongest pairs outside the groups", "cost"], [[p, f"{c:.2f}"] for p, c in outside[:12]]))
    print()
    print(table(["look-alikes (5-fold CV)", "wrong reads still matching the truth (cost <= 1)",
                 "... within 0.5", "false matches between different dev plates"], evaluate(samples)))
    if args.write:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        doc = {"source": f"benchmarks/models/plate_confusions.py {stamp}: soft confusions of the ranked plate reader "
                         f"over {len(samples)} dev plates (testdata/plates cn + latin)",
               "costs": {p: c for p, c in inside if c < 1.0}}  # 1.0 = no evidence: the configured cost applies
        MEASURED_FILE.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", "utf-8")
        print(f"wrote {MEASURED_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
