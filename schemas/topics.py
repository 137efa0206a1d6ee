"""Every Kafka topic of Tubeline, in one place: name, message class, key, partitioning, size.

Rules that hold for every topic here:

- **Names** are versioned: ``tubeline.<kind>.v1``. A breaking schema change gets a new
  topic (``.v2``) and both run side by side while consumers move over.
- **Key**: the camera ID (UTF-8 bytes of the message's ``camera_id``) on every topic, so
  all of one camera's messages of a kind land in one partition and stay in order.
- **Partitioning**: Kafka's default partitioner, ``murmur2(key) % partitions`` (the same on
  the in-memory bus). Adding partitions later moves cameras between partitions, so size
  topics up front; partition count is also the most consumers a group can keep busy.
- **Values**: JSON (``message.to_json()``, UTF-8) validated by ``schemas/json/<name>.v1.json``,
  except the frames topic, whose value is JPEG bytes and whose metadata is in Kafka headers
  (:meth:`schemas.frames.FrameHeader.to_headers`).
- **Dead letters**: a message a consumer cannot process goes to ``<topic>.dlq`` (for example
  ``tubeline.plates.v1.dlq``) with its original key, value and headers plus
  ``tubeline-dlq-*`` headers giving the reason and origin. The bus defines and produces
  them (``pipeline.bus.base.dead_letter_topic`` and ``DeadLetter``); with a prefix the
  dead-letter topic is ``<prefix>.<topic>.dlq``.
- **Prefixes**: :func:`topic_name` puts an optional prefix in front
  (``"t-3f2a.tubeline.frames.v1"``) so tests and side-by-side deployments get their own topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from schemas.alerts import Alert
from schemas.cameras import CameraHealth, CameraStatus
from schemas.common import WireMessage
from schemas.detections import Detections
from schemas.devices import DeviceCommand
from schemas.faces import FaceRecord
from schemas.frames import FrameHeader
from schemas.live import LivePacketHeader
from schemas.objects import ObjectCrop
from schemas.plates import PlateRead
from schemas.tracks import TrackSummary

PARTITIONING_RULE = (
    "Kafka default partitioner: murmur2 hash of the key (the camera ID, UTF-8) modulo the "
    "partition count; one camera's messages stay in one partition, in order."
)
KEY_FIELD = "camera_id"
MAX_TOPIC_NAME = 249
"""Kafka's limit on a topic name's length."""

_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    """One topic: what flows on it and how it is keyed, partitioned and retained."""

    name: str
    """Versioned topic name without prefix, e.g. ``tubeline.frames.v1``."""
    message: type[WireMessage]
    """The message class; its JSON Schema is ``schemas/json/<message.SCHEMA_NAME>.v1.json``."""
    value_format: Literal["json", "jpeg", "packet"]
    """``json``: the value is ``message.to_json()``; ``jpeg``: JPEG bytes, metadata in headers; ``packet``: an
    encoded video packet of the camera's own stream, metadata in headers."""
    partitions: int
    """Default partition count when the topic is created."""
    retention_ms: int
    """Default retention (Kafka ``retention.ms``)."""
    description: str
    """Who produces it, who consumes it."""
    key_field: str = KEY_FIELD
    """The message field whose UTF-8 value is the Kafka key."""
    partitioning: str = PARTITIONING_RULE
    """The partitioning rule, in words."""

    def key_for(self, message: WireMessage) -> bytes:
        """The Kafka key of ``message`` on this topic (its camera ID as UTF-8)."""
        if not isinstance(message, self.message):
            msg = f"{self.name} carries {self.message.__name__}, not {type(message).__name__}"
            raise TypeError(msg)
        value = getattr(message, self.key_field)
        if not isinstance(value, str):
            msg = f"{type(message).__name__}.{self.key_field} is not a string"
            raise TypeError(msg)
        return value.encode("utf-8")

    def with_prefix(self, prefix: str | None = None) -> str:
        """This topic's name with an optional prefix; see :func:`topic_name`."""
        return topic_name(self, prefix)


FRAMES = TopicSpec(
    name="tubeline.frames.v1",
    message=FrameHeader,
    value_format="jpeg",
    partitions=12,
    retention_ms=2 * _HOUR_MS,
    description="Ingest publishes sampled frames as JPEG; detect and quality consume. Large: kept briefly.",
)
DETECTIONS = TopicSpec(
    name="tubeline.detections.v1",
    message=Detections,
    value_format="json",
    partitions=12,
    retention_ms=1 * _DAY_MS,
    description="Detect publishes per-frame boxes, classes, scores and track IDs; rules consumes.",
)
OBJECTS = TopicSpec(
    name="tubeline.objects.v1",
    message=ObjectCrop,
    value_format="json",
    partitions=12,
    retention_ms=3 * _DAY_MS,
    description="Detect announces stored crops of tracked objects; plate and face consume.",
)
TRACKS = TopicSpec(
    name="tubeline.tracks.v1",
    message=TrackSummary,
    value_format="json",
    partitions=12,
    retention_ms=7 * _DAY_MS,
    description="Detect publishes closed-track summaries; synopsis and indexer consume.",
)
PLATES = TopicSpec(
    name="tubeline.plates.v1",
    message=PlateRead,
    value_format="json",
    partitions=6,
    retention_ms=7 * _DAY_MS,
    description="Plate publishes one voted plate read per vehicle track; indexer and synopsis consume.",
)
FACES = TopicSpec(
    name="tubeline.faces.v1",
    message=FaceRecord,
    value_format="json",
    partitions=6,
    retention_ms=7 * _DAY_MS,
    description="Face publishes embedded faces of person tracks; indexer consumes.",
)
ALERTS = TopicSpec(
    name="tubeline.alerts.v1",
    message=Alert,
    value_format="json",
    partitions=6,
    retention_ms=30 * _DAY_MS,
    description="Rules, plate (hotlists) and ingest (GB/T 28181 device alarms) raise alerts; indexer, API (live "
    "feed) and operators consume.",
)
CAMERA_STATUS = TopicSpec(
    name="tubeline.camera-status.v1",
    message=CameraStatus,
    value_format="json",
    partitions=3,
    retention_ms=30 * _DAY_MS,
    description="Ingest publishes connection events and periodic stream statistics; rules, indexer and API consume.",
)
CAMERA_HEALTH = TopicSpec(
    name="tubeline.camera-health.v1",
    message=CameraHealth,
    value_format="json",
    partitions=3,
    retention_ms=30 * _DAY_MS,
    description="Quality publishes image-quality diagnoses per camera and window; indexer and API consume.",
)

DEVICE_COMMANDS = TopicSpec(
    name="tubeline.device-commands.v1",
    message=DeviceCommand,
    value_format="json",
    partitions=1,
    retention_ms=_DAY_MS,
    description="The API publishes PTZ, preset and device-recording commands; the ingest worker holding the device runs them.",
)

LIVE = TopicSpec(
    name="tubeline.live.v1",
    message=LivePacketHeader,
    value_format="packet",
    partitions=12,
    retention_ms=5 * 60_000,
    description="Ingest publishes every encoded packet of every camera (the original stream, at its own rate) "
    "for live viewing; API processes follow it from its end. Large and short-lived: kept minutes.",
)

_ALL: tuple[TopicSpec, ...] = (
    FRAMES,
    DETECTIONS,
    OBJECTS,
    TRACKS,
    PLATES,
    FACES,
    ALERTS,
    CAMERA_STATUS,
    CAMERA_HEALTH,
    DEVICE_COMMANDS,
    LIVE,
)


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic, in pipeline order (frames first)."""
    return _ALL


def get_topic(name: str) -> TopicSpec:
    """The topic called ``name`` (without prefix); ``KeyError`` if there is none."""
    for spec in _ALL:
        if spec.name == name:
            return spec
    msg = f"no topic {name!r}"
    raise KeyError(msg)


def topic_for(message: type[WireMessage]) -> TopicSpec:
    """The topic that carries ``message`` (a class); ``KeyError`` if none does."""
    for spec in _ALL:
        if spec.message is message:
            return spec
    msg = f"no topic carries {message.__name__}"
    raise KeyError(msg)


def topic_name(topic: TopicSpec | str, prefix: str | None = None) -> str:
    """The full topic name: ``topic`` itself, or ``f"{prefix}.{topic}"`` when a prefix is given.

    ``topic`` is a :class:`TopicSpec` or a known topic name. The prefix may contain letters,
    digits, ``_``, ``-`` and ``.`` (not first or last); the result must fit Kafka's 249
    characters. ``topic_name(FRAMES, "t-3f2a")`` is ``"t-3f2a.tubeline.frames.v1"``.
    """
    spec = topic if isinstance(topic, TopicSpec) else get_topic(topic)
    if prefix is None or prefix == "":
        return spec.name
    if not _PREFIX.fullmatch(prefix) or prefix.endswith("."):
        msg = f"topic prefix must match [A-Za-z0-9_-][A-Za-z0-9_.-]* and not end with '.', got {prefix!r}"
        raise ValueError(msg)
    name = f"{prefix}.{spec.name}"
    if len(name) > MAX_TOPIC_NAME:
        msg = f"topic name {name!r} is longer than Kafka's {MAX_TOPIC_NAME} characters"
        raise ValueError(msg)
    return name
