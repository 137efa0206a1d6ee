"""Throughput per model, provider and batch size (images/s, p50/p99 latency), the plate and face
pipelines per image, and our YOLO decoder next to ultralytics' own ``predict`` on the same ONNX file.

    python benchmarks/models/throughput.py [--batches 1,4,8] [--iterations 20] [--yolo FILE.onnx]

The ultralytics comparison runs only where ultralytics is importable (it is not a project dependency:
run this script from a venv that has both, see docs/models.md); otherwise the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
from _common import ROOT, TESTDATA, table, zoo


def pipelines(the_zoo, iterations: int) -> list[list[str]]:  # noqa: ANN001
    from models.benchmark import time_calls

    scene = cv2.imread(str(TESTDATA / "plates" / "cn" / "dataset_0.jpg"))
    crop = cv2.imread(str(TESTDATA / "plates" / "latin" / "bench_morning_10620_100.png"))
    group = cv2.imread(str(TESTDATA / "faces" / "group_6.jpg"))
    plates, faces = the_zoo.plate_recognizer(), the_zoo.face_analyzer()
    cases = [
        ("plate pipeline, 640×480 scene (1 plate)", lambda: plates.recognize(scene)),
        ("plate pipeline, tight crop", lambda: plates.recognize(crop)),
        ("face pipeline, 1280×886 photo (6 faces)", lambda: faces.analyze(group)),
    ]
    rows = []
    for name, run in cases:
        ips, p50, p99, n = time_calls(run, 1, iterations)
        rows.append([name, "cpu", "1", str(n), f"{ips:.1f}", f"{p50:.1f}", f"{p99:.1f}"])
    return rows


def yolo_vs_ultralytics(path: str, iterations: int, conf: float | None = None) -> list[list[str]]:
    """Same file, same image, same thresholds. For the random-weight fixture the score threshold comes from
    its ``.expected.json`` (0.597: ~60 candidates, like a real scene; at 0.25 all 2,100 anchors pass)."""
    from models.benchmark import time_calls
    from models.detectors import YoloDetector, yolo_metadata_names
    from models.registry import InputSpec
    from models.runtime import OnnxModel

    frame = cv2.imread(str(TESTDATA / "images" / "dog.jpg"))
    expected = Path(path).with_suffix(".expected.json")
    if conf is None:
        conf = json.loads(expected.read_text())["conf"] if expected.is_file() else 0.25
    model = OnnxModel(path)
    size = model.input_shape[2] if isinstance(model.input_shape[2], int) else 640
    spec = InputSpec(
        shape=tuple(model.input_shape), color="RGB", std=(255.0, 255.0, 255.0), resize="letterbox"
    )
    ours = YoloDetector(model, spec, "yolo", yolo_metadata_names(model.metadata), score=conf, iou=0.7)
    ours_ips, ours_p50, ours_p99, n = time_calls(lambda: ours.detect(frame), 1, iterations)
    name = f"{os.path.basename(path)}, conf {conf}"
    rows = [
        [
            f"tubeline YoloDetector ({name})",
            "cpu",
            "1",
            str(n),
            f"{ours_ips:.1f}",
            f"{ours_p50:.1f}",
            f"{ours_p99:.1f}",
        ]
    ]
    try:
        from ultralytics import YOLO
    except ImportError:
        rows.append(["ultralytics predict", "-", "-", "-", "not installed", "-", "-"])
        return rows
    yolo = YOLO(path, task="detect")

    def predict() -> object:
        return yolo.predict(frame, imgsz=size, conf=conf, iou=0.7, verbose=False, device="cpu")

    ips, p50, p99, n = time_calls(predict, 1, iterations)
    rows.append(
        ["ultralytics predict (same ONNX)", "cpu", "1", str(n), f"{ips:.1f}", f"{p50:.1f}", f"{p99:.1f}"]
    )
    rows.append(
        ["ratio tubeline / ultralytics", "", "", "", f"{ours_ips / ips:.2f}x", f"{ours_p50 / p50:.2f}x", ""]
    )
    return rows


def main() -> None:
    from models.bench_cases import model_cases
    from models.benchmark import HEADER, sample_frame

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument(
        "--yolo", default=str(ROOT / "tests" / "fixtures" / "models" / "yolo11n-random-320.onnx")
    )
    parser.add_argument("--conf", type=float, help="YOLO score threshold (default: fixture's, else 0.25)")
    parser.add_argument("--yolo-only", action="store_true", help="only the YOLO vs ultralytics comparison")
    args = parser.parse_args()
    if args.yolo_only:
        print(table(HEADER, yolo_vs_ultralytics(args.yolo, args.iterations, args.conf)))
        return
    the_zoo = zoo()
    frame = sample_frame(str(TESTDATA / "vtest.avi"))
    batches = [int(b) for b in args.batches.split(",")]
    results = model_cases(the_zoo, frame, None, batches, args.iterations)
    print(f"cpu cores: {os.cpu_count()}, onnxruntime providers wanted: {list(the_zoo.config.providers)}")
    print(table(HEADER, [r.row() for r in results]))
    print()
    print(table(HEADER, pipelines(the_zoo, args.iterations)))
    print()
    print(table(HEADER, yolo_vs_ultralytics(args.yolo, args.iterations, args.conf)))


if __name__ == "__main__":
    main()
