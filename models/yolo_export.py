"""User-provided models: export YOLO weights with ultralytics (optional, AGPL-3.0) and build registry
entries for YOLOv8/11 and ArcFace-style ONNX files.

Ultralytics is deliberately not a dependency: it needs torch and torchvision (a multi-gigabyte install) and
is only used here, to export. The serving path decodes the exported ONNX itself (``models.detectors``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.detectors import yolo_metadata_names
from models.runtime import ModelError, ModelShapeError

logger = logging.getLogger(__name__)

ULTRALYTICS_HINT = (
    "ultralytics is not installed (it is optional: AGPL-3.0, and it needs torch + torchvision, about 6 GB). "
    "Install it into this environment with `pip install ultralytics` (here torchvision only imports as "
    "`pip install torch==2.14.1 torchvision==0.29.1`), or export on another machine and run "
    "`tubeline models register-yolo FILE.onnx --id NAME`."
)


class UltralyticsMissing(ModelError):
    """ultralytics is needed for this command and is not installed."""


def export_onnx(weights: str, imgsz: int = 640, opset: int | None = None) -> Path:
    """``YOLO(weights).export(format="onnx")``; returns the ONNX path."""
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise UltralyticsMissing(ULTRALYTICS_HINT) from exc
    kwargs: dict[str, Any] = {"format": "onnx", "imgsz": imgsz}
    if opset is not None:
        kwargs["opset"] = opset
    out = YOLO(weights).export(**kwargs)
    return Path(str(out))


def _onnx_io(path: Path) -> tuple[list[Any], list[Any], dict[str, str], int]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}

    def dims(vi: Any) -> list[Any]:
        return [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in vi.type.tensor_type.shape.dim
        ]

    inputs = [dims(v) for v in model.graph.input if v.name not in inits]
    outputs = [dims(v) for v in model.graph.output]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return inputs, outputs, {p.key: p.value for p in model.metadata_props}, int(opset)


def yolo_entry(path: Path, model_id: str, licence: str, derived_from: str = "") -> dict[str, Any]:
    """Registry entry for an ultralytics YOLOv8/11 detection export (output 1×(4+nc)×N)."""
    inputs, outputs, meta, opset = _onnx_io(path)
    if len(inputs) != 1 or len(inputs[0]) != 4:
        msg = f"{path}: expected one NCHW image input, found {inputs}"
        raise ModelShapeError(msg)
    out = outputs[0]
    names = yolo_metadata_names(meta)
    if len(out) != 3 or (isinstance(out[1], int) and names and out[1] != 4 + len(names)):
        msg = f"{path}: output {out} is not 1×(4+nc)×N for {len(names)} classes (a detection export?)"
        raise ModelShapeError(msg)
    if not names and isinstance(out[1], int):
        names = tuple(str(i) for i in range(out[1] - 4))
    agpl = licence.upper().startswith("AGPL")
    return {
        "id": model_id,
        "task": "detect",
        "backend": "yolo",
        "min_opset": opset or None,
        "input": {
            "shape": inputs[0],
            "layout": "NCHW",
            "color": "RGB",
            "mean": [0.0, 0.0, 0.0],
            "std": [255.0, 255.0, 255.0],
            "resize": "letterbox",
        },
        "classes": list(names),
        "licence": {
            "spdx": licence,
            "agpl": agpl,
            "notes": "Ultralytics YOLO weights are AGPL-3.0 unless you hold an Enterprise licence."
            if agpl
            else "",
        },
        "source": {"kind": "local", "derived_from": derived_from or f"user file {path.name}"},
        "description": f"User YOLO export ({meta.get('description', 'ultralytics')}).",
        "file": path.name,
        "sha256": "0" * 64,
    }


def arcface_entry(
    path: Path, model_id: str, licence: str, non_commercial: bool, threshold: float
) -> dict[str, Any]:
    """Registry entry for an ArcFace-style embedder (NCHW 112×112 RGB input, N×D output)."""
    inputs, outputs, _, opset = _onnx_io(path)
    if len(inputs) != 1 or len(inputs[0]) != 4 or len(outputs[0]) != 2:
        msg = f"{path}: expected one NCHW input and an N×D output, found {inputs} → {outputs}"
        raise ModelShapeError(msg)
    return {
        "id": model_id,
        "task": "face-embed",
        "backend": "arcface",
        "min_opset": opset or None,
        "input": {
            "shape": inputs[0],
            "layout": "NCHW",
            "color": "RGB",
            "mean": [127.5, 127.5, 127.5],
            "std": [127.5, 127.5, 127.5],
            "resize": "stretch",
        },
        "options": {"threshold": threshold},
        "licence": {"spdx": licence, "non_commercial": non_commercial},
        "source": {"kind": "local", "derived_from": f"user file {path.name}"},
        "file": path.name,
        "sha256": "0" * 64,
    }
