"""Plates end to end on the real Kafka-protocol broker and S3 server: a video of real cars carrying the
plate crops of the shared test data (tests/fixtures/enrich/make_videos.py, docs/enrich.md) → ingest →
detect → plate worker gives one plate read per vehicle with the right text, and hotlist alerts for a
listed plate (exact) and for a one-character OCR confusion of a listed plate."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline.bus import open_bus
from pipeline.config import TubelineConfig
from pipeline.hotlists import Hotlist, HotlistRepository
from pipeline.store import open_store
from schemas.alerts import Alert
from schemas.ids import stable_id
from schemas.plates import PlateRead
from schemas.topics import ALERTS, PLATES
from tests.contract.test_bus_contract import drain
from tests.fixtures.enrich.harness import run_pipeline
from tests.fixtures.enrich.make_videos import PLATE_FRAMES, TESTDATA, make_plate_video
from workers.plate.worker import PlateWorker

pytestmark = pytest.mark.integration

CAMERA = "34020000001320000042"
STOLEN = Hotlist.model_validate({
    "name": "stolen", "reason": "reported stolen", "owner": "traffic desk", "severity": "critical",
    "entries": [{"plate": "津B6H920", "note": "case 2026-118"}, {"plate": "粤B12345", "note": "case 2026-120"}],
})
WANTED = Hotlist.model_validate({
    "name": "wanted", "reason": "warrant", "owner": "unit 3",
    # the blue car carries AB451EJ: listed with I for 1, an OCR confusion
    "entries": [{"plate": "AB45IEJ", "note": "warrant 77"}],
})


def _config(base: TubelineConfig) -> TubelineConfig:
    data = base.model_dump(mode="python")
    for key in ("access_key", "secret_key"):
        value = data["store"]["s3"][key]
        data["store"]["s3"][key] = value.get_secret_value() if value is not None else None
    # more than one crop per vehicle track, so the vote has something to combine (docs/enrich.md)
    data["detect"].update(commit_interval_s=0.5, crop_quality_gain=1.0, max_crops_per_track=5)
    return TubelineConfig.model_validate(data)


def _read_all(bus, topic: str, parse):  # noqa: ANN001, ANN202
    with bus.consumer([topic], f"verify-{time.monotonic_ns()}") as consumer:
        first = consumer.poll(timeout=15.0)  # includes joining the group on a real broker
        return [parse(m.value) for m in first + drain(consumer, 2.0)]


def test_plates_end_to_end_on_kafka_and_s3(real_stack, unique_name: str, tmp_path: Path) -> None:  # noqa: ANN001
    from models.zoo import ModelZoo

    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}")
    truths = make_plate_video(tmp_path / "plates.mp4")
    config = _config(real_stack.with_prefix(unique_name, bucket=unique_name))
    bus, store = open_bus(config), open_store(config)
    for hotlist in (STOLEN, WANTED):
        HotlistRepository(store).put(hotlist)
    zoo = ModelZoo(config.models)
    recognizer = zoo.plate_recognizer()
    run = run_pipeline(
        config, bus, store, tmp_path / "plates.mp4", CAMERA,
        [lambda stop: PlateWorker(config, bus=bus, store=store, stop_event=stop, recognizer=recognizer)],
        detector=zoo.detector(),
    )
    plate = run.downstream[0]
    assert run.ingest.final_totals[CAMERA].frames_out == PLATE_FRAMES
    assert plate.dead_letter.count == 0 and plate.stats["reads"] >= 8, dict(plate.stats)

    reads = _read_all(bus, PLATES.name, PlateRead.from_json)
    payloads: dict[str, set[bytes]] = defaultdict(set)
    tracks: dict[str, list[PlateRead]] = defaultdict(list)
    for read in reads:
        payloads[read.read_id].add(read.to_json())
        tracks[read.track_id].append(read)
    assert all(len(p) == 1 for p in payloads.values()), "a redelivered read changed content"
    final = {}
    for track_id, track_reads in tracks.items():
        revisions = sorted({r.revision for r in track_reads})
        assert revisions == list(range(len(revisions))), f"{track_id}: revisions {revisions}"
        final[track_id] = max(track_reads, key=lambda r: r.revision)
    texts = sorted(r.text for r in final.values())
    assert texts == sorted(t.truth for t in truths), f"one read per vehicle expected, got {texts}; {dict(plate.stats)}"
    for read in final.values():
        assert read.camera_id == CAMERA and store.exists(read.crop_key), read.crop_key
    track_of = {r.text: r.track_id for r in final.values()}

    alerts = {a.alert_id: a for a in _read_all(bus, ALERTS.name, Alert.from_json)}
    by_text = {a.details["plate"]: a for a in alerts.values()}
    # 湘A0PQ76 and 皖KD01833 are on no list: no alert for them
    assert len(alerts) == 2 and set(by_text) == {"津B6H920", "AB451EJ"}, [a.message for a in alerts.values()]
    exact, confused = by_text["津B6H920"], by_text["AB451EJ"]
    assert exact.alert_id == stable_id("plate_hotlist", "stolen", "津B6H920", track_of["津B6H920"])
    assert (exact.details["match_kind"], exact.severity, exact.rule_id) == ("exact", "critical", "hotlist:stolen")
    assert (confused.details["match_kind"], confused.details["matched"]) == ("confusion", "AB45IEJ")
    assert confused.track_id == track_of["AB451EJ"] and confused.rule_id == "hotlist:wanted"
    for alert in alerts.values():
        assert alert.alert_type == "plate_hotlist" and alert.camera_id == CAMERA
        assert all(store.exists(key) for key in alert.evidence_keys)
