"""The ultralytics side of ``hotpath.py --ultralytics-python``: runs in *another* interpreter that has ultralytics,
torch and onnxruntime (a throw-away venv; never the project's), so the project's venv stays clean.

It imports nothing from the project. ``hotpath.py`` starts it once and drives it with one JSON command per line
on stdin; every answer is one JSON line on stdout (ultralytics' own chatter goes to stderr):

* ``{"cmd": "export", "out": DIR, "imgsz": 640}``: a random-weight YOLO11n built from ultralytics' yaml (seed 0,
  BatchNorm statistics calibrated on noise, head convs spread as ``tests/fixtures/models/make_yolo_fixture.py``
  does, so scores are not all ~1e-4), exported to ONNX with ``dynamic=True`` (any batch, any H×W). Used when
  ``yolo11n.pt`` cannot be downloaded (no network here). Answers the file's path.
* ``{"cmd": "load", "name": N, "model": PATH, "imgsz": S, "conf": C, "iou": I, "frame": NPY}``: ``YOLO(PATH)``
  through ultralytics' ONNX Runtime backend, forced to one intra-op and one inter-op thread (the session is created
  by ultralytics; ``onnxruntime.InferenceSession`` is wrapped to set the options) and ``torch.set_num_threads(1)``;
  one warm-up ``predict`` on the frame. Answers the input shape ultralytics fed and the boxes it found.
* ``{"cmd": "rate", "name": N, "calls": K}``: K ``predict`` calls on the frame (batch 1, BGR numpy array, as a
  live pipeline would pass it); answers images per CPU-second of this process (all its threads).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

FED: dict[str, list[int]] = {}  # the shape of the last tensor ultralytics fed to ONNX Runtime, per input


def _one_thread_sessions() -> None:
    import onnxruntime as ort

    original = ort.InferenceSession

    class OneThread(original):  # type: ignore[misc, valid-type]
        def __init__(self, path: Any, sess_options: Any = None, *args: Any, **kwargs: Any) -> None:
            options = sess_options or ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            super().__init__(path, options, *args, **kwargs)

        def run(self, output_names: Any, input_feed: Any, *args: Any, **kwargs: Any) -> Any:
            FED.update((k, list(v.shape)) for k, v in input_feed.items())
            return super().run(output_names, input_feed, *args, **kwargs)

    ort.InferenceSession = OneThread


def export(out: Path, imgsz: int) -> Path:
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    cwd = Path.cwd()
    os.chdir(out)  # ultralytics writes the export beside the working directory's model
    try:
        model = YOLO("yolo11n.yaml")
        net = model.model
        net.train()
        with torch.no_grad():
            for _ in range(8):
                net(torch.rand(4, 3, imgsz, imgsz))
        net.eval()
        head = net.model[-1]
        for branch in (*head.cv2, *head.cv3):
            branch[-1].weight.data.normal_(0.0, 1.0)
            branch[-1].bias.data.zero_()
        exported = Path(model.export(format="onnx", imgsz=imgsz, dynamic=True, opset=17, simplify=False)).resolve()
    finally:
        os.chdir(cwd)
    target = out / f"yolo11n-random-{imgsz}-dynamic.onnx"
    exported.replace(target)
    return target


def main(answers: Any) -> int:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    _one_thread_sessions()
    from ultralytics import YOLO

    models: dict[str, tuple[Any, np.ndarray, dict[str, Any]]] = {}
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "export":
            answer: dict[str, Any] = {"path": str(export(Path(req["out"]), int(req["imgsz"])))}
        elif cmd == "load":
            frame = np.load(req["frame"])
            model = YOLO(req["model"], task="detect")
            kw = {"imgsz": req["imgsz"], "conf": req["conf"], "iou": req["iou"], "verbose": False, "device": "cpu"}
            result = model.predict(frame, **kw)[0]
            models[req["name"]] = (model, frame, kw)
            import onnxruntime as ort

            answer = {"boxes": [[round(v, 2) for v in b] for b in result.boxes.xyxy.tolist()],
                      "classes": [int(c) for c in result.boxes.cls.tolist()],
                      "fed": dict(FED),
                      "speed_ms": result.speed, "torch": torch.__version__, "onnxruntime": ort.__version__}
            import ultralytics

            answer["ultralytics"] = ultralytics.__version__
        elif cmd == "rate":
            model, frame, kw = models[req["name"]]
            calls = int(req["calls"])
            started = time.process_time()
            for _ in range(calls):
                model.predict(frame, **kw)
            answer = {"rate": calls / (time.process_time() - started)}
        else:
            answer = {"error": f"unknown command {cmd!r}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    channel = os.fdopen(os.dup(1), "w")  # answers on the real stdout ...
    os.dup2(2, 1)  # ... and anything ultralytics prints goes to stderr
    sys.stdout = sys.stderr
    raise SystemExit(main(channel))
