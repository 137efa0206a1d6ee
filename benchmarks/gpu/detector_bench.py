"""GPU table for issue 19: detector img/s at batch 1/8/32 (project vs ultralytics vs raw ORT), fp16 vs fp32
agreement, and decode streams (NVDEC through PyAV hwaccel vs CPU). Called by ``benchmarks/gpu/run.sh``.

    python benchmarks/gpu/detector_bench.py --providers cuda,cpu [--yolo yolo11n-dyn.onnx]
        [--ultralytics yolo11n.pt] [--batches 1,8,32] [--seconds 4] [--clip clip_1080p.mp4]

On a CPU-only machine (``--providers cpu``, the dry run) every case runs on the CPU provider and the table says
so; cases whose package is missing (ultralytics, an NVDEC-capable FFmpeg) print "not available" with the reason.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.detectors import YoloDetector, yolo_metadata_names  # noqa: E402
from models.registry import InputSpec  # noqa: E402
from models.runtime import OnnxModel, RuntimeOptions  # noqa: E402
from models.zoo import ModelZoo  # noqa: E402
from pipeline.config import TubelineConfig  # noqa: E402

VTEST = ROOT.parent / "shared" / "testdata" / "vtest.avi"
ROWS: list[list[str]] = []


CLIP: Path | None = None  # --clip: the frame source where the shared test data is absent (a GPU machine)


def frames(count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(VTEST if VTEST.is_file() or CLIP is None else CLIP))
    out = []
    while len(out) < count:
        ok, img = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        out.append(img)
    cap.release()
    return out


def images_per_s(fn: Callable[[], object], batch: int, seconds: float) -> float:
    fn()
    fn()  # warm-up: engines, kernels, allocator
    runs: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end or len(runs) < 3:
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return batch / statistics.median(runs)


def row(*cells: object) -> None:
    ROWS.append([str(c) for c in cells])
    print(" | ".join(ROWS[-1]), file=sys.stderr)


def bench_nanodet(options: RuntimeOptions, providers: tuple[str, ...], batches: list[int], seconds: float) -> None:
    cfg = TubelineConfig.model_validate({"models": {"providers": list(providers)}}).models
    det = ModelZoo(cfg).detector()
    imgs = frames(max(batches))
    tensor = det._prepare(imgs[0])[0][None]
    sess, feed = det.model.session, det.model.input_name
    for b in batches:
        project = images_per_s(lambda b=b: det.detect_batch(imgs[:b]), b, seconds)
        raw = images_per_s(lambda b=b: [sess.run(None, {feed: tensor}) for _ in range(b)], b, seconds)
        row("nanodet (batch-1 graph)", det.model.providers[0], b, f"{project:.1f}", "-", f"{raw:.1f}",
            f"{project / raw:.2f}x raw")


def bench_yolo(path: Path, pt: str | None, options: RuntimeOptions, batches: list[int], seconds: float,
               device: str) -> None:
    model = OnnxModel(path, options=options, warmup_shape=[1, 3, 640, 640])
    spec = InputSpec(shape=(1, 3, 640, 640), color="RGB", std=(255.0, 255.0, 255.0), resize="letterbox")
    det = YoloDetector(model, spec, "yolo11n", yolo_metadata_names(model.metadata), score=0.25, iou=0.7)
    imgs = frames(max(batches))
    ultra = None
    why = "ultralytics not installed"
    try:
        from ultralytics import YOLO

        ultra = YOLO(pt or str(path), task="detect")
    except ImportError:
        pass
    for b in batches:
        batch_tensor = np.concatenate([det._prepare(img)[0][None] for img in imgs[:b]])
        raw = images_per_s(lambda t=batch_tensor: model.run(t), b, seconds)
        project = images_per_s(lambda b=b: det.detect_batch(imgs[:b]), b, seconds)
        theirs = "not available: " + why
        if ultra is not None:
            rate = images_per_s(lambda b=b: ultra.predict(imgs[:b], imgsz=640, conf=0.25, iou=0.7, verbose=False,
                                                          device=device, batch=b), b, seconds)
            theirs = f"{rate:.1f}"
        ratio = f"{project / float(theirs):.2f}x ultralytics" if ultra is not None else f"{project / raw:.2f}x raw"
        row("yolo11n (dynamic export)", model.providers[0], b, f"{project:.1f}", theirs, f"{raw:.1f}", ratio)


def fp16_agreement(path: Path, providers: tuple[str, ...]) -> None:
    """Detections at fp16 (TensorRT) vs fp32 on 20 vtest frames: matched share at IoU ≥ 0.9."""
    spec = InputSpec(shape=(1, 3, 640, 640), color="RGB", std=(255.0, 255.0, 255.0), resize="letterbox")
    out = {}
    for precision in ("fp32", "fp16"):
        opts = RuntimeOptions(providers=providers, precision=precision, engine_cache=Path("/tmp/tubeline-trt"))
        model = OnnxModel(path, options=opts, warmup_shape=[1, 3, 640, 640])
        if precision == "fp16" and model.providers[0] != "TensorrtExecutionProvider":
            row("fp16 vs fp32", model.providers[0], "-", "not available: fp16 needs the TensorRT provider", "", "", "")
            return
        det = YoloDetector(model, spec, "y", yolo_metadata_names(model.metadata), score=0.25, iou=0.7)
        out[precision] = [det.detect(f) for f in frames(20)]
    matched = total = 0
    for a, b in zip(out["fp32"], out["fp16"], strict=True):
        total += len(a)
        for box in a.xyxy:
            if len(b) and _iou(box, b.xyxy).max() >= 0.9:
                matched += 1
    row("fp16 vs fp32 (20 frames)", "TensorrtExecutionProvider", "-", f"{matched}/{total} boxes match at IoU>=0.9",
        "", "", "")


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def bench_decode(clip: Path, seconds: float) -> None:
    """1080p H.264 decode rate on the CPU (all threads) and through NVDEC (PyAV hwaccel), as 25 fps streams."""
    import av

    def run(hw: object | None) -> float:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            with av.open(str(clip), hwaccel=hw) if hw is not None else av.open(str(clip)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for _ in container.decode(stream):
                    count += 1
        return count / (time.perf_counter() - started)

    cpu = run(None)
    row("decode 1080p H.264", "CPU (FFmpeg threads)", "-", f"{cpu:.0f} fps", f"{cpu / 25:.1f} streams", "", "")
    try:
        from av.codec.hwaccel import HWAccel

        gpu = run(HWAccel(device_type="cuda", allow_software_fallback=False))
        row("decode 1080p H.264", "NVDEC (PyAV hwaccel cuda)", "-", f"{gpu:.0f} fps", f"{gpu / 25:.1f} streams", "", "")
    except Exception as exc:  # noqa: BLE001 - PyAV/FFmpeg builds without CUDA raise several error types
        row("decode 1080p H.264", "NVDEC", "-", f"not available: {str(exc).splitlines()[0][:120]}", "", "", "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--providers", default="tensorrt,cuda,cpu")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=4.0, help="timing per case")
    ap.add_argument("--yolo", help="a YOLO11n ONNX export with dynamic=True (run.sh makes one)")
    ap.add_argument("--ultralytics", help="weights for ultralytics predict (yolo11n.pt; default: the ONNX file)")
    ap.add_argument("--clip", help="a 1080p H.264 clip for the decode rows")
    args = ap.parse_args()
    global CLIP  # noqa: PLW0603 - one module-level setting of this script
    CLIP = Path(args.clip) if args.clip else None
    providers = tuple(args.providers.split(","))
    options = RuntimeOptions(providers=providers, max_batch=max(int(b) for b in args.batches.split(",")),
                             engine_cache=Path("/tmp/tubeline-trt"))
    batches = [int(b) for b in args.batches.split(",")]
    device = "cuda:0" if "cuda" in providers or "tensorrt" in providers else "cpu"
    bench_nanodet(options, providers, batches, args.seconds)
    if args.yolo:
        bench_yolo(Path(args.yolo), args.ultralytics, options, batches, args.seconds, device)
        fp16_agreement(Path(args.yolo), providers)
    if args.clip:
        bench_decode(Path(args.clip), args.seconds)
    header = ["model / case", "provider", "batch", "project img/s", "ultralytics img/s", "raw ORT img/s", "ratio"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells in ROWS:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
