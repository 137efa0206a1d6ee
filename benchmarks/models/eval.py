"""Every accuracy harness on the dev set, one table: what ``tubeline models eval`` prints.

    PYTHONPATH=. .venv/bin/python benchmarks/models/eval.py [--out var/eval] [--only plates,vehicles,...] [--json]

Sections (each the harness named; how its labels were made is written beside them):

* ``plates`` — ``plate_calibration.py``: CN and Latin exact reads with the shipped calibration and cross-validated,
  expected calibration error; PNG reliability diagram;
* ``vehicles`` — ``benchmarks/detect/vehicles.py``: close-up recall and vehicle-type accuracy, for the configured
  detector views and for ``stretch+square+square@2``;
* ``colours`` — ``benchmarks/detect/colour_accuracy.py``: vehicle colour, person upper/lower colour; and
  ``colour_cv.py``: the same with the colour rule (hue-vote weighting, share of lit pixels) chosen by
  leave-one-group-out cross-validation;
* ``faces`` — ``faces.py``: per embedder EER, margin, separation d′, cross-validated errors; PNG ROC;
* ``tracking`` — ``benchmarks/tracking/run.py``: MOTA / IDF1 on the annotated vtest span.

Writes ``eval.json`` (every figure, as numbers) and the PNGs into ``--out``. The floors that the suite holds
(``tests/unit/test_eval_floors.py``) are in ``eval_floors.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (ROOT, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

logger = logging.getLogger(__name__)

SECTIONS = ("plates", "vehicles", "colours", "faces", "tracking")
VIEWS = ("stretch", "square", "square@2")
Row = tuple[str, str, str, Any]  # section, measure, shown value, number(s) for eval.json


def _pct(right: int, total: int) -> str:
    return f"{right}/{total} = {100 * right / max(1, total):.1f} %"


def plates(out: Path) -> list[Row]:
    import numpy as np
    import plate_calibration as pc

    from models.evaluation import expected_calibration_error
    from models.plates.fit import cross_validate
    from models.plates.scoring import CALIBRATION_FILE, PlateCalibration

    samples, _ = pc.collect([pc.TESTDATA / "plates" / "cn", pc.TESTDATA / "plates" / "latin"], 1)
    shipped = pc.outcomes(samples, PlateCalibration.load(CALIBRATION_FILE))
    usable = [s for _, s in samples if s is not None]
    folds = iter(cross_validate(usable, pc.STRENGTHS))
    cv = [(name, *next(folds)) if s is not None else (name, False, 0.0) for name, s in samples]
    rows: list[Row] = []
    for label, series in (("shipped calibration", shipped), ("cross-validated", cv)):
        for region in ("cn", "latin"):
            part = [r for r in series if r[0] == region]
            right = sum(r[1] for r in part)
            rows.append(("plates", f"{region.upper() if region == 'cn' else 'Latin'} exact, {label}",
                         _pct(right, len(part)), [right, len(part)]))
        ece = expected_calibration_error([r[2] for r in series], [r[1] for r in series])
        rows.append(("plates", f"calibration error (ECE), {label}", f"{ece:.3f}", round(ece, 4)))
    wrong = [r[2] for r in cv if not r[1]]
    rows.append(("plates", "highest confidence of a wrong read (CV)", f"{max(wrong, default=0.0):.2f}",
                 round(float(np.max(wrong)) if wrong else 0.0, 4)))
    pc.reliability_png(out / "plate_reliability.png", {"shipped": shipped, "cross-validated": cv})
    return rows


def vehicles(out: Path) -> list[Row]:
    from benchmarks.detect.vehicles import evaluate
    from models.zoo import ModelZoo

    zoo = ModelZoo.from_config()
    detectors: list[tuple[str, Callable[[], Any]]] = [("configured", zoo.detector)]
    try:
        from models.multiview import MultiViewDetector

        base = zoo.detector()
        detectors.append(("+".join(VIEWS), lambda: MultiViewDetector(getattr(base, "base", base), VIEWS)))
    except ImportError:  # code from before the multi-view detector
        pass
    rows: list[Row] = []
    for name, build in detectors:
        detector = build()
        result = evaluate(detector)
        label = f"{name}: {detector.model_id}" if name == "configured" else name
        rows += [
            ("vehicles", f"close-up recall ({label})", _pct(result.close_found, result.close_total),
             [result.close_found, result.close_total]),
            ("vehicles", f"type accuracy ({label})", _pct(result.type_right, result.type_labelled),
             [result.type_right, result.type_labelled]),
            ("vehicles", f"vehicle recall, all sizes ({label})", _pct(result.found, result.total),
             [result.found, result.total]),
        ]
    return rows


def colours(out: Path) -> list[Row]:
    from benchmarks.detect.colour_accuracy import evaluate

    rows: list[Row] = [("colours", name, _pct(s.right, s.total), [s.right, s.total])
                       for name, s in evaluate().items()]
    try:
        import colour_cv
    except ImportError:  # code from before the hue-vote weighting
        return rows
    for name, scores in colour_cv.evaluate().items():
        right, total = scores["cross-validated"]
        rows.append(("colours", f"{name}, rule chosen cross-validated", _pct(right, total), [right, total]))
    return rows


def faces(out: Path) -> list[Row]:
    import faces as harness

    from models.registry import RegistryError

    known = [e for e in harness.DEFAULT_EMBEDDERS if _registered(e)]
    try:
        results = harness.evaluate(tuple(known), plot=out / "face_roc.png")
    except RegistryError as exc:  # pragma: no cover - registry without one of them
        return [("faces", "error", str(exc), None)]
    rows: list[Row] = []
    for embedder, r in results.items():
        for key in ("EER", "margin (genuine min - impostor max)", "separation d'",
                    "cross-validated errors (rejects / accepts / pairs)"):
            if key in r:
                rows.append(("faces", f"{key} ({embedder})", str(r[key]), r[key]))
    return rows


def _registered(model_id: str) -> bool:
    from models.zoo import ModelZoo

    return model_id in ModelZoo.from_config().registry


def tracking(out: Path) -> list[Row]:
    from benchmarks.tracking.run import make_detector, run_span
    from pipeline.config.detect import DetectConfig
    from pipeline.tracking import ByteTracker, TrackerConfig

    config = TrackerConfig()
    detector = make_detector(None, config.low_thresh)
    result = run_span(detector, lambda: ByteTracker.from_config(config), suppress_iou=DetectConfig().suppress_iou)
    rows: list[Row] = []
    for name, summary in result.summaries.items():
        rows.append(("tracking", f"MOTA / IDF1 ({name})", f"{summary['mota']:.3f} / {summary['idf1']:.3f}",
                     [round(summary["mota"], 4), round(summary["idf1"], 4)]))
    return rows


HARNESSES: dict[str, Callable[[Path], list[Row]]] = {
    "plates": plates, "vehicles": vehicles, "colours": colours, "faces": faces, "tracking": tracking}


def run(out: Path, only: tuple[str, ...] = SECTIONS) -> list[Row]:
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for name in only:
        started = time.monotonic()
        logger.info("eval: %s", name)
        rows += HARNESSES[name](out)
        logger.info("eval: %s took %.1f s", name, time.monotonic() - started)
    (out / "eval.json").write_text(json.dumps({f"{s}: {m}": v for s, m, _, v in rows}, ensure_ascii=False,
                                              indent=1) + "\n", encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    from models.benchmark import format_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "eval")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated, of: {', '.join(SECTIONS)}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    only = tuple(s for s in args.only.split(",") if s)
    unknown = [s for s in only if s not in HARNESSES]
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    rows = run(args.out, only)
    if args.json:
        print(json.dumps({f"{s}: {m}": v for s, m, _, v in rows}, ensure_ascii=False, indent=1))
    else:
        print(format_table(["section", "measure", "value"], [[s, m, v] for s, m, v, _ in rows]))
        print(f"figures and plots in {args.out}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    raise SystemExit(main())
