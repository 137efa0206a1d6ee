"""Plate reads you can rank: accuracy and calibration error before and after ranking/calibration, on the dev set.

For every labelled plate of ``../shared/testdata/plates/{cn,latin}`` (crops; in scenes the detected plate whose
candidates hold the label) it collects the readings' candidate texts once, then prints one table:

* ``single read`` — the pre-ranking rule: each reading decoded alone, the most confident valid one wins, its
  confidence the geometric mean of the characters' peak probabilities;
* ``ranked, uncalibrated`` — all readings ranked together (models/plates/scoring.py), weight 1, no priors;
* ``ranked, calibrated, no η (cross-validated)`` — weight and priors fitted with nested, grouped 5-fold CV: every
  plate is scored by a fit that never saw it (or another photo of the same plate); no unseen-error rate;
* ``ranked, calibrated (cross-validated)`` — the same with the unseen-error rate η, itself fitted on held-out reads
  inside each training part (models/plates/fit.py);
* ``ranked, calibrated (fit on all)`` — the shipped fit, scored on the data it was fitted on (optimistic).

    python benchmarks/models/plate_calibration.py [--write] [--plot reliability.png] [--views N]

``--write`` stores the fit on all plates in models/plates/calibration.json (what the reader loads).
"""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from _common import ROOT, TESTDATA, table, zoo

STRENGTHS = (0.1, 0.3, 1.0, 3.0)


def collect(folders: list[Path], views: int) -> tuple[list, list]:
    """(samples for the fit, single-read outcomes) over the labelled plates of ``folders``."""
    from models.evaluation import plate_matches
    from models.plates.fit import Sample
    from models.plates.reader import pick_best

    recognizer = zoo().plate_recognizer()
    reader = recognizer.reader
    reader.views = views
    samples, singles = [], []
    for folder in folders:
        with (folder / "labels.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            image = cv2.imread(str(folder / row["file"]))
            for label in [p for p in row["plates"].split(";") if p]:
                readings = plate_readings(recognizer, image, row["kind"], label)
                candidates, single = reader.propose(readings)
                old = pick_best(single)
                singles.append((folder.name, plate_matches(old.text, label), old.confidence))
                if candidates is None:
                    samples.append((folder.name, None))
                    continue
                truth = next((i for i, t in enumerate(candidates.texts) if plate_matches(t, label)), None)
                samples.append((folder.name, Sample(candidates, truth, f"{folder.name}:{label.strip('?')}")))
    return samples, singles


def plate_readings(recognizer, image: np.ndarray, kind: str, label: str) -> list[np.ndarray]:  # noqa: ANN001
    """The readings the pipeline ranks for this plate (crop: whole + character band + detector quad; scene: the detected plate
    whose single best read matches the label, else the most confident one)."""
    from models.evaluation import plate_matches

    reader = recognizer.reader
    if kind == "crop":
        height, width = image.shape[:2]
        border = max(height, width) // 2
        padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=(127,) * 3)
        readings = reader.candidates(image, np.float32([[0, 0], [width, 0], [width, height], [0, height]]))
        readings += reader.band_reading(image)
        found = recognizer.detector.detect(padded, score=recognizer.crop_score)
        if len(found):
            readings += reader.candidates(padded, found.data["corners"][int(np.argmax(found.confidence))])
        return readings
    plates = recognizer.detector.detect(image)
    options = [reader.candidates(image, quad) for quad in plates.data.get("corners", [])]
    for readings in options:
        candidates, _ = reader.propose(readings)
        if candidates is not None and any(plate_matches(t, label) for t in candidates.texts):
            return readings
    return options[0] if options else []


def outcomes(samples: list, calibration) -> list[tuple[str, bool, float]]:  # noqa: ANN001
    from models.plates.fit import predict

    out = []
    for name, sample in samples:
        if sample is None:
            out.append((name, False, 0.0))
            continue
        chosen, posterior = predict(sample, calibration)
        out.append((name, chosen == sample.truth, posterior))
    return out


def summarise(label: str, rows: list[tuple[str, bool, float]]) -> list[str]:
    from models.evaluation import expected_calibration_error

    cells = [label]
    for name in ("cn", "latin"):
        part = [r for r in rows if r[0] == name]
        cells.append(f"{sum(r[1] for r in part)}/{len(part)} = {100 * np.mean([r[1] for r in part]):.1f} %")
    right = [r[1] for r in rows]
    conf = [r[2] for r in rows]
    wrong_conf = [c for c, ok in zip(conf, right, strict=True) if not ok]
    cells += [f"{expected_calibration_error(conf, right):.3f}", f"{max(wrong_conf, default=0):.2f}",
              f"{np.mean([c >= 0.9 for c in wrong_conf]) if wrong_conf else 0:.2f}"]
    return cells


def reliability_png(path: Path, series: dict[str, list[tuple[str, bool, float]]], bins: int = 10) -> None:
    """A reliability diagram (accuracy per confidence bin against the diagonal), drawn with OpenCV."""
    size, pad = 480, 50
    canvas = np.full((size + 2 * pad, size + 2 * pad + 220, 3), 255, np.uint8)
    cv2.rectangle(canvas, (pad, pad), (pad + size, pad + size), (0, 0, 0), 1)
    cv2.line(canvas, (pad, pad + size), (pad + size, pad), (160, 160, 160), 1)
    colours = [(0, 0, 200), (200, 120, 0), (0, 150, 0), (120, 0, 160)]
    for n, (name, rows) in enumerate(series.items()):
        conf = np.array([r[2] for r in rows])
        right = np.array([r[1] for r in rows], float)
        which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
        points = [(int(pad + size * conf[which == b].mean()), int(pad + size * (1 - right[which == b].mean())))
                  for b in range(bins) if (which == b).any()]
        for a, b in zip(points, points[1:], strict=False):
            cv2.line(canvas, a, b, colours[n % 4], 2)
        for p in points:
            cv2.circle(canvas, p, 4, colours[n % 4], -1)
        cv2.putText(canvas, name, (pad + size + 10, pad + 20 + 22 * n), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colours[n % 4])
    cv2.putText(canvas, "confidence", (pad + size // 2 - 40, pad + size + 35), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0)
    cv2.putText(canvas, "accuracy", (5, pad - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0)
    cv2.imwrite(str(path), canvas)


def run(views: int = 1, write: bool = False, plot: Path | None = None) -> dict[str, list[str]]:
    from models.plates.fit import cross_validate, fit_all
    from models.plates.scoring import CALIBRATION_FILE, PlateCalibration

    samples, singles = collect([TESTDATA / "plates" / "cn", TESTDATA / "plates" / "latin"], views)
    usable = [s for _, s in samples if s is not None]

    def cv_rows(char_error: bool) -> list[tuple[str, bool, float]]:
        it = iter(cross_validate(usable, STRENGTHS, char_error=char_error))
        return [(name, *next(it)) if s is not None else (name, False, 0.0) for name, s in samples]

    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    shipped = fit_all(usable, STRENGTHS, source=f"benchmarks/models/plate_calibration.py {stamp}: {len(usable)} dev "
                      f"plates (testdata/plates cn + latin), views {views}, char_error on held-out reads (4-fold)")
    series = {
        "single read (before)": list(singles),
        "ranked, uncalibrated": outcomes(samples, PlateCalibration()),
        "ranked, calibrated, no η (5-fold CV)": cv_rows(False),
        "ranked, calibrated (5-fold CV)": cv_rows(True),
        "ranked, calibrated (fit on all)": outcomes(samples, shipped),
    }
    rows = [summarise(k, v) for k, v in series.items()]
    print(table(["reads", "CN exact", "Latin exact", "ECE", "max conf. wrong", "wrong ≥ 0.9"], rows))
    print(f"\nweight {shipped.weight}, char_error {shipped.char_error} ({shipped.source}), priors: "
          + json.dumps(shipped.priors, ensure_ascii=False))
    if write:
        CALIBRATION_FILE.write_text(json.dumps(shipped.to_dict(), ensure_ascii=False, indent=1) + "\n", "utf-8")
        print(f"wrote {CALIBRATION_FILE.relative_to(ROOT)}")
    if plot:
        reliability_png(plot, series)
        print(f"wrote {plot}")
    return {r[0]: r for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the fit in models/plates/calibration.json")
    parser.add_argument("--plot", type=Path, help="write a reliability diagram (PNG)")
    parser.add_argument("--views", type=int, default=1, help="rectifications per plate (models.plate_views)")
    args = parser.parse_args()
    run(args.views, args.write, args.plot)


if __name__ == "__main__":
    main()
