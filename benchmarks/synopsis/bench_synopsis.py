"""Synopsis metrics on vtest.avi and on one hour made from it: condensation, collision, chronology, render speed.

    .venv/bin/python benchmarks/synopsis/bench_synopsis.py                      # everything (~10 min on 2 cores)
    .venv/bin/python benchmarks/synopsis/bench_synopsis.py --skip-hour          # vtest only (~1 min)
    .venv/bin/python benchmarks/synopsis/bench_synopsis.py --png docs/img/synopsis-side-by-side.png
    .venv/bin/python benchmarks/synopsis/bench_synopsis.py --vtest-lengths 7.95 --hour-lengths 360 --before
        # x10 on both, each built twice in the same run: before (arrange.max_speedup = max_still_speedup = 1) and after (defaults)

Inputs come from ``prepare.py`` (the real pipeline on vtest.avi; the hour recorded from vtest looped 46 times,
its tracks replicated with time shifts) and are kept in ``--work`` between runs. Each row is one synopsis built by
``workers.synopsis.build_synopsis`` from those recordings; figures are measured, not estimated:

- condensation = source window / synopsis length;
- collision ratio = overlapping box area / total box area over the synopsis frames (pairs), and the same on the
  source timeline for comparison (people in vtest overlap on their own);
- chronology = pairs of objects shown out of original start order / all pairs;
- render speed = synopsis frames / (backgrounds + mattes + compositing + H.264) seconds; build = everything.

``curve.py`` plots collision against condensation without rendering.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.config.synopsis import SynopsisConfig
from pipeline.store.local import LocalStore
from workers.synopsis import MemoryTrackSource, SynopsisRequest, build_synopsis
from workers.synopsis.builder import SynopsisResult

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import Prepared, prepare_hour, prepare_vtest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Row:
    name: str
    result: SynopsisResult
    wall_s: float


def build(prepared: Prepared, length_s: float, max_width: int, out: Path, classes: tuple[str, ...] = (),
          before: bool = False) -> Row:
    arrange = {"max_speedup": 1.0, "max_still_speedup": 1.0} if before else {}
    settings = SynopsisConfig.model_validate({"render": {"max_width": max_width, "max_height": max_width * 3 // 4},
                                              "arrange": arrange})
    request = SynopsisRequest(camera_id=prepared.camera, start=prepared.start, end=prepared.end, length_s=length_s,
                              classes=classes, requested_by="benchmark")
    started = time.monotonic()
    result = build_synopsis(LocalStore(prepared.store_root), request, MemoryTrackSource.from_jsonl(prepared.tracks),
                            settings, out_path=out)
    name = f"{prepared.camera} {length_s:g} s {max_width}px" + (f" ({','.join(classes)})" if classes else "")
    name += " before" if before else ""
    return Row(name, result, time.monotonic() - started)


def table(rows: list[Row]) -> str:
    lines = [
        "| synopsis | source | objects | condensation | collision (source) | chronology | speed median / max | "
        "arrange | render: frames/s (background + mattes + composite/encode) | build |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        m = row.result.index.metrics
        share = m.chronology_violations / m.chronology_pairs if m.chronology_pairs else 0.0
        speeds = [o.speed for o in row.result.index.objects] or [1.0]
        lines.append(
            f"| {row.name} | {m.source_s:.1f} s | {m.objects} ({m.time_lapsed} time-lapsed) | x{m.condensation:.1f} | "
            f"{m.collision_ratio:.3f} ({m.source_collision_ratio:.3f}) | {m.chronology_violations} / "
            f"{m.chronology_pairs} ({share:.1%}) | {np.median(speeds):.1f} / {max(speeds):.0f} | {m.arrange_s:.2f} s | {m.render_fps:.1f} "
            f"({row.result.index.frames} frames in {m.background_s:.1f} + {m.matte_s:.1f} + {m.composite_s:.1f} s) | "
            f"{m.build_s:.1f} s |"
        )
    return "\n".join(lines)


def _frame(path: Path, number: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == number:
                return frame.to_ndarray(format="bgr24")
    msg = f"{path} has no frame {number}"
    raise LookupError(msg)


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((34, image.shape[1], 3), 32, np.uint8)
    cv2.putText(strip, text, (10, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([image, strip])


def side_by_side(row: Row, prepared: Prepared, video: Path, png: Path) -> None:
    """A source frame (busiest analysed moment) beside the synopsis frame showing the most objects."""
    index = row.result.index
    counts = [sum(1 for o in index.objects if o.first_frame <= n <= o.last_frame) for n in range(index.frames)]
    n = int(np.argmax(counts))
    synopsis = _frame(row.result.video_path, n)  # type: ignore[arg-type]
    times = np.arange(prepared.start.timestamp(), prepared.end.timestamp(), 0.1)
    active = [sum(1 for s in prepared.summaries if s.started_at.timestamp() <= t <= s.ended_at.timestamp())
              for t in times]
    k = int(np.argmax(active))
    source = cv2.resize(_frame(video, k), (index.width, index.height), interpolation=cv2.INTER_AREA)
    when = datetime.fromtimestamp(float(times[k]), tz=UTC).strftime("%H:%M:%S")
    left = _caption(source, f"source {video.name} at {when}: {active[k]} objects")
    right = _caption(synopsis, f"synopsis at {n / index.fps:.1f} s of {index.duration_s:.0f} s: {counts[n]} objects "
                               f"from {index.metrics.source_s:.0f} s")
    picture = np.hstack([left, np.full((left.shape[0], 8, 3), 255, np.uint8), right])
    if picture.shape[1] > 1280:
        scale = 1280 / picture.shape[1]
        picture = cv2.resize(picture, (1280, round(picture.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(png), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench-synopsis", help="Inputs and outputs.")
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared" / "testdata" / "vtest.avi")
    parser.add_argument("--vtest-lengths", type=float, nargs="+", default=[15.0, 8.0, 30.0])
    parser.add_argument("--hour-lengths", type=float, nargs="+", default=[60.0, 300.0])
    parser.add_argument("--max-width", type=int, default=768, help="Output width for vtest (768 = full size).")
    parser.add_argument("--hour-max-width", type=int, default=384, help="Output width for the hour.")
    parser.add_argument("--skip-hour", action="store_true")
    parser.add_argument("--before", action="store_true",
                        help="Also build each length with the arrangement as it was (arrange.max_speedup = max_still_speedup = 1).")
    parser.add_argument("--skip-persons", action="store_true", help="No persons-only row.")
    parser.add_argument("--png", type=Path, help="Write the side-by-side picture here.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)

    vtest = prepare_vtest(args.work, args.video)
    rows = []
    variants = [True, False] if args.before else [False]
    for length in args.vtest_lengths:
        for before in variants:
            rows.append(build(vtest, length, args.max_width, args.work / f"vtest-{length:g}.mp4", before=before))
            print(rows[-1].name, f"{rows[-1].wall_s:.1f} s", flush=True)
    if not args.skip_persons:
        rows.append(build(vtest, args.vtest_lengths[0], args.max_width, args.work / "vtest-persons.mp4", ("person",)))
    if args.png:
        side_by_side(rows[0], vtest, args.video, args.png)
        print(f"wrote {args.png}")
    if not args.skip_hour:
        hour = prepare_hour(args.work, args.video, vtest)
        for length in args.hour_lengths:
            for before in variants:
                rows.append(build(hour, length, args.hour_max_width, args.work / f"hour-{length:g}.mp4", before=before))
                print(rows[-1].name, f"{rows[-1].wall_s:.1f} s", flush=True)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print(table(rows))
    results = [{"name": r.name, "wall_s": r.wall_s, **r.result.index.metrics.model_dump(mode="json")} for r in rows]
    (args.work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
