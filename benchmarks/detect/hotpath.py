"""The detect hot path before and after issue 19, each beside raw ONNX Runtime, measured in one run.

    nice -n 10 taskset -c 1 .venv/bin/python benchmarks/detect/hotpath.py [--rounds 5] [--calls 15]

Detector level (NanoDet, one intra-op thread, one image per call): raw ``session.run`` on a tensor prepared
once (the reference), the project path as it was (resize, pad, then ``to_tensor``: the unfused reference
path kept in ``_OnnxDetector._prepare``) and as it is (fused preprocessing), for the square input and the
rectangular letterbox (``models.detect_input: rect``), on a 768×576 (vtest) and a 1920×1080 frame.
The YOLO11n fixture (random weights, fixed 320×320 export) gives the same for YOLO.

With ``--ultralytics-python /path/to/venv/bin/python`` (a throw-away venv with ultralytics, torch and
onnxruntime; never the project's) the run adds ultralytics' own ``YOLO(onnx).predict`` (its ONNX Runtime
backend, forced to one thread; ``ultralytics_side.py`` runs in that interpreter and reports images per CPU-second
of its own process), interleaved with the project's rounds: on the fixture, and on a YOLO11n export with dynamic
shapes (``yolo11n.pt`` when given with ``--yolo-onnx``, else random weights built from ultralytics' yaml, since
the weights cannot be downloaded here) at 640 with the rectangular letterbox (``models.detect_input: rect``),
the project side loaded through the model zoo like any user's export.

Worker level: ``DetectWorker`` over the in-memory bus and a local store (JPEG decode, NanoDet, tracker,
crops, outputs, commits) on vtest frames from 4 cameras, as it was (inline decode, inline crop PUT,
unfused preprocessing) and as it is (decode pool, asynchronous crop writes, fused preprocessing); the
reference is raw ``session.run`` over the same number of already-prepared tensors.

Detector-level rates are images per CPU-second of this process (ORT with one intra-op thread runs on the
calling thread), which load from other processes disturbs much less than wall time. Rounds are
interleaved (every case once per round) and the table gives the median of the rounds and the spread
(min–max), so what noise is left shows rather than hides.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.detectors import YoloDetector, yolo_metadata_names  # noqa: E402
from models.registry import InputSpec  # noqa: E402
from models.runtime import OnnxModel  # noqa: E402
from models.zoo import ModelZoo  # noqa: E402
from pipeline.bus import TopicSpec  # noqa: E402
from pipeline.bus.memory import MemoryBus  # noqa: E402
from pipeline.config import TubelineConfig  # noqa: E402
from pipeline.store.local import LocalStore  # noqa: E402
from schemas.frames import FrameHeader  # noqa: E402
from schemas.topics import FRAMES  # noqa: E402
from workers.detect.worker import DetectWorker  # noqa: E402

TESTDATA = ROOT.parent / "shared" / "testdata"
FIXTURE = ROOT / "tests" / "fixtures" / "models" / "yolo11n-random-320.onnx"


def rate(fn: Callable[[], object], calls: int, clock: Callable[[], float] = time.process_time) -> float:
    """Calls per second of ``clock``: process CPU time by default (images per CPU-second, which other
    processes' load disturbs far less than wall time on a shared machine; ORT runs on the calling thread
    with one intra-op thread), or wall time with ``time.perf_counter``."""
    started = clock()
    for _ in range(calls):
        fn()
    return calls / (clock() - started)


def vtest_frames(count: int, step: int = 2) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(TESTDATA / "vtest.avi"))
    out: list[np.ndarray] = []
    index = 0
    while len(out) < count:
        ok, img = cap.read()
        if not ok:
            break
        if index % step == 0:
            out.append(img)
        index += 1
    cap.release()
    return out


def detector_cases(frame: np.ndarray, label: str) -> dict[str, Callable[[], object]]:
    """Raw ORT, before (unfused) and after (fused) for square and rect NanoDet on one frame."""
    cfg = TubelineConfig.model_validate({"models": {"intra_op_threads": 1, "inter_op_threads": 1}}).models
    square = ModelZoo(cfg).detector()
    rect = ModelZoo(cfg.model_copy(update={"detect_input": "rect"})).detector()
    cases: dict[str, Callable[[], object]] = {}
    for name, det in (("square", square), ("rect", rect)):
        tensor, _ = det._prepare(frame)
        batch = tensor[None]
        sess, feed = det.model.session, det.model.input_name
        h, w = batch.shape[2:]
        cases[f"{label} {name} {w}x{h}: raw session.run"] = lambda s=sess, f=feed, b=batch: s.run(None, {f: b})
        cases[f"{label} {name} {w}x{h}: before (unfused)"] = _unfused(det, frame)
        cases[f"{label} {name} {w}x{h}: after (fused)"] = lambda d=det: d.detect(frame)
    return cases


def _unfused(det: object, frame: np.ndarray) -> Callable[[], object]:
    def run() -> object:
        det._fused = False  # type: ignore[attr-defined]
        try:
            return det.detect(frame)  # type: ignore[attr-defined]
        finally:
            det._fused = True  # type: ignore[attr-defined]

    return run


def yolo_cases(frame: np.ndarray) -> dict[str, Callable[[], object]]:
    det = yolo_fixture_detector()
    model = det.model
    batch = det._prepare(frame)[0][None]
    return {
        "YOLO11n fixture 320x320: raw session.run": lambda: model.session.run(None, {model.input_name: batch}),
        "YOLO11n fixture 320x320: before (unfused)": _unfused(det, frame),
        "YOLO11n fixture 320x320: after (fused)": lambda: det.detect(frame),
    }


class UltralyticsSide:
    """``ultralytics_side.py`` in another interpreter, driven one JSON line at a time (see its docstring)."""

    def __init__(self, python: str, log: Path) -> None:
        self._log = log.open("w")
        self.proc = subprocess.Popen([python, str(Path(__file__).with_name("ultralytics_side.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)

    def ask(self, **request: object) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            msg = f"ultralytics side exited ({self.proc.poll()}); its log: {self._log.name}"
            raise RuntimeError(msg)
        answer: dict[str, object] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self._log.close()


def zoo_yolo(path: Path, conf: float, iou: float) -> Any:
    """The project's detector for a user's YOLO export, as a deployment gets it: a ``registry.local.yaml`` entry
    in the model folder and ``models.detect_input: rect``."""
    import yaml

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = {"id": "yolo11n-bench", "task": "detect", "backend": "yolo", "file": path.name, "sha256": digest,
             "input": {"shape": ["B", 3, "H", "W"], "layout": "NCHW", "color": "RGB", "std": [255.0, 255.0, 255.0],
                       "resize": "letterbox"},
             "licence": {"spdx": "AGPL-3.0-only", "agpl": True, "notes": "ultralytics YOLO11n export (benchmark)"},
             "source": {"kind": "local"}}
    (path.parent / "registry.local.yaml").write_text(yaml.safe_dump({"models": [entry]}))
    cfg = TubelineConfig.model_validate({"models": {
        "dir": str(path.parent), "detector": "yolo11n-bench", "detect_input": "rect", "detect_score": conf,
        "detect_iou": iou, "intra_op_threads": 1, "inter_op_threads": 1}}).models
    return ModelZoo(cfg).detector()


def box_agreement(ours: np.ndarray, theirs: list[list[float]]) -> str:
    """How many of ultralytics' boxes the project found too (IoU ≥ 0.99 with one of ours)."""
    b = np.asarray(theirs, dtype=np.float64).reshape(-1, 4)
    if not len(b) or not len(ours):
        return f"project {len(ours)} boxes, ultralytics {len(b)}"
    a = np.asarray(ours, dtype=np.float64)
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    iou = inter / (area(a)[:, None] + area(b)[None, :] - inter)
    return f"project {len(a)} boxes, ultralytics {len(b)}, matched at IoU >= 0.99: {int((iou.max(0) >= 0.99).sum())}"


def ultralytics_cases(side: UltralyticsSide, frame: np.ndarray, tmp: Path, args: argparse.Namespace,
                      ) -> tuple[dict[str, Callable[[], object]], dict[str, str]]:
    """Local cases (raw ORT, project path) and remote ones (ultralytics predict: name → the side's model name)
    for the fixture and the dynamic 640 export."""
    np.save(tmp / "frame.npy", frame)
    fixture_conf = json.loads(FIXTURE.with_suffix(".expected.json").read_text())["conf"]
    onnx = Path(args.yolo_onnx) if args.yolo_onnx else Path(str(side.ask(cmd="export", out=str(tmp / "export"),
                                                                               imgsz=640)["path"]))
    if args.yolo_onnx:
        local = tmp / "export" / onnx.name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(onnx.read_bytes())
        onnx = local
    local_cases: dict[str, Callable[[], object]] = {}
    remote = {"YOLO11n fixture 320x320: ultralytics predict": "fixture"}
    loads: list[tuple[str, Path, int, float, Any]] = [("fixture", FIXTURE, 320, fixture_conf, None)]
    for conf in (float(c) for c in str(args.yolo_conf).split(",")):
        det: Any = zoo_yolo(onnx, conf, 0.7)
        tensor = np.zeros((1, 3, *det.input_shape_for(frame)), np.float32)
        det.preprocessor.fill_into(frame, tensor[0], "letterbox")
        h, w = tensor.shape[2:]
        label = f"YOLO11n {'given' if args.yolo_onnx else 'random'} dynamic 640 rect {w}x{h} conf {conf}"
        model = det.model
        local_cases[f"{label}: raw session.run"] = \
            lambda m=model, t=tensor: m.session.run(None, {m.input_name: t})
        local_cases[f"{label}: project (zoo, rect)"] = lambda d=det: d.detect(frame)
        remote[f"{label}: ultralytics predict"] = f"dynamic-{conf}"
        loads.append((f"dynamic-{conf}", onnx, 640, conf, det))
    for name, model_path, imgsz, conf, ours in loads:
        info = side.ask(cmd="load", name=name, model=str(model_path), imgsz=imgsz, conf=conf, iou=0.7,
                        frame=str(tmp / "frame.npy"))
        found = (ours if ours is not None else yolo_fixture_detector()).detect(frame).xyxy  # type: ignore[attr-defined]
        print(f"ultralytics {info['ultralytics']} (torch {info['torch']}, onnxruntime {info['onnxruntime']}) on "
              f"{model_path.name} conf {conf}: fed {info['fed']}; {box_agreement(found, info['boxes'])}")  # type: ignore[arg-type]
    return local_cases, remote


def yolo_fixture_detector() -> YoloDetector:
    expected = json.loads(FIXTURE.with_suffix(".expected.json").read_text())
    opts = ModelZoo(TubelineConfig.model_validate({"models": {"intra_op_threads": 1}}).models).options
    model = OnnxModel(FIXTURE, options=opts)
    spec = InputSpec(shape=(1, 3, 320, 320), color="RGB", std=(255.0, 255.0, 255.0), resize="letterbox")
    return YoloDetector(model, spec, "yolo", yolo_metadata_names(model.metadata), score=expected["conf"], iou=0.7)


def worker_rate(jpegs: list[bytes], detector: Any, *, before: bool) -> tuple[float, float, float]:
    """Frames/s of wall time and per CPU-second through the whole detect worker, and the CPU milliseconds per frame
    spent beside ONNX Runtime's ``run`` (process CPU minus the thread time inside ``run``): the part the worker's
    own code decides, which the ratio to raw ``session.run`` hides in the noise of the inference itself."""
    settings = {"max_batch": 4, "max_wait_ms": 20}
    if before:
        settings |= {"decode_threads": 0, "upload_threads": 0}
    cfg = TubelineConfig.model_validate({"detect": settings})
    bus = MemoryBus(default_partitions=4)
    bus.ensure_topics([TopicSpec(FRAMES.name, 4)])
    with bus.producer() as producer:
        for seq, jpeg in enumerate(jpegs):
            header = FrameHeader(camera_id=f"cam-{seq % 4}", session="bench", sequence=seq // 4,
                                 captured_at=datetime.now(UTC), pts=seq / 5, width=768, height=576,
                                 source_codec="mpeg4", keyframe=False)
            producer.send(FRAMES.name, jpeg, key=header.camera_id, headers=header.to_headers())
    detector._fused = not before
    inside = [0.0]
    model = detector.model
    original_run = model.run

    def timed_run(*a: Any, **k: Any) -> Any:
        started = time.thread_time()
        try:
            return original_run(*a, **k)
        finally:
            inside[0] += time.thread_time() - started

    model.run = timed_run
    with tempfile.TemporaryDirectory() as tmp:
        worker = DetectWorker(cfg, bus=bus, store=LocalStore(tmp), detector=detector)
        worker.setup()
        wall, cpu = time.perf_counter(), time.process_time()
        while worker.frames_done < len(jpegs):
            worker.step()
        worker.checkpoint()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        worker.drain()
        worker.teardown()
    del model.run  # back to the class's method
    detector._fused = True
    return len(jpegs) / wall, len(jpegs) / cpu, (cpu - inside[0]) / len(jpegs) * 1000


def summarise(samples: dict[str, list[float]], reference_of: Callable[[str], str | None],
              second_of: Callable[[str], str | None] = lambda name: None, second: str = "") -> None:
    """Median, spread and ratio to the reference (and, with ``second_of``, to a second one, e.g. ultralytics)."""
    width = max(len(k) for k in samples)
    extra = f"  {second:>14}" if second else ""
    print(f"{'case':<{width}}  {'median/s':>9}  {'min-max':>13}  {'vs reference':>12}{extra}")

    def ratio(name: str, ref: str | None) -> str:
        if not ref or ref not in samples:
            return "-"
        return f"{statistics.median(samples[name]) / statistics.median(samples[ref]):.2f}x" if ref != name \
            else "reference"

    for name, values in samples.items():
        med = statistics.median(values)
        col = f"  {ratio(name, second_of(name)):>14}" if second else ""
        print(f"{name:<{width}}  {med:9.1f}  {min(values):6.1f}-{max(values):<6.1f}  "
              f"{ratio(name, reference_of(name)):>12}{col}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=15, help="calls per case per round")
    ap.add_argument("--worker-frames", type=int, default=48, help="frames per worker run (0 skips it)")
    ap.add_argument("--ultralytics-python", help="interpreter of a venv with ultralytics + torch + onnxruntime: adds "
                    "ultralytics' predict beside the project's YOLO path (see ultralytics_side.py)")
    ap.add_argument("--yolo-onnx", help="a YOLO11n ONNX export with dynamic=True (e.g. from yolo11n.pt) instead of "
                    "the random-weight one ultralytics_side.py builds")
    ap.add_argument("--yolo-conf", default="0.25,0.6", help="score thresholds for the dynamic YOLO export, both sides "
                    "(comma-separated: one case each; 0.25 is ultralytics' default)")
    ap.add_argument("--only-yolo", action="store_true", help="skip the NanoDet detector cases")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    frames = vtest_frames(max(args.worker_frames, 1))
    vga = frames[len(frames) // 2]
    full_hd = cv2.resize(vga, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    cases = {} if args.only_yolo else {**detector_cases(vga, "768x576"), **detector_cases(full_hd, "1920x1080")}
    cases |= yolo_cases(vga)
    remote: dict[str, str] = {}
    side: UltralyticsSide | None = None
    tmp_dir = tempfile.TemporaryDirectory()
    if args.ultralytics_python:
        side = UltralyticsSide(args.ultralytics_python, Path(tmp_dir.name) / "ultralytics_side.log")
        local, remote = ultralytics_cases(side, vga, Path(tmp_dir.name), args)
        cases |= local
    for fn in cases.values():
        fn()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in (*cases, *remote)}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            samples[name].append(rate(fn, args.calls))
        for name, model_name in remote.items():
            assert side is not None
            samples[name].append(float(side.ask(cmd="rate", name=model_name, calls=args.calls)["rate"]))  # type: ignore[arg-type]
    if side is not None:
        side.close()
    tmp_dir.cleanup()

    def raw_of(name: str) -> str:
        return name.split(":")[0] + ": raw session.run"

    def ultralytics_of(name: str) -> str | None:
        return name.split(":")[0] + ": ultralytics predict" if remote else None

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end of the detector rounds")
    print(f"detector level, one intra-op thread, batch 1, {args.rounds} rounds x {args.calls} calls "
          "(images per CPU-second; reference = raw session.run at the same input size)")
    summarise(samples, raw_of, ultralytics_of, "vs ultralytics" if remote else "")
    if not args.worker_frames:
        return 0
    cfg = TubelineConfig.model_validate({"models": {"intra_op_threads": 1, "inter_op_threads": 1}}).models
    detector = ModelZoo(cfg).detector()
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for f in frames]
    tensor = detector._prepare(vga)[0][None]
    sess, feed = detector.model.session, detector.model.input_name
    worker_rate(jpegs[:8], detector, before=False)  # warm-up
    wall: dict[str, list[float]] = {"worker before": [], "worker after": [], "raw session.run x frames": []}
    per_cpu: dict[str, list[float]] = {"worker before": [], "worker after": [], "raw session.run x frames": []}
    beside: dict[str, list[float]] = {"worker before": [], "worker after": []}
    for _ in range(max(1, args.rounds // 2)):
        for before in (True, False):
            key = "worker before" if before else "worker after"
            fps, per_core, beside_ms = worker_rate(jpegs, detector, before=before)
            wall[key].append(fps)
            per_cpu[key].append(per_core)
            beside[key].append(beside_ms)
        wall["raw session.run x frames"].append(rate(lambda: sess.run(None, {feed: tensor}), len(jpegs),
                                                     time.perf_counter))
        per_cpu["raw session.run x frames"].append(rate(lambda: sess.run(None, {feed: tensor}), len(jpegs)))
    print(f"\nworker level, {len(jpegs)} vtest frames (768x576 JPEG) from 4 cameras, batch 4, ORT 1 thread")
    print("frames/s of wall time (reference: raw session.run over the same number of prepared tensors):")
    summarise(wall, lambda name: "raw session.run x frames")
    print("frames per CPU-second (= frames/s per core; all threads counted; reference: raw session.run):")
    summarise(per_cpu, lambda name: "raw session.run x frames")
    print("CPU ms per frame beside ONNX Runtime's run (decode, preprocessing, NMS, tracker, crops, messages, store):")
    for key, values in beside.items():
        print(f"  {key:<14} median {statistics.median(values):5.2f}  min-max {min(values):.2f}-{max(values):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
