"""Side changes of person tracks at a given analysis rate, square against rectangular detector input.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/tracking/crossings.py [--step 10] [--video ../shared/testdata/vtest.avi]

vtest.avi (10 fps) is sampled every ``--step`` frames (10: 1 analysed frame/s; 2: the default 5/s) and run through
the configured detector with ``models.detect_input`` square and rect, persons only, into a fresh
:class:`pipeline.tracking.tracker.ByteTracker` each. It prints the person tracks and how often a track's bottom
centre changes side of the frame's vertical middle (above 65 % of the height plus 100 px): a rough stand-in for a
line-crossing rule on a footpath, to compare the two inputs in one run, not a rule engine measurement.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np

from models.zoo import ModelZoo
from pipeline.config import TubelineConfig, with_overrides
from pipeline.tracking.tracker import ByteTracker

REPO = Path(__file__).resolve().parents[2]


def side_changes(frames: list[np.ndarray], step: int, detect_input: str) -> tuple[int, int]:
    """(person tracks, side changes) for ``frames`` sampled every ``step`` source frames (10 fps source)."""
    config = with_overrides(TubelineConfig(), {"models.detect_input": detect_input})
    detector = ModelZoo(config.models).detector()
    tracker = ByteTracker()
    height, width = frames[0].shape[:2]
    last: dict[int, bool] = {}
    tracks: set[int] = set()
    changes = 0
    for n, image in enumerate(frames):
        found = detector.detect(image)
        persons = found[np.array([detector.class_names[c] == "person" for c in found.class_id], bool)] \
            if len(found) else found
        tracked = tracker.update(persons, n * step / 10.0)
        for box, track in zip(tracked.xyxy, tracked.tracker_id, strict=True):
            tracks.add(int(track))
            right = (box[0] + box[2]) / 2 > width / 2
            if int(track) in last and last[int(track)] != right and 0.2 * height <= box[3] <= 0.65 * height + 100:
                changes += 1
            last[int(track)] = right
    return len(tracks), changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=10, help="analyse every n-th source frame (vtest: 10 fps)")
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared" / "testdata" / "vtest.avi")
    args = parser.parse_args()
    with av.open(str(args.video)) as container:
        frames = [f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(video=0)) if i % args.step == 0]
    print(f"{len(frames)} frames, one every {args.step} source frames")
    print("| detector input | person tracks | side changes |")
    print("| --- | --- | --- |")
    for detect_input in ("square", "rect"):
        tracks, changes = side_changes(frames, args.step, detect_input)
        print(f"| {detect_input} | {tracks} | {changes} |")


if __name__ == "__main__":
    main()
