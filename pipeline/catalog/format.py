"""The Parquet catalog: record layout per kind, segment keys, and writing/reading segments.

Layout in the object store (``{prefix}`` is ``index.catalog_prefix``)::

    {prefix}/{kind}/date={YYYY-MM-DD}/camera={camera_id}/part-p{partition}-{first}-{last}-{digest}.parquet

Date comes before camera so that everything of one day (a FAISS shard's input, a retention
cut, the recent days a refresh cares about) is one listing. ``kind`` is ``tracks``, ``plates``, ``faces``, ``alerts``, ``camera-status`` or ``camera-health``; ``date`` is the UTC
date of the record's event time; ``partition``, ``first`` and ``last`` are the bus partition and
the first and last offsets of the messages in the segment; ``digest`` hashes the records'
idempotency keys and revisions. A replay of the same messages therefore rewrites the same key,
and different content never shares a key. Merged partitions (see :mod:`workers.index.compact`)
are ``part-c-{digest}.parquet``.

Every row carries ``ikey`` (the message's ``idempotency_key()``), ``ingested_at`` and its source
``src_partition``/``src_offset``. Duplicates (redelivered messages, superseded plate revisions)
stay in the segments and are removed when read: per ``ikey`` the row that sorts first by
:attr:`KindSpec.latest_first` wins (highest plate ``revision``, then the latest ingested).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.alerts import Alert
from schemas.cameras import CameraHealth, CameraStatus
from schemas.common import WireMessage
from schemas.faces import FaceRecord
from schemas.plates import PlateRead
from schemas.topics import ALERTS, CAMERA_HEALTH, CAMERA_STATUS, FACES, PLATES, TRACKS, TopicSpec
from schemas.tracks import TrackSummary

TS = pa.timestamp("us", tz="UTC")
BOX = pa.list_(pa.float64(), 4)
_KEY_RE = re.compile(
    r"^(?P<prefix>.+)/(?P<kind>[a-z-]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/camera=(?P<camera>[A-Za-z0-9_.:-]+)/"
    r"(?P<name>part-[A-Za-z0-9_.-]+\.parquet)$"
)

_META_FIELDS = [
    pa.field("ikey", pa.string(), nullable=False),
    pa.field("ingested_at", TS, nullable=False),
    pa.field("src_partition", pa.int32(), nullable=False),
    pa.field("src_offset", pa.int64(), nullable=False),
]


@dataclass(frozen=True)
class RowMeta:
    """Where a record came from: its bus partition and offset, and when the indexer took it."""

    partition: int
    offset: int
    ingested_at: datetime


@dataclass(frozen=True)
class KindSpec:
    """One kind of record in the catalog: its topic, message class, columns and event-time column."""

    name: str
    topic: TopicSpec
    message: type[WireMessage]
    time_column: str
    schema: pa.Schema
    to_row: Callable[[Any], dict[str, Any]]
    latest_first: str = "ingested_at DESC, src_partition DESC, src_offset DESC"
    """SQL ordering within one ``ikey``: the first row is the one that counts."""

    def event_time(self, message: Any) -> datetime:
        return getattr(message, self.time_column)


def _box(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values]


def _largest_box(path: Iterable[tuple[float, float, float, float, float]]) -> list[float]:
    best = max(path, key=lambda p: (p[3] - p[1]) * (p[4] - p[2]))
    return _box(best[1:])


def _track_row(m: TrackSummary) -> dict[str, Any]:
    return {
        "track_id": m.track_id, "segment": m.segment, "camera_id": m.camera_id, "class_name": m.class_name,
        "class_id": m.class_id, "started_at": m.started_at, "ended_at": m.ended_at,
        "frame_width": m.frame_width, "frame_height": m.frame_height, "mean_score": m.mean_score,
        "best_crop_key": m.best_crop_key, "colour": m.colour, "colour_confidence": m.colour_confidence,
        "upper_colour": m.upper_colour, "lower_colour": m.lower_colour,
        "vehicle_type": m.vehicle_type, "closed_reason": m.closed_reason, "box": _largest_box(m.path),
        "path": [list(p) for p in m.path],
    }


def _plate_row(m: PlateRead) -> dict[str, Any]:
    return {
        "read_id": m.read_id, "track_id": m.track_id, "camera_id": m.camera_id, "captured_at": m.captured_at,
        "text": m.text, "char_confidences": list(m.char_confidences), "confidence": m.confidence,
        "box": _box(m.plate_box), "crop_key": m.crop_key, "region": m.region, "plate_kind": m.plate_kind,
        "model_id": m.model_id, "votes": m.votes, "revision": m.revision,
    }


def _face_row(m: FaceRecord) -> dict[str, Any]:
    q = m.quality
    return {
        "face_id": m.face_id, "track_id": m.track_id, "camera_id": m.camera_id, "captured_at": m.captured_at,
        "model_id": m.embedding.model_id, "dimension": m.embedding.dimension,
        "embedding": list(m.embedding.values), "quality": q.score, "sharpness": q.sharpness,
        "brightness": q.brightness, "frontality": q.frontality, "resolution": q.resolution,
        "detection": q.detection, "crop_key": m.crop_key, "box": _box(m.box),
        "landmarks": [v for point in m.landmarks for v in point],
    }


def _alert_row(m: Alert) -> dict[str, Any]:
    return {
        "alert_id": m.alert_id, "alert_type": m.alert_type, "camera_id": m.camera_id, "occurred_at": m.occurred_at,
        "severity": m.severity, "rule_id": m.rule_id, "track_id": m.track_id, "message": m.message,
        "evidence_keys": list(m.evidence_keys), "details": json.dumps(m.details, ensure_ascii=False, sort_keys=True),
    }


_STATS = (
    "window_seconds", "fps_in", "fps_out", "bitrate_kbps", "frames_decoded", "decode_errors", "frames_dropped",
    "recording_drops", "rtp_packets_received", "rtp_packets_lost", "rtp_packets_reordered",
)


def _status_row(m: CameraStatus) -> dict[str, Any]:
    row: dict[str, Any] = {
        "camera_id": m.camera_id, "observed_at": m.observed_at, "event": m.event, "reason": m.reason,
        "detail": m.detail, "attempt": m.attempt, "retry_in_seconds": m.retry_in_seconds,
    }
    for name in _STATS:
        value = getattr(m.stats, name) if m.stats is not None else None
        row[name] = float(value) if value is not None else None
    return row


def _health_row(m: CameraHealth) -> dict[str, Any]:
    return {
        "camera_id": m.camera_id, "observed_at": m.observed_at, "event": m.event, "fault": m.fault,
        "started_at": m.started_at, "ended_at": m.ended_at, "score": m.score, "window_seconds": m.window_seconds,
        "frames_sampled": m.frames_sampled, "problems": list(m.problems), "verdict": m.verdict,
        "thumbnail_key": m.thumbnail_key, "scores": json.dumps(m.scores.model_dump(), sort_keys=True),
    }


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema([*fields, *_META_FIELDS])


def _f(name: str, typ: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, typ, nullable=nullable)


TRACK_KIND = KindSpec("tracks", TRACKS, TrackSummary, "started_at", _schema(
    _f("track_id", pa.string()), _f("segment", pa.int64()), _f("camera_id", pa.string()),
    _f("class_name", pa.string()), _f("class_id", pa.int32()), _f("started_at", TS), _f("ended_at", TS),
    _f("frame_width", pa.int32()), _f("frame_height", pa.int32()), _f("mean_score", pa.float64()),
    _f("best_crop_key", pa.string(), True), _f("colour", pa.string()), _f("colour_confidence", pa.float64()),
    _f("upper_colour", pa.string(), True), _f("lower_colour", pa.string(), True),
    _f("vehicle_type", pa.string(), True), _f("closed_reason", pa.string()), _f("box", BOX),
    _f("path", pa.list_(pa.list_(pa.float64(), 5))),
), _track_row)

PLATE_KIND = KindSpec("plates", PLATES, PlateRead, "captured_at", _schema(
    _f("read_id", pa.string()), _f("track_id", pa.string()), _f("camera_id", pa.string()), _f("captured_at", TS),
    _f("text", pa.string()), _f("char_confidences", pa.list_(pa.float64())), _f("confidence", pa.float64()),
    _f("box", BOX), _f("crop_key", pa.string()), _f("region", pa.string()), _f("plate_kind", pa.string()),
    _f("model_id", pa.string()), _f("votes", pa.int32()), _f("revision", pa.int64()),
), _plate_row, latest_first="revision DESC, ingested_at DESC, src_partition DESC, src_offset DESC")

FACE_KIND = KindSpec("faces", FACES, FaceRecord, "captured_at", _schema(
    _f("face_id", pa.string()), _f("track_id", pa.string()), _f("camera_id", pa.string()), _f("captured_at", TS),
    _f("model_id", pa.string()), _f("dimension", pa.int32()), _f("embedding", pa.list_(pa.float32())),
    _f("quality", pa.float64()), _f("sharpness", pa.float64()), _f("brightness", pa.float64()),
    _f("frontality", pa.float64()), _f("resolution", pa.float64()), _f("detection", pa.float64()),
    _f("crop_key", pa.string()), _f("box", BOX), _f("landmarks", pa.list_(pa.float64(), 10)),
), _face_row)

ALERT_KIND = KindSpec("alerts", ALERTS, Alert, "occurred_at", _schema(
    _f("alert_id", pa.string()), _f("alert_type", pa.string()), _f("camera_id", pa.string()),
    _f("occurred_at", TS), _f("severity", pa.string()), _f("rule_id", pa.string()),
    _f("track_id", pa.string(), True), _f("message", pa.string()), _f("evidence_keys", pa.list_(pa.string())),
    _f("details", pa.string()),
), _alert_row)

STATUS_KIND = KindSpec("camera-status", CAMERA_STATUS, CameraStatus, "observed_at", _schema(
    _f("camera_id", pa.string()), _f("observed_at", TS), _f("event", pa.string()), _f("reason", pa.string(), True),
    _f("detail", pa.string()), _f("attempt", pa.int64(), True), _f("retry_in_seconds", pa.float64(), True),
    *[_f(name, pa.float64(), True) for name in _STATS],
), _status_row)

HEALTH_KIND = KindSpec("camera-health", CAMERA_HEALTH, CameraHealth, "observed_at", _schema(
    _f("camera_id", pa.string()), _f("observed_at", TS), _f("event", pa.string()), _f("fault", pa.string(), True),
    _f("started_at", TS, True), _f("ended_at", TS, True), _f("score", pa.float64()),
    _f("window_seconds", pa.float64()), _f("frames_sampled", pa.int64()), _f("problems", pa.list_(pa.string())),
    _f("verdict", pa.string()), _f("thumbnail_key", pa.string(), True), _f("scores", pa.string()),
), _health_row)

KINDS: tuple[KindSpec, ...] = (TRACK_KIND, PLATE_KIND, FACE_KIND, ALERT_KIND, STATUS_KIND, HEALTH_KIND)
KIND_BY_NAME: Mapping[str, KindSpec] = {k.name: k for k in KINDS}
KIND_BY_TOPIC: Mapping[str, KindSpec] = {k.topic.name: k for k in KINDS}


# -- keys ----------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class SegmentRef:
    """A catalog segment, parsed from its key."""

    kind: str
    camera_id: str
    date: str
    key: str


def partition_prefix(prefix: str, kind: str, camera_id: str, date: str) -> str:
    return f"{prefix}/{kind}/date={date}/camera={camera_id}/"


def date_prefix(prefix: str, kind: str, date: str) -> str:
    return f"{prefix}/{kind}/date={date}/"


def content_digest(ikeys: Iterable[str]) -> str:
    """12 hex digits over the sorted keys: the same records give the same digest."""
    h = hashlib.sha256()
    for ikey in sorted(ikeys):
        h.update(ikey.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:12]


def segment_key(
    prefix: str, kind: str, camera_id: str, date: str, partition: int, first: int, last: int, digest: str
) -> str:
    return partition_prefix(prefix, kind, camera_id, date) + f"part-p{partition}-{first:012d}-{last:012d}-{digest}.parquet"


def compacted_key(prefix: str, kind: str, camera_id: str, date: str, digest: str) -> str:
    return partition_prefix(prefix, kind, camera_id, date) + f"part-c-{digest}.parquet"


def parse_segment_key(key: str, prefix: str) -> SegmentRef | None:
    """The segment a key names, or None for anything else under the prefix."""
    m = _KEY_RE.match(key)
    if m is None or m["prefix"] != prefix or m["kind"] not in KIND_BY_NAME:
        return None
    return SegmentRef(m["kind"], m["camera"], m["date"], key)


# -- reading and writing -------------------------------------------------------------------------
def build_table(kind: KindSpec, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=kind.schema)


def table_bytes(table: pa.Table) -> bytes:
    """The table as Parquet (zstd, statistics on, one row group per 64k rows)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=65536, write_statistics=True)
    return sink.getvalue()


def read_table(source: bytes | Path, columns: list[str] | None = None) -> pa.Table:
    """A segment's table; raises ``pyarrow.ArrowInvalid`` when the bytes are not Parquet."""
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    return pq.read_table(data, columns=columns)
