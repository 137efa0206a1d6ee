"""Factories: registry id (or the configured default) → a loaded model behind its protocol.

``ModelZoo`` is the entry point for workers and the CLI::

    zoo = ModelZoo.from_config()          # models section of the Tubeline config (+ TUBELINE_MODELS__* env)
    detector = zoo.detector()             # Detector (config.detector, or zoo.detector("my-yolo11n"))
    plates = zoo.plate_recognizer()       # PlateRecognizer (detector + reader + grammar)
    faces = zoo.face_analyzer()           # FaceAnalyzer (detector + alignment + quality + embedder)

Loaded models are cached per zoo, so asking twice returns the same object.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.registry import ModelSpec, Registry, RegistryError, load_registry
from models.runtime import OnnxModel, RuntimeOptions, verify_file
from pipeline.config import env_overrides, load_config
from pipeline.config.models import ModelsConfig

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """The folder holding ``pyproject.toml`` (source checkout), else the working directory."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()


def resolve(path: Path) -> Path:
    return path if path.is_absolute() else project_root() / path


def models_config() -> ModelsConfig:
    """The ``models`` section of the loaded Tubeline config, or defaults plus ``TUBELINE_MODELS__*`` overrides
    when the configuration does not load (a broken config must not hide the models' own settings)."""
    try:
        return load_config().models
    except Exception as exc:
        logger.debug("using models defaults; config not loaded: %s", exc)
    tree, _ = env_overrides()
    return ModelsConfig.model_validate(tree.get("models", {}))


class ModelZoo:
    """Registry + model folder + runtime options; builds and caches backends."""

    def __init__(self, config: ModelsConfig | None = None, registry: Registry | None = None) -> None:
        self.config = config or ModelsConfig()
        self.model_dir = resolve(self.config.dir)
        self.cache_dir = resolve(self.config.cache_dir)
        self.registry = registry or load_registry(
            [resolve(p) for p in self.config.registry_files], self.model_dir
        )
        self.options = RuntimeOptions.from_config(self.config, engine_cache=self.model_dir / "trt-cache")
        self._cache: dict[tuple[str, str], Any] = {}

    @classmethod
    def from_config(cls) -> ModelZoo:
        return cls(models_config())

    def path(self, spec: ModelSpec) -> Path:
        return self.model_dir / spec.file

    def spec(self, model_id: str, task: str) -> ModelSpec:
        spec = self.registry.get(model_id)
        if spec.task != task:
            msg = f"model {model_id!r} is a {spec.task} model, not {task}"
            raise RegistryError(msg)
        return spec

    def onnx(
        self, spec: ModelSpec, warmup_shape: list[int] | None = None, *, dynamic_spatial: bool = False
    ) -> OnnxModel:
        assert spec.input is not None  # guaranteed for onnx specs by the registry validator
        return OnnxModel(
            self.path(spec),
            label=spec.id,
            sha256=spec.sha256,
            expected_shape=spec.input.shape,
            min_opset=spec.min_opset,
            dynamic_input=spec.input.dynamic,
            dynamic_spatial=dynamic_spatial,
            options=self.options,
            warmup_shape=warmup_shape,
        )

    def _cached(self, kind: str, model_id: str, build: Any) -> Any:
        key = (kind, model_id)
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # -- single models ------------------------------------------------------------------------------
    def detector(self, model_id: str | None = None) -> Any:
        from models.detectors import NanoDetDetector, YoloDetector, accepts_rect, yolo_metadata_names

        spec = self.spec(model_id or self.config.detector, "detect")
        rect = self.config.detect_input == "rect"

        def build() -> Any:
            assert spec.input is not None
            size = [d if isinstance(d, int) else 640 for d in spec.input.shape[-2:]]
            # warm up at the exported size: a fixed YOLO export renamed to dynamic fails on any other shape, and
            # accepts_rect() below is what decides whether rectangles are used
            warmup = [1, 3, *size] if rect and spec.input.layout == "NCHW" else None
            model = self.onnx(spec, warmup, dynamic_spatial=rect)
            if rect and not accepts_rect(model, size[0], size[1]):
                model = self.onnx(spec)
            names = self.registry.class_names(spec) or yolo_metadata_names(model.metadata)
            score, iou = self.config.detect_score, self.config.detect_iou
            use_rect = rect and model.dynamic_spatial
            if spec.backend == "nanodet":
                strides = spec.options.get("strides", (8, 16, 32))
                return NanoDetDetector(model, spec.input, spec.ref, names, strides=strides, score=score, iou=iou,
                                       rect=use_rect)
            return YoloDetector(model, spec.input, spec.ref, names, score=score, iou=iou, rect=use_rect)

        base = self._cached("detect", spec.id, build)
        views = tuple(self.config.detector_views)
        if views == ("stretch",):
            return base
        from models.multiview import MultiViewDetector

        return self._cached("detect-views", f"{spec.id}[{'+'.join(views)}]",
                            lambda: MultiViewDetector(base, views))

    def plate_detector(self, model_id: str | None = None) -> Any:
        from models.plates.detector import ClpPlateDetector

        spec = self.spec(model_id or self.config.plate_detector, "plate-detect")
        max_side = int(spec.options.get("max_side", 960))
        pyramid = tuple(int(s) for s in spec.options.get("pyramid", ()))
        return self._cached(
            "plate-detect",
            spec.id,
            lambda: ClpPlateDetector(
                self.onnx(spec, [1, 3, 64, 64]), spec.ref, score=self.config.plate_score, max_side=max_side,
                pyramid=pyramid,
            ),
        )

    def plate_reader(self, model_id: str | None = None) -> Any:
        from models.plates.grammar import PlateGrammar
        from models.plates.reader import PpocrPlateReader
        from models.plates.scoring import PlateCalibration

        spec = self.spec(model_id or self.config.plate_reader, "plate-read")
        grammar = PlateGrammar(self.config.plate_regions, custom=self.config.plate_patterns)
        calibration_file = spec.options.get("calibration")
        calibration = PlateCalibration.load(resolve(Path(calibration_file))) if calibration_file else None
        return self._cached(
            "plate-read",
            spec.id,
            lambda: PpocrPlateReader(self.onnx(spec, [1, 3, 48, 160]), spec.ref, grammar,
                                     calibration=calibration, views=self.config.plate_views),
        )

    def face_detector(self, model_id: str | None = None) -> Any:
        from models.faces.centerface import CenterFaceDetector

        spec = self.spec(model_id or self.config.face_detector, "face-detect")
        max_side = int(spec.options.get("max_side", 640))
        return self._cached(
            "face-detect",
            spec.id,
            lambda: CenterFaceDetector(
                self.onnx(spec, [1, 3, 64, 64]), spec.ref, score=self.config.face_score, max_side=max_side
            ),
        )

    def face_embedder(self, model_id: str | None = None) -> Any:
        spec = self.spec(model_id or self.config.face_embedder, "face-embed")
        threshold = self.config.face_threshold
        if threshold is None:
            threshold = float(spec.options.get("threshold", 0.5))

        def build() -> Any:
            if spec.backend == "dlib-resnet":
                from models.faces.embedders import DlibEmbedder

                if self.options.verify_on_load:
                    verify_file(self.path(spec), spec.sha256, spec.id)
                return DlibEmbedder(self.path(spec), spec.ref, threshold=threshold)
            if spec.backend == "mobilefacenet-tflite":
                from models.faces.tflite import MobileFaceNetEmbedder

                if self.options.verify_on_load:
                    verify_file(self.path(spec), spec.sha256, spec.id)
                return MobileFaceNetEmbedder(self.path(spec), spec.ref, threshold=threshold,
                                             threads=self.options.intra_op_threads)
            from models.faces.embedders import ArcFaceEmbedder

            assert spec.input is not None
            return ArcFaceEmbedder(self.onnx(spec), spec.ref, spec.input, threshold=threshold)

        return self._cached("face-embed", spec.id, build)

    def super_resolver(self, model_id: str = "span-x4") -> Any:
        """The learned ×4 upscaler (SPAN via ncnn; its licence is flagged in the registry)."""
        from models.superres import SpanUpscaler

        spec = self.spec(model_id, "super-resolution")

        def build() -> Any:
            from models.runtime import verify_file

            weights = self.path(spec)
            verify_file(weights, spec.sha256, spec.id)
            companion = spec.source.companions[0] if spec.source.companions else None
            param = weights.with_name(companion.file) if companion else weights.with_suffix(".param")
            if companion is not None:
                verify_file(param, companion.sha256, f"{spec.id} ({companion.file})")
            return SpanUpscaler(param, weights, spec.ref)

        return self._cached("super-resolution", spec.id, build)

    # -- pipelines ----------------------------------------------------------------------------------
    def plate_recognizer(self) -> Any:
        from models.plates.pipeline import PlateRecognizer

        return self._cached(
            "plate-pipeline", "default", lambda: PlateRecognizer(self.plate_detector(), self.plate_reader())
        )

    def face_analyzer(self) -> Any:
        from models.faces.pipeline import FaceAnalyzer

        return self._cached(
            "face-pipeline",
            "default",
            lambda: FaceAnalyzer(
                self.face_detector(), self.face_embedder(), min_size=self.config.face_min_size
            ),
        )
