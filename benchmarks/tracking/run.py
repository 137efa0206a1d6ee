"""Tracking quality gate: detector + ByteTracker on the annotated vtest.avi span, scored with MOTA/IDF1.

Runs the model zoo's detector (the configured one unless ``--detector``) on every analysed frame of
the annotated span (video frames 0–198, every 2nd = 5 fps analysis rate), feeds the person and vehicle
detections — after the detect worker's cross-class suppression (``detect.suppress_iou`` over
``detect.confusable_classes``; ``--suppress-iou 0`` turns it off) — to :class:`pipeline.tracking.ByteTracker`
with timestamps in seconds, and scores the tracks
against ``data/vtest/gt.txt`` (IoU >= 0.5). Prints one row per class set (``person``, ``all`` =
persons + parked vehicles), compares with ``baseline.json`` and exits 1 if MOTA or IDF1 of any row
dropped by more than 0.02 (``--tolerance``). ``--update-baseline`` writes the new figures instead.

    .venv/bin/python benchmarks/tracking/run.py
    .venv/bin/python benchmarks/tracking/run.py --update-baseline
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.tracking.annotate import VIDEO, video_frames  # noqa: E402
from benchmarks.tracking.mot_metrics import MotAccumulator, MotRow, read_mot_csv, write_mot_csv  # noqa: E402
from pipeline.config.detect import DetectConfig  # noqa: E402
from pipeline.core import Detections  # noqa: E402
from pipeline.tracking import ByteTracker, TrackerConfig, suppress_confusable  # noqa: E402

HERE = Path(__file__).resolve().parent
GT = HERE / "data" / "vtest" / "gt.txt"
BASELINE = HERE / "baseline.json"
FPS = 10.0
STEP = 2
# detector class name -> ground-truth class (MOTChallenge numbering: 1 pedestrian, 3 car)
GT_CLASS = {"person": 1, "car": 3, "truck": 3, "bus": 3}
CLASS_SETS = {"person": (1,), "all": (1, 3)}
METRIC_KEYS = ("mota", "idf1", "motp", "idsw", "fp", "fn", "precision", "recall", "gt", "gt_ids", "hyp_ids")


@dataclass
class Result:
    summaries: dict[str, dict[str, Any]]
    frames: int
    detect_s: float
    track_s: float
    hypotheses: list[MotRow] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / max(self.detect_s + self.track_s, 1e-9)


def load_gt(path: Path = GT) -> dict[int, list[MotRow]]:
    """Ground truth by 0-based video frame index."""
    frames: dict[int, list[MotRow]] = defaultdict(list)
    for row in read_mot_csv(path):
        frames[row.frame - 1].append(row)
    return frames


def tracked_classes(dets: Detections) -> Detections:
    """Keep only rows whose class is scored (person, car/truck/bus)."""
    keep = np.array([dets.class_name(i) in GT_CLASS for i in range(len(dets))], dtype=bool)
    return dets[keep] if len(dets) else dets


def run_span(
    detector: Any,
    make_tracker: Callable[[], ByteTracker],
    start: int = 0,
    stop: int = 200,
    step: int = STEP,
    gt_path: Path = GT,
    video: Path = VIDEO,
    suppress_iou: float | None = None,
) -> Result:
    """Detect + track video frames ``start..stop`` (0-based, exclusive) every ``step``; score them.

    ``suppress_iou``: apply the detect worker's cross-class suppression at this IoU first (None: off)."""
    groups = DetectConfig().confusable_classes
    gt = load_gt(gt_path)
    tracker = make_tracker()
    accumulators = {name: MotAccumulator(0.5) for name in CLASS_SETS}
    hypotheses: list[MotRow] = []
    detect_s = track_s = 0.0
    frames = 0
    for index, image in video_frames(video, set(range(start, stop, step))):
        t0 = time.monotonic()
        dets = tracked_classes(detector.detect(image))
        if suppress_iou is not None:
            dets = dets[suppress_confusable(dets, groups, suppress_iou)]
        t1 = time.monotonic()
        tracks = tracker.update(dets, index / FPS)
        t2 = time.monotonic()
        detect_s += t1 - t0
        track_s += t2 - t1
        frames += 1
        hyp_cls = np.array([GT_CLASS[tracks.class_name(i)] for i in range(len(tracks))], dtype=np.int64)
        for i in range(len(tracks)):
            box = tuple(float(v) for v in tracks.xyxy[i])
            hypotheses.append(MotRow(index + 1, int(tracks.tracker_id[i]), box, float(tracks.confidence[i]),  # type: ignore[arg-type]
                                     int(hyp_cls[i]), 1.0))
        rows = gt.get(index, [])
        for name, classes in CLASS_SETS.items():
            g = [r for r in rows if r.cls in classes]
            keep = np.isin(hyp_cls, classes)
            accumulators[name].update(
                [r.track_id for r in g],
                np.array([r.xyxy for r in g]).reshape(-1, 4),
                tracks.tracker_id[keep],
                tracks.xyxy[keep],
                gt_classes=[r.cls for r in g],
                hyp_classes=hyp_cls[keep],
                gt_ignore=[r.conf == 0 for r in g],
            )
    summaries = {name: acc.summary().as_dict() for name, acc in accumulators.items()}
    return Result(summaries, frames, detect_s, track_s, hypotheses)


def make_detector(model_id: str | None, score: float) -> Any:
    """The zoo's detector with its score floor set to the tracker's ``low_thresh``."""
    from models.zoo import ModelZoo, models_config

    config = models_config().model_copy(update={"detect_score": score})
    return ModelZoo(config).detector(model_id)


def format_table(result: Result, baseline: dict[str, Any] | None) -> str:
    head = f"{'set':<7} {'MOTA':>7} {'IDF1':>7} {'MOTP':>6} {'IDSW':>5} {'FP':>5} {'FN':>5} {'prec':>6} {'rec':>6}"
    head += f" {'GT':>5} {'ids':>7}   vs baseline (MOTA / IDF1)"
    lines = [head, "-" * len(head)]
    for name, s in result.summaries.items():
        line = (f"{name:<7} {s['mota']:>7.3f} {s['idf1']:>7.3f} {s['motp']:>6.3f} {s['idsw']:>5d} {s['fp']:>5d}"
                f" {s['fn']:>5d} {s['precision']:>6.3f} {s['recall']:>6.3f} {s['gt']:>5d}"
                f" {s['hyp_ids']:>3d}/{s['gt_ids']:<3d}")
        ref = (baseline or {}).get("results", {}).get(name)
        if ref:
            line += f"   {s['mota'] - ref['mota']:+.3f} / {s['idf1'] - ref['idf1']:+.3f}"
        lines.append(line)
    per_frame = 1000 * result.track_s / max(result.frames, 1)
    lines.append(f"{result.frames} frames: {result.fps:.1f} fps detector+tracker on this machine "
                 f"(detector {1000 * result.detect_s / max(result.frames, 1):.1f} ms/frame, "
                 f"tracker {per_frame:.2f} ms/frame)")
    return "\n".join(lines)


def regressions(result: Result, baseline: dict[str, Any], tolerance: float) -> list[str]:
    out = []
    for name, ref in baseline.get("results", {}).items():
        now = result.summaries.get(name)
        if now is None:
            out.append(f"{name}: missing from this run")
            continue
        for key in ("mota", "idf1"):
            if now[key] < ref[key] - tolerance:
                out.append(f"{name} {key.upper()} {now[key]:.3f} < baseline {ref[key]:.3f} - {tolerance}")
    return out


def baseline_record(result: Result, detector_id: str, config: TrackerConfig,
                    suppress_iou: float | None = None) -> dict[str, Any]:
    cfg = {k: getattr(config, k) for k in config.__dataclass_fields__ if k != "noise"}
    cfg["noise"] = vars(config.noise)
    return {
        "span": {"video": "vtest.avi", "first_frame": 0, "last_frame": 198, "step": STEP, "fps": FPS},
        "detector": detector_id,
        "suppress_iou": suppress_iou,
        "tracker": cfg,
        "results": {name: {k: s[k] for k in METRIC_KEYS} for name, s in result.summaries.items()},
        "timing_note": f"{result.fps:.1f} fps detector+tracker on {platform.machine()} "
                       f"({platform.processor() or 'cpu'}); informational, not gated",
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = TrackerConfig()
    p = argparse.ArgumentParser(description="Tracking quality gate on the annotated vtest.avi span.")
    p.add_argument("--detector", default=None, help="registry id (default: the configured detector)")
    p.add_argument("--baseline", type=Path, default=BASELINE)
    p.add_argument("--update-baseline", action="store_true", help="write the figures to the baseline file")
    p.add_argument("--tolerance", type=float, default=0.02, help="allowed drop of MOTA/IDF1 (default 0.02)")
    p.add_argument("--save-hypotheses", type=Path, help="write tracker output as a MOTChallenge file")
    p.add_argument("--json", action="store_true", help="print the summaries as JSON too")
    for name in ("track_thresh", "low_thresh", "new_track_thresh", "match_thresh", "low_match_thresh",
                 "tentative_match_thresh", "track_buffer_s"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    p.add_argument("--min-hits", type=int, default=defaults.min_hits)
    p.add_argument("--suppress-iou", type=float, default=DetectConfig().suppress_iou or 0.0,
                   help="cross-class suppression IoU as in the detect worker (0: off; default: detect's)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = TrackerConfig(
        track_thresh=args.track_thresh, low_thresh=args.low_thresh, new_track_thresh=args.new_track_thresh,
        match_thresh=args.match_thresh, low_match_thresh=args.low_match_thresh,
        tentative_match_thresh=args.tentative_match_thresh, track_buffer_s=args.track_buffer_s,
        min_hits=args.min_hits,
    )
    detector = make_detector(args.detector, config.low_thresh)
    suppress_iou = args.suppress_iou or None
    result = run_span(detector, lambda: ByteTracker.from_config(config), suppress_iou=suppress_iou)
    baseline = json.loads(args.baseline.read_text()) if args.baseline.is_file() else None
    print(f"detector {detector.model_id} (score >= {config.low_thresh}), ByteTracker "
          f"track/low/new = {config.track_thresh}/{config.low_thresh}/{config.new_track_thresh}, "
          f"buffer {config.track_buffer_s} s, min_hits {config.min_hits}, cross-class suppression "
          f"{'off' if suppress_iou is None else f'IoU >= {suppress_iou}'}")
    print(format_table(result, baseline))
    if args.json:
        print(json.dumps(result.summaries, indent=2))
    if args.save_hypotheses:
        write_mot_csv(args.save_hypotheses, result.hypotheses)
    if args.update_baseline:
        args.baseline.write_text(json.dumps(baseline_record(result, detector.model_id, config, suppress_iou), indent=2) + "\n")
        print(f"baseline written to {args.baseline}")
        return 0
    if baseline is None:
        print(f"no baseline at {args.baseline}; run with --update-baseline", file=sys.stderr)
        return 2
    failed = regressions(result, baseline, args.tolerance)
    for line in failed:
        print("REGRESSION:", line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
