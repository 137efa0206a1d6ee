"""Detection precision/recall on hand-annotated vtest.avi frames (data/vtest_annotations.json).

Classes evaluated: person, and vehicle (the detector's car, truck and bus). Predictions of other classes
are not scored (their count is shown). Matching: IoU >= 0.5, greedy by score, difficult objects optional.

    python benchmarks/models/detection.py [--model ID] [--scores 0.25,0.35,0.5] [--input square|rect|both]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import cv2
import numpy as np
from _common import DATA, ROOT, table, zoo

VEHICLE = {"car", "truck", "bus"}


def frames(annotations: dict) -> list[tuple[dict, np.ndarray]]:
    video = (ROOT / annotations["video"]).resolve()
    cap = cv2.VideoCapture(str(video))
    out = []
    for frame in annotations["frames"]:
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame["index"])
        ok, image = cap.read()
        if not ok:
            msg = f"cannot read frame {frame['index']} of {video}"
            raise SystemExit(msg)
        out.append((frame, image))
    cap.release()
    return out


def evaluate(model_id: str | None, scores: list[float], iou: float, input_mode: str = "square") -> None:
    from models.evaluation import MatchCounts, match_boxes

    annotations = json.loads((DATA / "vtest_annotations.json").read_text(encoding="utf-8"))
    data = frames(annotations)
    the_zoo = zoo()
    the_zoo.config = the_zoo.config.model_copy(update={"detect_input": input_mode})
    detector = the_zoo.detector(model_id)
    lowest = min(scores)
    detector.score = lowest
    raw = [(frame, detector.detect(image)) for frame, image in data]
    rows = []
    for threshold in scores:
        totals = {c: MatchCounts(0, 0, 0) for c in annotations["classes"]}
        other = 0
        for frame, dets in raw:
            dets = dets[dets.confidence >= threshold]
            names = [dets.class_name(i) for i in range(len(dets))]
            mapped = ["vehicle" if n in VEHICLE else n for n in names]
            other += sum(1 for m in mapped if m not in totals)
            for cls in totals:
                keep = np.asarray([m == cls for m in mapped], dtype=bool)
                truth = [o for o in frame["objects"] if o["class"] == cls]
                counts = match_boxes(
                    dets.xyxy[keep],
                    dets.confidence[keep],
                    [cls] * int(keep.sum()),
                    np.asarray([o["box"] for o in truth], np.float32),
                    [cls] * len(truth),
                    iou,
                    [bool(o.get("difficult")) for o in truth],
                )
                t = totals[cls]
                totals[cls] = replace(
                    t,
                    true_positives=t.true_positives + counts.true_positives,
                    false_positives=t.false_positives + counts.false_positives,
                    false_negatives=t.false_negatives + counts.false_negatives,
                )
        for cls, t in totals.items():
            rows.append(
                [
                    f"{threshold:.2f}",
                    cls,
                    str(t.true_positives),
                    str(t.false_positives),
                    str(t.false_negatives),
                    f"{t.precision:.3f}",
                    f"{t.recall:.3f}",
                    str(other),
                ]
            )
    shape = detector.input_shape_for(data[0][1])
    print(f"model {detector.model_id}, input {input_mode} {shape[1]}x{shape[0]}, {len(data)} frames, IoU >= {iou}")
    print(table(["score", "class", "TP", "FP", "FN", "precision", "recall", "other-class dets"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="detector registry id (default: configured detector)")
    parser.add_argument("--scores", default="0.25,0.35,0.5")
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--input", choices=("square", "rect", "both"), default="square")
    args = parser.parse_args()
    for mode in ("square", "rect") if args.input == "both" else (args.input,):
        evaluate(args.model, [float(s) for s in args.scores.split(",")], args.iou, mode)


if __name__ == "__main__":
    main()
