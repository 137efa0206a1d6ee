"""The one configuration tree, its loader and its validator.

A configuration is a YAML file validated against :class:`TubelineConfig`; every
section forbids unknown keys. Environment variables override the file:
``TUBELINE_<SECTION>__<FIELD>[__<FIELD>…]`` (double underscore between levels), e.g.
``TUBELINE_BUS__BACKEND=kafka`` or ``TUBELINE_STORE__S3__ACCESS_KEY=…``. Values from
the environment are parsed as YAML scalars (``true``, ``6``, ``[a, b]``).

Secrets are :class:`pydantic.SecretStr`: they print as ``**********`` and
:func:`dump_config` never writes them out in clear.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, SecretStr, ValidationError

from pipeline.config.api import ApiConfig
from pipeline.config.base import Section
from pipeline.config.bus import BusConfig, KafkaConfig
from pipeline.config.cases import CasesConfig
from pipeline.config.detect import DetectConfig
from pipeline.config.enrich import FaceWorkerConfig, HotlistsConfig, PlateWorkerConfig
from pipeline.config.index import IndexConfig
from pipeline.config.ingest import CamerasConfig, IngestConfig
from pipeline.config.models import ModelsConfig
from pipeline.config.notify import NotifyConfig
from pipeline.config.quality import QualityConfig
from pipeline.config.rules import RulesConfig
from pipeline.config.runtime import RuntimeConfig
from pipeline.config.secrets import SecretsConfig
from pipeline.config.spool import SpoolConfig
from pipeline.config.stack import StackConfig
from pipeline.config.store import LocalStoreConfig, S3Config, StoreConfig
from pipeline.config.synopsis import SynopsisConfig

ENV_PREFIX = "TUBELINE_"
ENV_CONFIG_FILE = "TUBELINE_CONFIG"


class TubelineConfig(Section):
    """Root of the configuration tree."""

    # A ValidationError's text would otherwise quote the offending input, keys and passwords included.
    model_config = ConfigDict(hide_input_in_errors=True)

    bus: BusConfig = Field(default_factory=BusConfig, title="Bus", description="Message bus.")
    store: StoreConfig = Field(default_factory=StoreConfig, title="Object store", description="Object store.")
    stack: StackConfig = Field(default_factory=StackConfig, title="Local stack", description="Local broker and S3 server.")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, title="Runtime", description="Worker processes.")
    spool: SpoolConfig = Field(
        default_factory=SpoolConfig, title="Spool", description="Local spool of object writes the store cannot take yet."
    )
    cameras: CamerasConfig = Field(
        default_factory=CamerasConfig, title="Cameras", description="Static cameras and the camera registry."
    )
    ingest: IngestConfig = Field(default_factory=IngestConfig, title="Ingest", description="Ingest workers.")
    models: ModelsConfig = Field(default_factory=ModelsConfig, title="Models", description="Model zoo and inference.")
    detect: DetectConfig = Field(
        default_factory=DetectConfig, title="Detect", description="Detection, tracking and crops."
    )
    rules: RulesConfig = Field(
        default_factory=RulesConfig, title="Rules", description="Rules worker: zones, lines and rules per camera."
    )
    plate: PlateWorkerConfig = Field(
        default_factory=PlateWorkerConfig, title="Plate worker", description="Plate recognition and voting."
    )
    hotlists: HotlistsConfig = Field(
        default_factory=HotlistsConfig, title="Hotlists", description="Plate hotlists and matching."
    )
    face: FaceWorkerConfig = Field(
        default_factory=FaceWorkerConfig, title="Face worker", description="Face quality gates and embedding."
    )
    index: IndexConfig = Field(
        default_factory=IndexConfig, title="Index", description="Indexer: Parquet catalog and FAISS shards."
    )
    api: ApiConfig = Field(default_factory=ApiConfig, title="API", description="REST API, web UI, users and audit.")
    notify: NotifyConfig = Field(default_factory=NotifyConfig, title="Notifications",
                                 description="Signed webhooks that receive alerts.")
    synopsis: SynopsisConfig = Field(
        default_factory=SynopsisConfig, title="Synopsis", description="Video synopsis builder and worker."
    )
    quality: QualityConfig = Field(
        default_factory=QualityConfig, title="Quality",
        description="Video quality diagnosis, camera-health housekeeping and the daily inspection report.",
    )
    cases: CasesConfig = Field(
        default_factory=CasesConfig, title="Cases",
        description="Case register, evidence packages and their signing key, retention and legal hold, case links.",
    )
    secrets: SecretsConfig = Field(
        default_factory=SecretsConfig, title="Secrets at rest",
        description="Keys that encrypt secrets kept in the object store (camera passwords in the registry).",
    )


@dataclass(frozen=True)
class ConfigProblem:
    """One validation error, located in the file where possible."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    from_env: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.from_env:
            where = f"environment {self.from_env}: "
        elif self.file and self.line is not None:
            where = f"{self.file}:{self.line}:{self.column}: "
        elif self.file:
            where = f"{self.file}: "
        return f"{where}{self.path or '(root)'}: {self.message}"


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists each error with its location."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


def _yaml_marks(text: str) -> dict[tuple[str, ...], tuple[int, int]]:
    """Map each key path in a YAML document to the (line, column) of its key, 1-based."""
    marks: dict[tuple[str, ...], tuple[int, int]] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                sub = (*path, str(key_node.value))
                marks[sub] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                walk(value_node, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = (*path, str(i))
                marks[sub] = (item.start_mark.line + 1, item.start_mark.column + 1)
                walk(item, sub)

    if root is not None:
        walk(root, ())
    return marks


def env_overrides(environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Nested overrides from ``TUBELINE_A__B=value`` variables, and which variable set each path."""
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_FILE or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not all(path):
            continue
        try:
            value: Any = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if path[-1].endswith(("key", "password", "secret", "token")):
            value = raw  # secrets stay verbatim strings, never YAML-parsed
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = value
            origins[path] = name
    return tree, origins


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None, use_env: bool = True
) -> TubelineConfig:
    """Load and validate the configuration: file (or ``$TUBELINE_CONFIG``), then environment overrides.

    Raises :class:`ConfigError` with located problems, or FileNotFoundError.
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get(ENV_CONFIG_FILE):
        path = environ[ENV_CONFIG_FILE]
    text = ""
    data: dict[str, Any] = {}
    marks: dict[tuple[str, ...], tuple[int, int]] = {}
    file_name: str | None = None
    if path is not None:
        file_name = str(path)
        text = Path(path).read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(text)
            marks = _yaml_marks(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else None
            col = mark.column + 1 if mark else None
            raise ConfigError([ConfigProblem("", f"not valid YAML: {exc}", file_name, line, col)]) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([ConfigProblem("", "the top level must be a mapping of sections", file_name, 1, 1)])
        data = loaded
    origins: dict[tuple[str, ...], str] = {}
    if use_env:
        overrides, origins = env_overrides(environ)
        data = _deep_merge(data, overrides)
    try:
        return TubelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_locate(exc, file_name, marks, origins)) from None


def _locate(
    exc: ValidationError,
    file_name: str | None,
    marks: Mapping[tuple[str, ...], tuple[int, int]],
    origins: Mapping[tuple[str, ...], str],
) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(str(p) for p in err["loc"])
        dotted = ".".join(loc)
        env_name = next((origins[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in origins), None)
        line = col = None
        for i in range(len(loc), -1, -1):
            if loc[:i] in marks:
                line, col = marks[loc[:i]]
                break
        problems.append(ConfigProblem(dotted, err["msg"], file_name, line, col, env_name))
    return problems


def config_data(config: TubelineConfig, *, reveal_secrets: bool = False) -> dict[str, Any]:
    """The configuration as plain Python data; secrets stay masked unless ``reveal_secrets``."""

    def reveal(node: Any) -> Any:
        if isinstance(node, SecretStr):
            return node.get_secret_value()
        if isinstance(node, dict):
            return {k: reveal(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return type(node)(reveal(v) for v in node)
        return node

    data = config.model_dump(mode="python")
    return reveal(data) if reveal_secrets else data


def with_overrides(config: TubelineConfig, overrides: Mapping[str, Any]) -> TubelineConfig:
    """A new, validated configuration with dotted-path values replaced (``{"bus.topic_prefix": "t1"}``)."""
    data = config_data(config, reveal_secrets=True)
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    try:
        return TubelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_locate(exc, None, {}, {})) from None


def dump_config(config: TubelineConfig) -> str:
    """The effective configuration as YAML, secrets masked."""
    data = config.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


__all__ = [
    "ApiConfig",
    "BusConfig",
    "CamerasConfig",
    "IngestConfig",
    "ModelsConfig",
    "ConfigError",
    "ConfigProblem",
    "DetectConfig",
    "IndexConfig",
    "KafkaConfig",
    "LocalStoreConfig",
    "RulesConfig",
    "RuntimeConfig",
    "S3Config",
    "SecretsConfig",
    "SpoolConfig",
    "StackConfig",
    "StoreConfig",
    "SynopsisConfig",
    "TubelineConfig",
    "config_data",
    "dump_config",
    "env_overrides",
    "load_config",
    "with_overrides",
]
