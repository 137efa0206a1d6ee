"""Condensation vs collision on vtest and the one-hour benchmark: the arrangement before and after, same run.

    nice -n 10 .venv/bin/python benchmarks/synopsis/curve.py --png docs/img/synopsis-collision-curve.png
    nice -n 10 .venv/bin/python benchmarks/synopsis/curve.py --skip-hour          # vtest only (~1 min)
    # split over processes, then one table and picture:
    nice -n 10 .venv/bin/python benchmarks/synopsis/curve.py --skip-vtest --hour 10 --json a.json
    nice -n 10 .venv/bin/python benchmarks/synopsis/curve.py --hour 30 60 --json b.json
    .venv/bin/python benchmarks/synopsis/curve.py --merge a.json b.json --png curve.png

Inputs are ``prepare.py``'s (kept in ``--work``). For every condensation ×c the synopsis of the whole window is
*planned* with the product's own code (``workers.synopsis.builder.plan_synopsis``: tracks → tubes → arrangement)
at length window / c, twice:

- **before**: ``arrange.max_speedup = max_still_speedup = 1`` — groups play at the speed that fits them (real time, or the
  time-lapse of a group longer than the synopsis), the arrangement as it was before speed-ups existed;
- **after**: the configured defaults (the optimiser may also speed a group up, see ``docs/synopsis.md``).

Collision and chronology are computed by ``workers.synopsis.builder.plan_quality``, the function behind the
metrics every synopsis index carries: collision ratio = Σ over synopsis frames of each box's area that lies in
any other box / Σ box areas (exact, from the boxes as shown; ``workers/synopsis/metrics.py``); the source's
figure is the same measure on the original timeline. Pixels are not rendered (rendering does not change these
figures); ``bench_synopsis.py`` renders and times whole builds. Condensation is measured like the index's:
window / (last shown synopsis frame + 1) / fps. Arrange time is CPU seconds of this process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.config.synopsis import SynopsisConfig
from pipeline.store.local import LocalStore
from workers.synopsis import MemoryTrackSource, SynopsisRequest
from workers.synopsis.builder import plan_quality, plan_synopsis
from workers.synopsis.render import schedule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import Prepared, prepare_hour, prepare_vtest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GOAL_MARGIN = 0.10
"""Issue 19: at x10 the collision ratio should stay within source + 0.10."""


@dataclass
class Point:
    video: str
    arrangement: str
    target: float
    length_s: float
    condensation: float
    collision: float
    source: float
    chronology: float
    sped_up: float
    median_speed: float
    max_speed: float
    arrange_cpu_s: float


def arrangements(args: argparse.Namespace) -> dict[str, dict]:
    after: dict = {}
    if args.speed_cost is not None:
        after["speed_cost"] = args.speed_cost
    if args.max_speedup is not None:
        after["max_speedup"] = args.max_speedup
    if args.chronology_cost is not None:
        after["chronology_cost_s"] = args.chronology_cost
    if args.after_only:
        return {"after": after}
    return {"before": {"max_speedup": 1.0, "max_still_speedup": 1.0}, "after": after}


def measure(prepared: Prepared, name: str, target: float, arrangement: str, overrides: dict, width: int) -> Point:
    settings = SynopsisConfig.model_validate({"render": {"max_width": width, "max_height": width * 3 // 4},
                                              "arrange": overrides})
    request = SynopsisRequest(camera_id=prepared.camera, start=prepared.start, end=prepared.end,
                              length_s=prepared.source_s / target, requested_by="benchmark")
    source = MemoryTrackSource.from_jsonl(prepared.tracks)
    cpu = time.process_time()
    plan = plan_synopsis(LocalStore(prepared.store_root), request, source, settings)
    cpu = time.process_time() - cpu
    quality = plan_quality(plan)
    _, frames = schedule(plan.tubes, plan.arrangement)
    placed = [t for t in plan.tubes if plan.arrangement.tube_start(t) >= 0]
    factors = plan.arrangement.speeds
    speeds = np.array([t.speed for t in placed])
    return Point(
        video=name, arrangement=arrangement, target=target, length_s=request.length_s or 0.0,
        condensation=(plan.window[1] - plan.window[0]) / (max(frames, 1) / plan.fps),
        collision=quality.collision_ratio, source=quality.source_collision_ratio,
        chronology=quality.chronology_violations / max(1, quality.chronology_pairs),
        sped_up=float((factors > 1.0).mean()) if len(factors) else 0.0,
        median_speed=float(np.median(speeds)) if len(speeds) else 1.0,
        max_speed=float(speeds.max()) if len(speeds) else 1.0, arrange_cpu_s=cpu,
    )


def table(points: list[Point]) -> str:
    lines = [
        "| video | target | before: x, collision, chronology, CPU | after: x, collision, chronology, CPU | "
        "after: groups sped up, median / max object speed | source | after <= source + 0.10 (the goal at x10) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_key = {(p.video, p.target, p.arrangement): p for p in points}
    videos = list(dict.fromkeys(p.video for p in points))
    for video, target in sorted(dict.fromkeys((p.video, p.target) for p in points), key=lambda k: (videos.index(k[0]), k[1])):
        b, a = by_key[(video, target, "before")], by_key[(video, target, "after")]
        met = "yes" if a.collision <= a.source + GOAL_MARGIN else "no"
        lines.append(
            f"| {video} | x{target:g} ({b.length_s:.1f} s) | x{b.condensation:.1f}, {b.collision:.3f}, "
            f"{b.chronology:.1%}, {b.arrange_cpu_s:.1f} s | x{a.condensation:.1f}, {a.collision:.3f}, "
            f"{a.chronology:.1%}, {a.arrange_cpu_s:.1f} s | {a.sped_up:.0%}, {a.median_speed:.1f} / {a.max_speed:.0f} | "
            f"{a.source:.3f} | {met} |"
        )
    return "\n".join(lines)


# -- the picture (OpenCV: the project has no plotting library) -----------------------------------------------
_W, _H, _M = 560, 400, 60
_COLOURS = {"before": (60, 60, 220), "after": (200, 120, 30)}


def _panel(points: list[Point], title: str) -> np.ndarray:
    img = np.full((_H, _W, 3), 255, np.uint8)
    x_lo, x_hi = 1.0, 100.0
    left, right, top, bottom = _M, _W - 20, 40, _H - _M

    def xy(x: float, y: float) -> tuple[int, int]:
        fx = (np.log10(x) - np.log10(x_lo)) / (np.log10(x_hi) - np.log10(x_lo))
        return int(left + fx * (right - left)), int(bottom - min(max(y, 0.0), 1.0) * (bottom - top))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for y in np.arange(0.0, 1.01, 0.2):
        cv2.line(img, xy(x_lo, y), xy(x_hi, y), (225, 225, 225), 1)
        cv2.putText(img, f"{y:.1f}", (8, xy(x_lo, y)[1] + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for x in (1, 2, 5, 10, 20, 50, 100):
        cv2.line(img, xy(x, 0), xy(x, 1), (225, 225, 225), 1)
        cv2.putText(img, f"x{x}", (min(xy(x, 0)[0] - 10, _W - 40), bottom + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
    source = float(np.median([p.source for p in points]))
    for y, colour, label in ((source, (0, 150, 0), f"source {source:.3f}"),
                             (source + GOAL_MARGIN, (0, 150, 0), "source + 0.10")):
        a, b = xy(x_lo, y), xy(x_hi, y)
        for x0 in range(a[0], b[0], 12):
            cv2.line(img, (x0, a[1]), (min(x0 + 6, b[0]), a[1]), colour, 1)
        cv2.putText(img, label, (a[0] + 4, a[1] - 4), font, 0.4, colour, 1, cv2.LINE_AA)
    x10 = xy(10, 0)[0]
    cv2.line(img, (x10, top), (x10, bottom), (120, 120, 120), 1)
    for name, colour in _COLOURS.items():
        series = sorted((p for p in points if p.arrangement == name), key=lambda p: p.condensation)
        pts = [xy(p.condensation, p.collision) for p in series]
        for p, q in zip(pts, pts[1:], strict=False):
            cv2.line(img, p, q, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, colour, -1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 25), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "condensation (log)", (left + 150, _H - 12), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (name, colour) in enumerate(_COLOURS.items()):
        cv2.putText(img, name, (left + 10, top + 20 + 18 * k), font, 0.5, colour, 1, cv2.LINE_AA)
    return img


def picture(points: list[Point], png: Path) -> None:
    titles = {"vtest": "vtest.avi (79.5 s): collision ratio", "hour": "one hour of vtest: collision ratio"}
    panels = [_panel([p for p in points if p.video == v], titles.get(v, v)) for v in dict.fromkeys(p.video for p in points)]
    png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(png), np.hstack(panels), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench-synopsis", help="Inputs (prepare.py).")
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared" / "testdata" / "vtest.avi")
    parser.add_argument("--vtest", type=float, nargs="+", default=[2, 3, 5.3, 7.5, 10, 15, 20, 30],
                        help="Condensations for vtest.")
    parser.add_argument("--hour", type=float, nargs="+", default=[5, 10, 15, 20, 30, 60], help="Condensations for the hour.")
    parser.add_argument("--max-width", type=int, default=768, help="Output width for vtest (768 = full size).")
    parser.add_argument("--hour-max-width", type=int, default=384, help="Output width for the hour.")
    parser.add_argument("--speed-cost", type=float, help="Override arrange.speed_cost for 'after' (sensitivity runs).")
    parser.add_argument("--max-speedup", type=float, help="Override arrange.max_speedup for 'after'.")
    parser.add_argument("--chronology-cost", type=float, help="Override arrange.chronology_cost_s for 'after'.")
    parser.add_argument("--merge", type=Path, nargs="+", help="Only print the table (and PNG) of these JSON files "
                        "(runs split over processes).")
    parser.add_argument("--skip-vtest", action="store_true")
    parser.add_argument("--after-only", action="store_true", help="Sensitivity runs: skip 'before' (no table).")
    parser.add_argument("--skip-hour", action="store_true")
    parser.add_argument("--png", type=Path, help="Write the curve here.")
    parser.add_argument("--json", type=Path, help="Write the points here (default: {work}/curve.json).")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    if args.merge:
        points = [Point(**p) for f in args.merge for p in json.loads(f.read_text())]
        print(table(points))
        if args.png:
            picture(points, args.png)
            print(f"wrote {args.png}")
        return
    out = args.json or args.work / "curve.json"
    vtest = prepare_vtest(args.work, args.video)
    inputs = [] if args.skip_vtest else [("vtest", vtest, args.vtest, args.max_width)]
    if not args.skip_hour:
        inputs.append(("hour", prepare_hour(args.work, args.video, vtest), args.hour, args.hour_max_width))
    points = []
    for name, prepared, targets, width in inputs:
        for target in targets:
            for arrangement, overrides in arrangements(args).items():
                points.append(measure(prepared, name, target, arrangement, overrides, width))
                out.write_text(json.dumps([asdict(p) for p in points], indent=1))
                p = points[-1]
                print(f"{name} x{target:g} {arrangement}: collision {p.collision:.3f} (source {p.source:.3f}), "
                      f"chronology {p.chronology:.1%}, arrange {p.arrange_cpu_s:.1f} s CPU", flush=True)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if not args.after_only:
        print()
        print(table(points))
    if args.png and not args.after_only:
        picture(points, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
