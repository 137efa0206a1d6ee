"""Unit tests of the wire contract in ``schemas/``: classes, committed JSON Schemas, topics.

Every class's example must validate against its committed schema file, round-trip exactly,
and be rejected (by the class and, where JSON Schema can say it, by the schema file too) when
a field is unknown, a datetime is naive, or a value is out of range.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

import schemas
from schemas import (
    MESSAGE_TYPES,
    Alert,
    CameraHealth,
    CameraStatus,
    Detections,
    DeviceCommand,
    FaceRecord,
    FrameHeader,
    ObjectCrop,
    PlateRead,
    TrackSummary,
    WireMessage,
    generate,
    make_track_id,
    parse_message,
    stable_id,
    topics,
)
from schemas.live import LivePacketHeader
from schemas.validation import format_checker

SCHEMA_DIR = Path(schemas.__file__).resolve().parent / "json"
REPO_ROOT = SCHEMA_DIR.parent.parent
CLASS_IDS = [cls.__name__ for cls in MESSAGE_TYPES]

EXPECTED_TOPICS = {
    "tubeline.frames.v1": FrameHeader,
    "tubeline.detections.v1": Detections,
    "tubeline.objects.v1": ObjectCrop,
    "tubeline.tracks.v1": TrackSummary,
    "tubeline.plates.v1": PlateRead,
    "tubeline.faces.v1": FaceRecord,
    "tubeline.alerts.v1": Alert,
    "tubeline.camera-status.v1": CameraStatus,
    "tubeline.camera-health.v1": CameraHealth,
    "tubeline.device-commands.v1": DeviceCommand,
    "tubeline.live.v1": LivePacketHeader,
}


def _committed_validator(cls: type[WireMessage]) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{cls.SCHEMA_NAME}.v1.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


def _example_doc(cls: type[WireMessage]) -> dict[str, Any]:
    return json.loads(cls.example().to_json())


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


def _class_rejects(cls: type[WireMessage], doc: dict[str, Any]) -> bool:
    try:
        cls.from_json(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    except ValidationError:
        return True
    return False


def _schema_rejects(cls: type[WireMessage], doc: dict[str, Any]) -> bool:
    return not _committed_validator(cls).is_valid(doc)


# --- every class against its committed schema ------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=CLASS_IDS)
def test_example_validates_against_committed_schema(cls: type[WireMessage]) -> None:
    errors = [e.message for e in _committed_validator(cls).iter_errors(_example_doc(cls))]
    assert errors == []


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=CLASS_IDS)
def test_round_trip_is_exact(cls: type[WireMessage]) -> None:
    example = cls.example()
    data = example.to_json()
    assert isinstance(data, bytes)
    parsed = cls.from_json(data)
    assert parsed == example
    assert parsed.to_json() == data
    assert parse_message(data) == example


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=CLASS_IDS)
def test_discriminator_fields_are_on_the_wire(cls: type[WireMessage]) -> None:
    doc = _example_doc(cls)
    assert doc["type"] == cls.SCHEMA_NAME
    assert doc["schema_version"] == 1
    assert set(_committed_validator(cls).schema["required"]) == set(doc)


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=CLASS_IDS)
def test_rejects_unknown_field(cls: type[WireMessage]) -> None:
    doc = _set(_example_doc(cls), ("surprise",), 1)
    assert _class_rejects(cls, doc)
    assert _schema_rejects(cls, doc)


@pytest.mark.parametrize(
    ("cls", "path"),
    [
        (Detections, ("objects", 0)),
        (FaceRecord, ("embedding",)),
        (FaceRecord, ("quality",)),
        (CameraStatus, ("stats",)),
        (CameraHealth, ("scores",)),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "/".join(map(str, v)),
)
def test_rejects_unknown_field_in_nested_object(cls: type[WireMessage], path: tuple[str | int, ...]) -> None:
    doc = _example_doc(cls)
    doc = _set(doc, (*path, "surprise"), 1)
    assert _class_rejects(cls, doc)
    assert _schema_rejects(cls, doc)


DATETIME_FIELDS = [
    (FrameHeader, "captured_at"),
    (Detections, "captured_at"),
    (ObjectCrop, "captured_at"),
    (TrackSummary, "started_at"),
    (TrackSummary, "ended_at"),
    (PlateRead, "captured_at"),
    (FaceRecord, "captured_at"),
    (Alert, "occurred_at"),
    (CameraStatus, "observed_at"),
    (CameraHealth, "observed_at"),
    (DeviceCommand, "requested_at"),
    (LivePacketHeader, "captured_at"),
]


def test_datetime_table_covers_every_datetime_field() -> None:
    found = {
        (cls, name)
        for cls in MESSAGE_TYPES
        for name, prop in _committed_validator(cls).schema["properties"].items()
        if prop.get("format") == "date-time"
    }
    assert found == set(DATETIME_FIELDS)


@pytest.mark.parametrize(("cls", "field"), DATETIME_FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_rejects_naive_datetime(cls: type[WireMessage], field: str) -> None:
    python_input = cls.example().model_dump()
    python_input[field] = python_input[field].replace(tzinfo=None)
    with pytest.raises(ValidationError, match="timezone"):
        cls.model_validate(python_input)
    doc = _set(_example_doc(cls), (field,), "2024-05-01T08:00:00")
    assert _class_rejects(cls, doc)
    assert _schema_rejects(cls, doc)


@pytest.mark.parametrize(("cls", "field"), DATETIME_FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_other_offsets_are_stored_as_utc(cls: type[WireMessage], field: str) -> None:
    original = getattr(cls.example(), field)
    shifted = original.astimezone(timezone(timedelta(hours=8)))
    python_input = cls.example().model_dump()
    python_input[field] = shifted
    message = cls.model_validate(python_input)
    assert getattr(message, field) == original
    assert getattr(message, field).utcoffset() == timedelta(0)
    assert _example_doc(cls)[field] == json.loads(message.to_json())[field]
    assert json.loads(message.to_json())[field].endswith("Z")


def test_format_checker_checks_date_time() -> None:
    validator = Draft202012Validator(
        {"type": "string", "format": "date-time"}, format_checker=format_checker()
    )
    assert validator.is_valid("2024-05-01T08:00:00.25Z")
    assert not validator.is_valid("2024-02-30T08:00:00Z")
    assert not validator.is_valid("2024-05-01T08:00:00")
    assert not validator.is_valid("yesterday")


BAD_CAMERA_IDS = ["", "cam 01", "cam/01", "x" * 65, "摄像头1"]
CAMERA_CASES = [(cls, bad) for cls in MESSAGE_TYPES for bad in BAD_CAMERA_IDS]


@pytest.mark.parametrize(("cls", "camera_id"), CAMERA_CASES, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_rejects_bad_camera_id(cls: type[WireMessage], camera_id: str) -> None:
    doc = _set(_example_doc(cls), ("camera_id",), camera_id)
    assert _class_rejects(cls, doc)
    assert _schema_rejects(cls, doc)


@pytest.mark.parametrize("camera_id", ["34020000001320000001", "cam-01", "site_3.gate:2"])
def test_accepts_gb_and_free_camera_ids(camera_id: str) -> None:
    doc = _set(_example_doc(Detections), ("camera_id",), camera_id)
    assert Detections.from_json(json.dumps(doc).encode()).camera_id == camera_id
    assert not _schema_rejects(Detections, doc)


# (class, path, bad value, whether JSON Schema can express the rule too)
OUT_OF_RANGE = [
    (Detections, ("objects", 0, "score"), -0.01, True),
    (Detections, ("objects", 0, "score"), 1.01, True),
    (Detections, ("objects", 0, "class_id"), -1, True),
    (Detections, ("objects", 0, "box"), [10.0, 10.0, 5.0, 20.0], False),
    (Detections, ("objects", 0, "box"), [10.0, 10.0, 20.0], True),
    (Detections, ("objects", 0, "box"), [1200.0, 10.0, 1300.0, 20.0], False),
    (Detections, ("objects", 1, "track_id"), "34020000001320000001:9c41e2d07a5b:17", False),
    (Detections, ("frame_width",), 0, True),
    (Detections, ("sequence",), -1, True),
    (Detections, ("sequence",), "12", True),
    (Detections, ("sequence",), 12.5, True),
    (FrameHeader, ("width",), 16385, True),
    (FrameHeader, ("keyframe",), 1, True),
    (FrameHeader, ("source_codec",), "H.264", True),
    (FrameHeader, ("content_type",), "image/png", True),
    (FrameHeader, ("schema_version",), 2, True),
    (FrameHeader, ("schema_version",), True, True),
    (FrameHeader, ("type",), "detections", True),
    (ObjectCrop, ("quality",), 1.5, True),
    (ObjectCrop, ("score",), -0.5, True),
    (ObjectCrop, ("crop_key",), "/abs/path.jpg", True),
    (TrackSummary, ("mean_score",), 1.2, True),
    (TrackSummary, ("colour",), "purple", True),
    (TrackSummary, ("closed_reason",), "crashed", True),
    (TrackSummary, ("vehicle_type",), "spaceship", True),
    (TrackSummary, ("path",), [], True),
    (TrackSummary, ("path", 1, 0), 0.5, False),
    (TrackSummary, ("path", 2, 0), 0.1, False),
    (TrackSummary, ("ended_at",), "2024-05-01T07:00:00Z", False),
    (PlateRead, ("confidence",), -0.1, True),
    (PlateRead, ("char_confidences", 0), 1.1, True),
    (PlateRead, ("char_confidences",), [0.9, 0.9], False),
    (PlateRead, ("text",), "chuan a 1", True),
    (PlateRead, ("region",), "eu", True),
    (PlateRead, ("votes",), 0, True),
    (FaceRecord, ("quality", "score"), 2.0, True),
    (FaceRecord, ("quality", "sharpness"), -0.2, True),
    (FaceRecord, ("embedding", "dimension"), 127, False),
    (FaceRecord, ("embedding", "values", 0), 0.9, False),
    (FaceRecord, ("landmarks",), [[1.0, 2.0]] * 4, True),
    (Alert, ("alert_type",), "fire", True),
    (Alert, ("severity",), "apocalyptic", True),
    (Alert, ("message",), "", True),
    (Alert, ("details",), {"Bad Key": 1}, True),
    (Alert, ("details",), {"nested": {"a": 1}}, True),
    (CameraStatus, ("event",), "exploded", True),
    (CameraStatus, ("stats",), None, False),
    (CameraStatus, ("stats", "fps_in"), -1.0, True),
    (CameraStatus, ("stats", "rtp_packets_lost"), -3, True),
    (CameraStatus, ("reason",), "timeout", False),
    (CameraHealth, ("scores", "blur"), 1.5, True),
    (CameraHealth, ("verdict",), "degraded", False),
    (CameraHealth, ("problems",), ["blur", "blur"], False),
    (CameraHealth, ("problems",), ["freeze"], False),
    (CameraHealth, ("fault",), None, False),
    (CameraHealth, ("fault",), "smudge", True),
    (CameraHealth, ("ended_at",), "2024-05-01T07:00:00Z", False),
    (CameraHealth, ("event",), "summary", False),
    (CameraHealth, ("frames_sampled",), 0, True),
]


@pytest.mark.parametrize(
    ("cls", "path", "value", "schema_says_too"),
    OUT_OF_RANGE,
    ids=[f"{c.__name__}-{'/'.join(map(str, p))}={v!r}"[:80] for c, p, v, _ in OUT_OF_RANGE],
)
def test_rejects_out_of_range(
    cls: type[WireMessage], path: tuple[str | int, ...], value: Any, schema_says_too: bool
) -> None:
    doc = _set(_example_doc(cls), path, value)
    assert _class_rejects(cls, doc)
    if schema_says_too:
        assert _schema_rejects(cls, doc)


@pytest.mark.parametrize(
    ("cls", "path"),
    [
        (FrameHeader, ("pts",)),
        (Detections, ("objects", 0, "score")),
        (TrackSummary, ("path", 0, 1)),
        (CameraHealth, ("scores", "blur")),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "/".join(map(str, v)),
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=repr)
def test_rejects_non_finite_numbers(
    cls: type[WireMessage], path: tuple[str | int, ...], value: float
) -> None:
    text = json.dumps(_set(_example_doc(cls), path, value))
    assert "NaN" in text or "Infinity" in text
    with pytest.raises(ValidationError, match="finite"):
        cls.from_json(text)


def test_camera_status_offline_needs_reason() -> None:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="needs a reason"):
        CameraStatus(camera_id="cam-01", observed_at=at, event="offline")
    event = CameraStatus(camera_id="cam-01", observed_at=at, event="offline", reason="auth", detail="401")
    assert CameraStatus.from_json(event.to_json()) == event


def test_messages_are_frozen() -> None:
    message = Detections.example()
    with pytest.raises(ValidationError):
        message.sequence = 5  # type: ignore[misc]


# --- idempotency keys ------------------------------------------------------------------------

KEYS = [
    (FrameHeader, "34020000001320000001/5f0c2a9e41b7/1200"),
    (Detections, "34020000001320000001/5f0c2a9e41b7/1200"),
    (ObjectCrop, "34020000001320000001:9c41e2d07a5b:17.1200"),
    (TrackSummary, "34020000001320000001:9c41e2d07a5b:17/0"),
    (PlateRead, "34020000001320000001:9c41e2d07a5b:17/plate"),
    (FaceRecord, "34020000001320000001:9c41e2d07a5b:21.face.1210"),
    (Alert, "0c8d7f4e2a1b5c6d9e0f1a2b3c4d5e6f"),
    (CameraStatus, "34020000001320000001/status/stats/2024-05-01T08:01:00Z"),
    (CameraHealth, "34020000001320000001/health/fault_ended/blur/2024-05-01T08:00:12Z"),
    (DeviceCommand, "cmd-0c8d7f4e2a1b"),
    (LivePacketHeader, "34020000001320000001/5f0c2a9e41b7-1/48.0"),
]

# (class, a field that is NOT part of the key, a new value for it)
NON_KEY_CHANGES = [
    (FrameHeader, "pts", 99.5),
    (Detections, "objects", []),
    (ObjectCrop, "quality", 0.1),
    (TrackSummary, "closed_reason", "shutdown"),
    (PlateRead, "revision", 7),
    (FaceRecord, "crop_key", "faces/other.jpg"),
    (Alert, "message", "changed"),
    (CameraStatus, "detail", "changed"),
    (CameraHealth, "frames_sampled", 3),
    (DeviceCommand, "speed", 7),
    (LivePacketHeader, "pts", 48.5),
]


def test_live_packet_headers_round_trip() -> None:
    header = LivePacketHeader.example()
    assert LivePacketHeader.from_headers(header.to_headers()) == header
    assert header.extradata_bytes().startswith(b"\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="number"):
        LivePacketHeader.from_headers([(n, b"x" if n == "tubeline-pts" else v) for n, v in header.to_headers()])


def test_key_tables_cover_every_class() -> None:
    assert {c for c, _ in KEYS} == set(MESSAGE_TYPES)
    assert {c for c, _, _ in NON_KEY_CHANGES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize(("cls", "key"), KEYS, ids=lambda v: getattr(v, "__name__", v))
def test_idempotency_key(cls: type[WireMessage], key: str) -> None:
    assert cls.example().idempotency_key() == key
    assert not re.search(r"\s", key)


@pytest.mark.parametrize(
    ("cls", "field", "value"), NON_KEY_CHANGES, ids=lambda v: getattr(v, "__name__", str(v))
)
def test_idempotency_key_ignores_unstable_fields(cls: type[WireMessage], field: str, value: Any) -> None:
    changed = cls.from_json(json.dumps(_set(_example_doc(cls), (field,), value)).encode())
    assert changed != cls.example()
    assert changed.idempotency_key() == cls.example().idempotency_key()


def test_track_segments_have_distinct_keys() -> None:
    later = TrackSummary.from_json(json.dumps(_set(_example_doc(TrackSummary), ("segment",), 1)).encode())
    assert later.idempotency_key() != TrackSummary.example().idempotency_key()


def test_id_helpers() -> None:
    assert make_track_id("cam-01", "9c41e2d07a5b", 17) == "cam-01:9c41e2d07a5b:17"
    with pytest.raises(ValueError, match="camera"):
        make_track_id("cam 01", "s", 1)
    with pytest.raises(ValueError, match="session"):
        make_track_id("cam-01", "a/b", 1)
    assert stable_id("rule-7", "cam-01", 3) == stable_id("rule-7", "cam-01", 3)
    assert stable_id("rule-7", "cam-01", 3) != stable_id("rule-7", "cam-01", 4)
    assert re.fullmatch(r"[0-9a-f]{32}", stable_id("x"))


# --- frame headers ---------------------------------------------------------------------------

FRAME_VARIANTS = [
    {},
    {"keyframe": True},
    {"pts": -0.04},
    {"pts": 1.5e9},
    {"pts": 1 / 3},
    {"pts": 5e-324},
    {"captured_at": datetime(2024, 5, 1, 8, tzinfo=UTC)},
    {"captured_at": datetime(2024, 5, 1, 16, 0, 0, 1, tzinfo=timezone(timedelta(hours=8)))},
    {"camera_id": "cam-01", "source_codec": "hevc", "width": 1920, "height": 1080},
]


@pytest.mark.parametrize("changes", FRAME_VARIANTS, ids=lambda c: ",".join(c) or "example")
def test_frame_headers_round_trip(changes: dict[str, Any]) -> None:
    header = FrameHeader.example().model_copy(update=changes)
    header = FrameHeader.model_validate(header.model_dump())  # re-validate the update
    headers = header.to_headers()
    assert all(isinstance(name, str) and isinstance(value, bytes) for name, value in headers)
    assert [name for name, _ in headers] == [
        "tubeline-" + field.replace("_", "-") for field in FrameHeader.model_fields
    ]
    parsed = FrameHeader.from_headers(headers)
    assert parsed == header
    assert parsed.to_headers() == headers
    foreign = [("traceparent", b"00-abc"), *reversed(headers), ("tubeline-dlq-reason", b"x")]
    assert FrameHeader.from_headers(foreign) == header


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("tubeline-sequence", b"twelve", "integer"),
        ("tubeline-sequence", b"-1", "greater than or equal"),
        ("tubeline-pts", b"nan", "finite"),
        ("tubeline-keyframe", b"1", "true"),
        ("tubeline-captured-at", b"2024-05-01T08:00:00", "timezone"),
        ("tubeline-camera-id", b"cam 01", "pattern"),
        ("tubeline-width", b"\xff\xfe", "UTF-8"),
    ],
)
def test_frame_headers_reject_bad_values(name: str, value: bytes, error: str) -> None:
    headers = [(n, value if n == name else v) for n, v in FrameHeader.example().to_headers()]
    with pytest.raises(ValueError, match=error):
        FrameHeader.from_headers(headers)


def test_frame_headers_reject_missing_and_repeated() -> None:
    headers = FrameHeader.example().to_headers()
    with pytest.raises(ValueError, match="missing: tubeline-sequence"):
        FrameHeader.from_headers([h for h in headers if h[0] != "tubeline-sequence"])
    with pytest.raises(ValueError, match="more than once"):
        FrameHeader.from_headers([*headers, ("tubeline-width", b"640")])


# --- committed files and topics --------------------------------------------------------------


def test_committed_schema_files_are_current() -> None:
    assert generate.stale_files() == []
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(
        c.schema_file_name() for c in MESSAGE_TYPES
    )


def test_generate_check_detects_stale_files(tmp_path: Path) -> None:
    assert generate.main(["--check", "--dir", str(tmp_path)]) == 1
    assert generate.main(["--dir", str(tmp_path)]) == 0
    assert generate.main(["--check", "--dir", str(tmp_path)]) == 0
    edited = tmp_path / "detections.v1.json"
    edited.write_text(
        edited.read_text(encoding="utf-8").replace('"maximum": 1.0', '"maximum": 2.0'), encoding="utf-8"
    )
    assert generate.stale_files(tmp_path) == ["detections.v1.json"]
    (tmp_path / "leftover.v1.json").write_text("{}", encoding="utf-8")
    assert generate.stale_files(tmp_path) == ["detections.v1.json", "leftover.v1.json"]
    assert generate.main(["--check", "--dir", str(tmp_path)]) == 1


def test_generate_check_entry_point_passes_on_the_repository() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "schemas.generate", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=CLASS_IDS)
def test_every_property_is_titled_and_described(cls: type[WireMessage]) -> None:
    schema = _committed_validator(cls).schema
    objects = [schema, *schema.get("$defs", {}).values()]
    missing = [
        f"{obj.get('title')}.{name}"
        for obj in objects
        for name, prop in obj.get("properties", {}).items()
        if not prop.get("title") or not prop.get("description")
    ]
    assert missing == []


def test_topics_are_exactly_the_contract() -> None:
    assert {spec.name: spec.message for spec in topics.all_topics()} == EXPECTED_TOPICS


@pytest.mark.parametrize("spec", topics.all_topics(), ids=lambda s: s.name)
def test_topic_maps_to_class_with_schema_file(spec: topics.TopicSpec) -> None:
    assert spec.message in MESSAGE_TYPES
    assert (SCHEMA_DIR / spec.message.schema_file_name()).is_file()
    assert re.fullmatch(r"tubeline\.[a-z-]+\.v1", spec.name)
    assert spec.key_field == "camera_id"
    assert spec.message.model_fields["camera_id"].is_required()
    assert spec.partitions >= 1
    assert spec.retention_ms >= (60_000 if spec.value_format == "packet" else 3_600_000)  # live: minutes
    assert "murmur2" in spec.partitioning
    assert topics.get_topic(spec.name) is spec
    assert topics.topic_for(spec.message) is spec
    example = spec.message.example()
    assert spec.key_for(example) == example.camera_id.encode("utf-8")  # type: ignore[attr-defined]


def test_topic_names_with_prefix() -> None:
    assert topics.topic_name(topics.FRAMES) == "tubeline.frames.v1"
    assert topics.topic_name("tubeline.frames.v1", "t-3f2a") == "t-3f2a.tubeline.frames.v1"
    assert topics.ALERTS.with_prefix("run_1.a") == "run_1.a.tubeline.alerts.v1"
    for bad in ("has space", "ends.", ".starts", "x" * 240):
        with pytest.raises(ValueError, match="prefix|longer"):
            topics.topic_name(topics.FRAMES, bad)
    with pytest.raises(KeyError):
        topics.topic_name("tubeline.nothing.v1")
    with pytest.raises(TypeError):
        topics.DETECTIONS.key_for(Alert.example())


def test_schemas_import_nothing_from_the_rest_of_the_project() -> None:
    code = (
        "import json, sys, schemas, schemas.topics, schemas.generate, schemas.validation;"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert loaded.isdisjoint({"pipeline", "models", "workers", "numpy"})
    assert "pydantic" in loaded
