"""ONNX Runtime behind one small class: provider choice, threads, batching, warm-up and checked loading.

This is the only module in the project that imports ``onnxruntime`` (and ``onnx``). A model file is
checked before a session is built, and each problem gets its own error with the fix in the message:
missing file (run ``tubeline models install``), wrong SHA-256, wrong opset, wrong input shape.

Providers are tried in the configured order (TensorRT → CUDA → CPU by default); those the installed
onnxruntime build lacks are skipped. On CUDA the session runs through IO binding so outputs are
allocated once per call on the device and copied back in one go.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.models import ModelsConfig

logger = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


class ModelError(RuntimeError):
    """Base class of model loading and inference errors."""


class ModelNotInstalledError(ModelError, FileNotFoundError):
    """The model file is not in the model folder."""


class ModelHashError(ModelError):
    """The model file's SHA-256 differs from the registry."""


class ModelOpsetError(ModelError):
    """The model's opset is outside what the registry or onnxruntime accept."""


class ModelShapeError(ModelError):
    """The model's inputs or an input tensor do not have the expected shape."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str, model_id: str = "") -> None:
    """Raise ModelNotInstalledError / ModelHashError unless ``path`` exists with the given digest."""
    label = model_id or path.name
    if not path.is_file():
        msg = f"model {label!r}: file {path} is missing; run `tubeline models install`"
        raise ModelNotInstalledError(msg)
    actual = sha256_file(path)
    if actual != sha256:
        msg = (
            f"model {label!r}: {path} has SHA-256 {actual}, the registry expects {sha256}; "
            "the file is corrupt or a different model: run `tubeline models install --force`"
        )
        raise ModelHashError(msg)


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions are built; mirrors ``pipeline.config.models.ModelsConfig``."""

    providers: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
    precision: str = "fp32"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    max_batch: int = 8
    warmup: bool = True
    verify_on_load: bool = True
    engine_cache: Path | None = None

    @classmethod
    def from_config(cls, config: ModelsConfig, engine_cache: Path | None = None) -> RuntimeOptions:
        return cls(
            providers=tuple(config.providers),
            precision=config.precision,
            intra_op_threads=config.intra_op_threads,
            inter_op_threads=config.inter_op_threads,
            max_batch=config.max_batch,
            warmup=config.warmup,
            verify_on_load=config.verify_on_load,
            engine_cache=engine_cache,
        )


def trt_profile(
    name: str, dims: Sequence[int | str], max_batch: int, nominal_hw: tuple[int, int] | None, min_side: int = 64,
) -> dict[str, str]:
    """TensorRT explicit shape profile for an input with named (dynamic) dimensions, else ``{}``.

    Without one TensorRT builds an engine per new shape at run time (seconds each, mid-stream); with it one
    engine covers batch 1…``max_batch`` and, for a spatially dynamic input, any H×W up to the nominal size
    (a rectangular letterbox never exceeds it; without a nominal size, e.g. the plate detector's pad32
    input, up to 1920×1920 with the optimum at 640×640). The optimum batch is min(8, max)."""
    if all(isinstance(d, int) for d in dims) or len(dims) != 4:
        return {}
    channels = dims[1] if isinstance(dims[1], int) else 3
    fixed = [d if isinstance(d, int) else None for d in dims]
    h, w = nominal_hw or (640, 640)
    top_h, top_w = nominal_hw or (1920, 1920)

    def shape(batch: int, height: int, width: int) -> str:
        values = [fixed[0] or batch, channels, fixed[2] or height, fixed[3] or width]
        return f"{name}:" + "x".join(str(v) for v in values)

    return {
        "trt_profile_min_shapes": shape(1, min(min_side, h), min(min_side, w)),
        "trt_profile_opt_shapes": shape(min(8, max_batch), h, w),
        "trt_profile_max_shapes": shape(max_batch, top_h, top_w),
    }


def select_providers(
    options: RuntimeOptions, available: Sequence[str] | None = None, profile: Mapping[str, str] | None = None
) -> list[Any]:
    """Providers (with options) for a session, in preference order, skipping unavailable ones.

    TensorRT gets fp16 from ``precision``, the engine and timing caches when a cache folder is set, and
    ``profile`` (:func:`trt_profile`) for inputs with dynamic dimensions."""
    available = list(available) if available is not None else available_providers()
    chosen: list[Any] = []
    for short in options.providers:
        name = PROVIDER_NAMES.get(short, short)
        if name not in available:
            logger.debug("provider %s not available (have %s)", name, available)
            continue
        if name == "TensorrtExecutionProvider":
            trt: dict[str, Any] = {"trt_fp16_enable": options.precision == "fp16"}
            if options.engine_cache is not None:
                trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(options.engine_cache),
                           trt_timing_cache_enable=True, trt_timing_cache_path=str(options.engine_cache))
            trt.update(profile or {})
            chosen.append((name, trt))
        else:
            chosen.append(name)
    if "CPUExecutionProvider" not in [c[0] if isinstance(c, tuple) else c for c in chosen]:
        chosen.append("CPUExecutionProvider")
    return chosen


def _default_opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _dims(value_info: Any) -> list[int | str]:
    dims: list[int | str] = []
    for dim in value_info.type.tensor_type.shape.dim:
        dims.append(int(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or "?"))
    return dims


def check_input_shape(actual: Sequence[int | str], expected: Sequence[int | str], label: str) -> None:
    """Fixed dimensions must agree; a name on either side matches anything."""
    if len(actual) != len(expected):
        msg = f"model {label!r}: input has rank {len(actual)} {list(actual)}, the registry expects {list(expected)}"
        raise ModelShapeError(msg)
    for got, want in zip(actual, expected, strict=True):
        if isinstance(got, int) and isinstance(want, int) and got != want:
            msg = (
                f"model {label!r}: input shape {list(actual)} does not match the registry's {list(expected)}"
            )
            raise ModelShapeError(msg)


class OnnxModel:
    """One ONNX Runtime session with checked loading, batching and warm-up.

    ``expected_shape`` (from the registry) is compared with the graph's first input; ``dynamic_input``
    rewrites a graph's fixed input/output dimensions to named ones (CenterFace ships as 10×3×32×32);
    ``dynamic_spatial`` names only the spatial ones and keeps the batch axis as exported (a rectangular
    letterbox needs any H×W, but a graph with reshapes baked to batch 1 mixes the images of a larger batch).
    """

    def __init__(
        self,
        path: Path,
        *,
        label: str = "",
        sha256: str | None = None,
        expected_shape: Sequence[int | str] | None = None,
        min_opset: int | None = None,
        dynamic_input: bool = False,
        dynamic_spatial: bool = False,
        options: RuntimeOptions | None = None,
        warmup_shape: Sequence[int] | None = None,
    ) -> None:
        import onnx
        import onnxruntime as ort

        self.path = Path(path)
        self.label = label or self.path.stem
        self.options = options or RuntimeOptions()
        if sha256 is not None and self.options.verify_on_load:
            verify_file(self.path, sha256, self.label)
        elif not self.path.is_file():
            msg = f"model {self.label!r}: file {self.path} is missing; run `tubeline models install`"
            raise ModelNotInstalledError(msg)
        try:
            proto = onnx.load(str(self.path))
        except Exception as exc:  # onnx raises DecodeError and friends
            msg = f"model {self.label!r}: {self.path} is not a readable ONNX file ({exc})"
            raise ModelError(msg) from exc
        self.opset = _default_opset(proto)
        if min_opset is not None and self.opset < min_opset:
            msg = f"model {self.label!r}: opset {self.opset}, the registry expects at least {min_opset} (wrong export?)"
            raise ModelOpsetError(msg)
        graph_inputs = [
            i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}
        ]
        if expected_shape is not None and not dynamic_input:
            check_input_shape(_dims(graph_inputs[0]), expected_shape, self.label)
        self.dynamic_spatial = dynamic_spatial or dynamic_input
        if dynamic_input or dynamic_spatial:
            proto = _dynamicize(proto, keep_batch=dynamic_spatial and not dynamic_input)
        sess_options = ort.SessionOptions()
        sess_options.log_severity_level = 3
        sess_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.intra_op_threads:
            sess_options.intra_op_num_threads = self.options.intra_op_threads
        if self.options.inter_op_threads:
            sess_options.inter_op_num_threads = self.options.inter_op_threads
        initializers = {t.name for t in proto.graph.initializer}
        first = next(i for i in proto.graph.input if i.name not in initializers)
        spatial = list(expected_shape or _dims(graph_inputs[0]))[2:4]
        nominal = (int(spatial[0]), int(spatial[1])) if all(isinstance(d, int) for d in spatial) and \
            len(spatial) == 2 else None
        profile = trt_profile(first.name, _dims(first), self.options.max_batch, nominal)  # type: ignore[arg-type]
        providers = select_providers(self.options, profile=profile)
        try:
            self.session = ort.InferenceSession(proto.SerializeToString(), sess_options, providers=providers)
        except Exception as exc:
            hint = (
                " (the model's opset may be newer than this onnxruntime supports)"
                if "opset" in str(exc).lower()
                else ""
            )
            msg = f"model {self.label!r}: onnxruntime could not load {self.path}{hint}: {exc}"
            raise ModelError(msg) from exc
        self.inputs = self.session.get_inputs()
        self.outputs = self.session.get_outputs()
        self.input_name = self.inputs[0].name
        self.output_names = [o.name for o in self.outputs]
        self.input_shape = list(self.inputs[0].shape)
        self.providers = self.session.get_providers()
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self._iobinding = self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        logger.info("loaded %s (opset %d) on %s", self.label, self.opset, self.providers[0])
        if self.options.warmup:
            self.warm_up(warmup_shape)

    @property
    def fixed_batch(self) -> int | None:
        dim = self.input_shape[0] if self.input_shape else None
        return dim if isinstance(dim, int) else None

    def warm_up(self, shape: Sequence[int] | None = None) -> float:
        """One dummy inference (builds kernels / TensorRT engines); returns its duration in seconds."""
        if shape is None:
            shape = [
                d if isinstance(d, int) else (1 if i == 0 else 64) for i, d in enumerate(self.input_shape)
            ]
        started = time.monotonic()
        self.run(np.zeros(tuple(shape), dtype=np.float32))
        took = time.monotonic() - started
        logger.debug("warm-up of %s took %.3f s", self.label, took)
        return took

    def run(self, tensor: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """Run one call with ``tensor`` as the first input; returns the outputs in graph order."""
        feeds = {self.input_name: np.ascontiguousarray(tensor, dtype=np.float32), **(extra or {})}
        if self._iobinding:
            return self._run_bound(feeds)
        return self.session.run(self.output_names, feeds)

    def _run_bound(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def run_batched(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run a batch (first axis), split into chunks the model accepts, and concatenate the outputs."""
        n = len(batch)
        if n == 0:
            msg = f"model {self.label!r}: empty batch"
            raise ModelShapeError(msg)
        step = 1 if self.fixed_batch == 1 else (self.fixed_batch or self.options.max_batch)
        if n <= step and (self.fixed_batch is None or n == self.fixed_batch):
            return self.run(batch)
        parts = [self.run(batch[i : i + step]) for i in range(0, n, step)]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def _dynamicize(proto: Any, *, keep_batch: bool = False) -> Any:
    """Name every dimension of the graph inputs and outputs so any batch and image size is accepted.

    With ``keep_batch`` the first axis keeps its exported size and every other output axis is named."""
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    initializers = {t.name for t in proto.graph.initializer}
    inputs = {}
    for vi in proto.graph.input:
        if vi.name in initializers:
            inputs[vi.name] = _dims(vi)
            continue
        rank = len(vi.type.tensor_type.shape.dim)
        batch = _dims(vi)[0] if keep_batch else "batch"
        inputs[vi.name] = [batch, *_dims(vi)[1:2], *[f"in_{vi.name}_{k}" for k in range(2, rank)]]
    outputs = {}
    for vo in proto.graph.output:
        rank = len(vo.type.tensor_type.shape.dim)
        if keep_batch:
            outputs[vo.name] = [_dims(vo)[0], *[f"out_{vo.name}_{k}" for k in range(1, rank)]]
        else:
            outputs[vo.name] = ["batch", *_dims(vo)[1:2], *[f"out_{vo.name}_{k}" for k in range(2, rank)]]
    return update_inputs_outputs_dims(proto, inputs, outputs)
