"""Plate exact-match accuracy on ../shared/testdata/plates (CN scenes, CN crops, Latin crops).

A labelled plate counts as read when one of the image's reads equals it exactly (whole normalised
string, province character included; ``?`` in a label = unreadable in the photo, see
``models.evaluation.plate_matches``). Reads that match no label in a scene are counted as extra reads.

    python benchmarks/models/plates.py [--verbose] [--dir DIR ...]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import cv2
from _common import TESTDATA, table, zoo


def evaluate(dirs: list[Path], verbose: bool) -> dict[str, list[int]]:
    from models.evaluation import plate_matches

    recognizer = zoo().plate_recognizer()
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # read, labelled, extra reads
    times: dict[str, list[float]] = defaultdict(list)
    for folder in dirs:
        with (folder / "labels.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            image = cv2.imread(str(folder / row["file"]))
            started = time.perf_counter()
            plates = recognizer.recognize(image)
            key = f"{folder.name}-{row['kind']}"
            times[key].append(time.perf_counter() - started)
            texts = [str(t) for t in plates.data["text"]]
            labels = [p for p in row["plates"].split(";") if p]
            for label in labels:
                hit = any(plate_matches(t, label) for t in texts)
                stats[key][0] += hit
                stats[key][1] += 1
                if verbose and not hit:
                    print(f"  miss {key} {row['file']}: want {label}, read {texts}")
            stats[key][2] += sum(1 for t in texts if not any(plate_matches(t, lab) for lab in labels))
    rows_out = [
        [
            k,
            f"{v[0]}/{v[1]}",
            f"{100 * v[0] / max(1, v[1]):.1f}",
            str(v[2]),
            f"{1000 * sum(times[k]) / len(times[k]):.0f}",
        ]
        for k, v in sorted(stats.items())
    ]
    print(table(["set", "exact", "exact %", "extra reads", "ms/image"], rows_out))
    return dict(stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", action="append", type=Path, help="folder with labels.csv (default: cn and latin)"
    )
    parser.add_argument("--verbose", action="store_true", help="list every missed plate")
    args = parser.parse_args()
    evaluate(args.dir or [TESTDATA / "plates" / "cn", TESTDATA / "plates" / "latin"], args.verbose)


if __name__ == "__main__":
    main()
