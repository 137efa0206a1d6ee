"""Unit tests of ingest's small parts: sampler, bounded queue, resize, backoff, URLs, records, status mapping."""

from __future__ import annotations

import random
import threading
import time

import pytest
from pydantic import SecretStr, ValidationError

from pipeline.cameras.registry import normalise_record, parse_import, validate_records
from pipeline.cameras.urls import redact_url, split_credentials, with_credentials
from pipeline.config.ingest import (
    BackoffConfig,
    CameraSpec,
    Gb28181Config,
    IngestConfig,
    ResizeConfig,
    camera_to_json,
)
from workers.ingest.camera import backoff_delay
from workers.ingest.publish import DropQueue, Sampler, target_size
from workers.ingest.status import wire_reason


@pytest.mark.parametrize(
    ("fps_in", "fps_out", "seconds", "expected"),
    [(25, 5, 10, 50), (25, 25, 4, 100), (10, 5, 10, 50), (30, 7, 10, 70), (25, 100, 2, 50), (12.5, 5, 8, 40)],
)
def test_sampler_keeps_the_analysis_rate(fps_in: float, fps_out: float, seconds: int, expected: int) -> None:
    sampler = Sampler(fps_out)
    kept = sum(sampler.take(i / fps_in) for i in range(int(fps_in * seconds)))
    assert kept == expected


def test_sampler_resynchronises_after_a_gap_and_a_pts_reset() -> None:
    sampler = Sampler(5)
    assert [sampler.take(t) for t in (0.0, 0.04, 0.2)] == [True, False, True]
    assert sampler.take(10.0)  # 10 s gap: take at once
    assert not sampler.take(10.04)
    assert sampler.take(10.2)
    assert sampler.take(0.0)  # pts went back (new stream): start over
    assert not sampler.take(0.04)


def test_drop_queue_drops_oldest_and_counts() -> None:
    q: DropQueue[int] = DropQueue(3, "drop_oldest")
    for i in range(10):
        assert q.put(i)
    assert len(q) == 3 and q.dropped == 7 and q.high_water == 3
    assert [q.get(0.01) for _ in range(4)] == [7, 8, 9, None]


def test_drop_queue_block_waits_for_room_and_honours_stop() -> None:
    q: DropQueue[int] = DropQueue(1, "block")
    q.put(1)
    stop = threading.Event()
    timer = threading.Timer(0.2, lambda: q.get(0.01))
    timer.start()
    t0 = time.monotonic()
    assert q.put(2, stop)
    assert time.monotonic() - t0 >= 0.15 and q.dropped == 0
    threading.Timer(0.2, stop.set).start()
    assert not q.put(3, stop)
    q.close()
    assert q.get(0.01) == 2 and q.get(0.01) is None and not q.put(4)


@pytest.mark.parametrize(
    ("size", "policy", "expected"),
    [
        ((1920, 1080), ResizeConfig(), (1280, 720)),
        ((768, 576), ResizeConfig(), (768, 576)),
        ((768, 576), ResizeConfig(max_width=384, max_height=384), (384, 288)),
        ((1080, 1920), ResizeConfig(), (404, 720)),
        ((1920, 1080), ResizeConfig(mode="none"), (1920, 1080)),
        ((1920, 1080), ResizeConfig(mode="exact", max_width=640, max_height=640), (640, 640)),
    ],
)
def test_target_size(size: tuple[int, int], policy: ResizeConfig, expected: tuple[int, int]) -> None:
    assert target_size(*size, policy) == expected


def test_backoff_is_capped_exponential_with_jitter() -> None:
    cfg = BackoffConfig(initial_s=1, max_s=30)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (4, 16), (5, 30), (50, 30)]:
        delays = [backoff_delay(attempt, cfg, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling * 0.3  # jittered, not constant


@pytest.mark.parametrize(
    ("url", "clean", "user", "password"),
    [
        ("rtsp://admin:p%40ss@10.0.0.5:554/a", "rtsp://10.0.0.5:554/a", "admin", "p@ss"),
        ("rtsp://admin@h/a", "rtsp://h/a", "admin", None),
        ("rtsp://h:554/a?x=1", "rtsp://h:554/a?x=1", None, None),
    ],
)
def test_split_credentials(url: str, clean: str, user: str | None, password: str | None) -> None:
    assert split_credentials(url) == (clean, user, password)
    assert "p@ss" not in redact_url(url) and "p%40ss" not in redact_url(url)


def test_with_credentials_quotes_and_redacts() -> None:
    url = with_credentials("rtsp://h:554/s", "ad min", SecretStr("p@:/ss"))
    assert url == "rtsp://ad%20min:p%40%3A%2Fss@h:554/s"
    assert redact_url(url) == "rtsp://***@h:554/s"


def test_camera_spec_validation_and_secret_handling() -> None:
    cam = CameraSpec(id="c1", kind="rtsp", url="rtsp://h/s", username="u", password=SecretStr("pw"))
    assert "pw" not in repr(cam) and "pw" not in str(camera_to_json(cam))
    assert camera_to_json(cam, reveal_secrets=True)["password"] == "pw"
    assert CameraSpec.model_validate(camera_to_json(cam, reveal_secrets=True)) == cam
    bad = [
        {"id": "c", "kind": "rtsp", "url": "rtsp://u:p@h/s"},
        {"id": "c", "kind": "rtsp", "url": "http://h/s"},
        {"id": "c", "kind": "file"},
        {"id": "../x", "kind": "file", "url": "/a"},
        {"id": "c", "kind": "gb28181"},
        {"id": "34020000001320000001", "kind": "gb28181"},
        {"id": "c", "kind": "file", "url": "/a", "latitude": 91},
        {"id": "c", "kind": "file", "url": "/a", "colour": "red"},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            CameraSpec.model_validate(data)
    CameraSpec(id="34020000001320000001", kind="gb28181", gb_device_id="34020000001180000001")


def test_ingest_config_cross_checks() -> None:
    with pytest.raises(ValidationError):
        IngestConfig(shard_index=2, shard_count=2)
    with pytest.raises(ValidationError):
        Gb28181Config(server_id="34020000002000000001", domain="3402000001")
    with pytest.raises(ValidationError):
        BackoffConfig(initial_s=10, max_s=5)


def test_import_csv_moves_url_credentials_and_reports_rows() -> None:
    text = (
        "id,kind,url,name,latitude,tags,enabled\n"
        "a,rtsp,rtsp://u:s3cret@h/1,A,31.5,x;y,yes\n"
        "b,rtsp,ftp://h/2,B,,,\n"
        "a,file,/v.avi,dup,,,\n"
    )
    cams, problems = validate_records(parse_import(text, "csv"))
    assert [c.id for c in cams] == ["a"]
    assert cams[0].url == "rtsp://h/1" and cams[0].username == "u"
    assert cams[0].password is not None and cams[0].password.get_secret_value() == "s3cret"
    assert cams[0].tags == ["x", "y"] and cams[0].latitude == 31.5 and cams[0].enabled
    assert len(problems) == 2 and problems[0].startswith("row 3:") and "duplicate" in problems[1]
    assert all("s3cret" not in p for p in problems)


def test_import_yaml_forms() -> None:
    doc = "cameras:\n  - {id: y1, kind: file, url: /a.mp4, loop: true}\n"
    cams, problems = validate_records(parse_import(doc, "yaml"))
    assert not problems and cams[0].loop
    with pytest.raises(ValueError, match="list"):
        list(parse_import("just a string", "yaml"))


def test_normalise_record_drops_empty_cells() -> None:
    assert normalise_record({"id": " a ", "name": "", "analysis_fps": "2.5"}) == {"id": "a", "analysis_fps": 2.5}


@pytest.mark.parametrize(
    ("reason", "wire"),
    [("timeout", "timeout"), ("unreachable", "network"), ("auth", "auth"), ("eof", "eof"),
     ("protocol", "protocol"), ("error", "other"), (None, None)],
)
def test_wire_reason(reason: str | None, wire: str | None) -> None:
    assert wire_reason(reason) == wire
