"""Annotation tools for the tracking benchmark: key frames → interpolated MOTChallenge ground truth, and
overlays to check it by eye.

Ground truth is edited as *key frames* (``keyframes.csv``: the MOTChallenge columns plus ``source``, one
of ``manual`` — read off zoomed, gridded crops — or ``detection`` — a bootstrap detector box accepted
after looking at it). ``interpolate`` fills the analysed frames between two key frames of the same ID
linearly (box corners and visibility; a box is ignored — ``conf`` 0 — if either neighbouring key is).
``render`` draws ground truth (and optionally tracker output) on frames for review; ``extract`` writes
the frames an annotator looks at. See ``benchmarks/tracking/README.md`` for the procedure followed.

    python benchmarks/tracking/annotate.py interpolate data/vtest/keyframes.csv data/vtest/gt.txt
    python benchmarks/tracking/annotate.py render data/vtest/gt.txt --frames 31,101,199 --out /tmp/overlays
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.tracking.mot_metrics import MotRow, read_mot_csv, write_mot_csv  # noqa: E402

VIDEO = ROOT.parent / "shared" / "testdata" / "vtest.avi"
KEY_COLUMNS = ["frame", "id", "x", "y", "w", "h", "conf", "class", "visibility", "source"]
PALETTE = [(255, 80, 80), (80, 220, 80), (80, 80, 255), (0, 220, 220), (220, 0, 220), (220, 220, 0),
           (0, 140, 255), (255, 140, 0), (140, 0, 255), (140, 255, 140)]


@dataclass(frozen=True)
class KeyBox:
    row: MotRow
    source: str


def read_keyframes(path: Path) -> list[KeyBox]:
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != KEY_COLUMNS:
            msg = f"{path}: expected header {','.join(KEY_COLUMNS)}, got {reader.fieldnames}"
            raise ValueError(msg)
        keys = []
        for rec in reader:
            x, y, w, h = (float(rec[k]) for k in ("x", "y", "w", "h"))
            row = MotRow(int(rec["frame"]), int(rec["id"]), (x, y, x + w, y + h), float(rec["conf"]),
                         int(rec["class"]), float(rec["visibility"]))
            keys.append(KeyBox(row, rec["source"]))
    return keys


def write_keyframes(path: Path, keys: Sequence[KeyBox]) -> None:
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(KEY_COLUMNS)
        for k in sorted(keys, key=lambda k: (k.row.frame, k.row.track_id)):
            x1, y1, x2, y2 = k.row.xyxy
            writer.writerow([k.row.frame, k.row.track_id, f"{x1:.1f}", f"{y1:.1f}", f"{x2 - x1:.1f}",
                             f"{y2 - y1:.1f}", f"{k.row.conf:g}", k.row.cls, f"{k.row.visibility:.2f}", k.source])


def interpolate(keys: Sequence[KeyBox], step: int, width: int, height: int) -> list[MotRow]:
    """Every ``step``-th frame between consecutive key frames of each ID, boxes clipped to the image."""
    by_id: dict[int, list[MotRow]] = defaultdict(list)
    for k in keys:
        by_id[k.row.track_id].append(k.row)
    rows: list[MotRow] = []
    for track in by_id.values():
        track.sort(key=lambda r: r.frame)
        for a, b in zip(track, track[1:], strict=False):
            if (b.frame - a.frame) % step:
                msg = f"id {a.track_id}: key frames {a.frame} and {b.frame} are not {step} frames apart"
                raise ValueError(msg)
            rows.append(a)
            for f in range(a.frame + step, b.frame, step):
                t = (f - a.frame) / (b.frame - a.frame)
                box = tuple(float(v) for v in (1 - t) * np.array(a.xyxy) + t * np.array(b.xyxy))
                vis = (1 - t) * a.visibility + t * b.visibility
                rows.append(MotRow(f, a.track_id, box, min(a.conf, b.conf), a.cls, round(vis, 2)))  # type: ignore[arg-type]
        rows.append(track[-1])
    return [_clip(r, width, height) for r in rows]


def _clip(row: MotRow, width: int, height: int) -> MotRow:
    x1, y1, x2, y2 = row.xyxy
    return replace(row, xyxy=(max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)))


def video_frames(path: Path, indices: set[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Decoded BGR frames whose 0-based index is in ``indices``, in order."""
    import av

    last = max(indices)
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in indices:
                yield i, frame.to_ndarray(format="bgr24")
            if i >= last:
                break


def draw(image: np.ndarray, rows: Sequence[MotRow], dashed_ignored: bool = True, prefix: str = "") -> np.ndarray:
    import cv2

    out = image.copy()
    for r in rows:
        x1, y1, x2, y2 = (int(round(v)) for v in r.xyxy)
        color = PALETTE[r.track_id % len(PALETTE)]
        thickness = 1 if (r.conf == 0 and dashed_ignored) else 2
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        label = f"{prefix}{r.track_id}" + ("?" if r.conf == 0 else "")
        cv2.putText(out, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return out


def render(gt_path: Path, frames: Sequence[int], out_dir: Path, video: Path, quality: int) -> list[Path]:
    """Overlay ground truth on the given MOT frame numbers (1-based) and save JPEGs."""
    import cv2

    rows = read_mot_csv(gt_path)
    per_frame: dict[int, list[MotRow]] = defaultdict(list)
    for r in rows:
        per_frame[r.frame].append(r)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, image in video_frames(video, {f - 1 for f in frames}):
        mot = index + 1
        canvas = draw(image, per_frame.get(mot, []))
        cv2.putText(canvas, f"frame {mot} (video index {index})", (8, 568), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
        path = out_dir / f"gt_{mot:04d}.jpg"
        cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
        written.append(path)
    return written


def extract(video: Path, start: int, stop: int, step: int, out_dir: Path) -> int:
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for index, image in video_frames(video, set(range(start, stop, step))):
        cv2.imwrite(str(out_dir / f"{index + 1:06d}.png"), image)
        n += 1
    return n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("interpolate", help="key frames CSV -> MOTChallenge gt.txt")
    p.add_argument("keyframes", type=Path)
    p.add_argument("gt", type=Path)
    p.add_argument("--step", type=int, default=2, help="analysed every STEP-th video frame (default 2)")
    p.add_argument("--size", default="768x576", help="image WxH for clipping")
    r = sub.add_parser("render", help="draw ground truth on frames")
    r.add_argument("gt", type=Path)
    r.add_argument("--frames", required=True, help="comma-separated MOT frame numbers (1-based)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--video", type=Path, default=VIDEO)
    r.add_argument("--quality", type=int, default=80)
    e = sub.add_parser("extract", help="write frames start..stop (0-based, exclusive) every STEP as PNG")
    e.add_argument("--video", type=Path, default=VIDEO)
    e.add_argument("--start", type=int, default=0)
    e.add_argument("--stop", type=int, default=200)
    e.add_argument("--step", type=int, default=2)
    e.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "interpolate":
        width, height = (int(v) for v in args.size.lower().split("x"))
        rows = interpolate(read_keyframes(args.keyframes), args.step, width, height)
        write_mot_csv(args.gt, rows)
        print(f"wrote {len(rows)} boxes for {len({r.track_id for r in rows})} IDs to {args.gt}")
    elif args.command == "render":
        frames = [int(f) for f in args.frames.split(",")]
        for path in render(args.gt, frames, args.out, args.video, args.quality):
            print(path)
    else:
        print(f"wrote {extract(args.video, args.start, args.stop, args.step, args.out)} frames to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
