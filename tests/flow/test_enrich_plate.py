"""The plate worker over the in-memory bus and a local store, on real vehicle crops (the cars of the plates
video as stills): one read per track revised only when better, revisions that continue across a restart,
identical output on redelivery, one hotlist alert per track and entry, duplicate tracks folded together,
skip policies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.enrich import PlateWorkerConfig
from pipeline.store.local import LocalStore
from schemas.ids import stable_id
from tests.fixtures.enrich.make_videos import TESTDATA, vehicle_still
from tests.fixtures.enrich.objects import (
    BLUE,
    CAM,
    RED,
    T0,
    alerts,
    by_track,
    make_worker,
    plates,
    publish,
    put_crop,
    run,
)


@pytest.fixture(scope="module")
def recognizer():  # noqa: ANN201
    from models.zoo import ModelZoo

    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}")
    return ModelZoo(TubelineConfig().models).plate_recognizer()


@pytest.fixture(scope="module")
def stills() -> dict[tuple[str, int], np.ndarray]:
    return {(name, width): vehicle_still(name, width)[0]
            for name in ("red", "blue-latin") for width in (380, 460, 540)}


def test_one_read_per_track_revised_only_when_better(recognizer, stills, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store = MemoryBus(), LocalStore(tmp_path)
    crops = [put_crop(store, stills["red", 380], RED, 1), put_crop(store, stills["blue-latin", 380], BLUE, 2),
             put_crop(store, stills["red", 460], RED, 3), put_crop(store, stills["blue-latin", 460], BLUE, 4),
             put_crop(store, stills["red", 540], RED, 5), put_crop(store, stills["red", 460], "cam-p:s1:3", 6,
                                                                  class_name="person")]
    publish(bus, crops)
    worker = run(make_worker(bus, store, recognizer), len(crops))
    assert worker.stats["skipped_class"] == 1 and worker.stats["reads"] == 5
    tracks = by_track(plates(bus))
    assert set(tracks) == {RED, BLUE}
    for track, expected in ((RED, "湘A0PQ76"), (BLUE, "AB451EJ")):
        reads = tracks[track]
        assert [r.revision for r in reads] == list(range(len(reads)))
        assert all(r.text == expected for r in reads)
        assert len({r.read_id for r in reads}) == len(reads)
        confidences = [r.confidence for r in reads]
        assert confidences == sorted(confidences) and len(set(confidences)) == len(confidences)
        # a later agreeing read is published only when it raises the confidence by plate.min_improvement; with
        # ranked posteriors near 1 the last agreeing read may not, so the last revision has at most every vote
        assert reads[0].votes == 1 and reads[-1].votes <= len(worker.tracks.peek(track).reads)
        assert store.get(reads[-1].crop_key)[:3] == b"\xff\xd8\xff"
        assert reads[-1].crop_key.startswith(f"plates/{CAM}/2026-11-25/{track}/")
    assert tracks[RED][-1].plate_kind == "blue" and tracks[RED][-1].region == "cn"
    assert tracks[BLUE][-1].plate_kind == "white" and tracks[BLUE][-1].region == "latin"


def test_revisions_continue_after_a_restart(recognizer, stills, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store = MemoryBus(), LocalStore(tmp_path)
    publish(bus, [put_crop(store, stills["red", 380], RED, 1), put_crop(store, stills["red", 460], RED, 2)])
    every = PlateWorkerConfig(min_improvement=0.0)  # ranked posteriors saturate: publish every agreeing read
    run(make_worker(bus, store, recognizer, settings=every), 2)
    before = plates(bus)
    assert store.exists(f"state/plate/{CAM}/{RED}.json")
    publish(bus, [put_crop(store, stills["red", 540], RED, 3)])
    restarted = run(make_worker(bus, store, recognizer, settings=every), 1)  # a new process: nothing in memory
    after = plates(bus)[len(before):]
    assert restarted.stats["objects"] == 1
    assert [r.revision for r in after] == [before[-1].revision + 1]  # not 0 again
    assert after[0].votes == 3 and after[0].confidence >= before[-1].confidence


def test_redelivered_batch_gives_identical_reads_or_nothing_new(recognizer, stills, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store = MemoryBus(), LocalStore(tmp_path)
    publish(bus, [put_crop(store, stills["red", 380], RED, 1), put_crop(store, stills["blue-latin", 460], BLUE, 2)])
    # 1. killed after its outputs were flushed, before its state was saved and its offsets committed
    first = make_worker(bus, store, recognizer)
    first.setup()
    batch = first.consumer.poll(timeout=1.0, max_records=10)  # type: ignore[union-attr]
    first.handle(batch)
    first.producer.flush()  # type: ignore[union-attr]
    first.teardown()
    once = plates(bus)
    run(make_worker(bus, store, recognizer), 2)
    twice = plates(bus)
    assert len(once) == 2 and [r.to_json() for r in twice] == [r.to_json() for r in once] * 2
    assert len(alerts(bus)) == 4  # each of the two alerts again, with the same alert ID
    assert len({a.alert_id for a in alerts(bus)}) == 2
    # 2. killed after the state was saved, before the commit: the crops are recognised, nothing new goes out
    publish(bus, [put_crop(store, stills["red", 540], RED, 3)])
    third = make_worker(bus, store, recognizer)
    third.setup()
    third.handle(third.consumer.poll(timeout=1.0, max_records=10))  # type: ignore[union-attr]
    third.producer.flush()  # type: ignore[union-attr]
    third.persist()
    third.teardown()
    count = len(plates(bus))
    fourth = run(make_worker(bus, store, recognizer), 1)
    assert fourth.stats["redelivered"] == 1 and len(plates(bus)) == count


def test_hotlist_alerts_once_per_track_exact_and_confusion(recognizer, stills, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store = MemoryBus(), LocalStore(tmp_path)
    crops = [put_crop(store, stills[name, width], track, seq)
             for seq, (name, width, track) in enumerate(
                 [("red", 380, RED), ("blue-latin", 380, BLUE), ("red", 540, RED), ("blue-latin", 540, BLUE)])]
    publish(bus, crops)
    every = PlateWorkerConfig(min_improvement=0.0)  # publish every agreeing re-read, however sure the first was
    run(make_worker(bus, store, recognizer, settings=every), len(crops))
    assert len(by_track(plates(bus))[RED]) >= 2  # re-reads happened ...
    raised = {a.track_id: a for a in alerts(bus)}
    assert len(alerts(bus)) == 2  # ... and raised no second alert
    red, blue = raised[RED], raised[BLUE]
    assert red.alert_id == stable_id("plate_hotlist", "stolen", "湘A0PQ76", RED)
    assert (red.alert_type, red.severity, red.rule_id) == ("plate_hotlist", "critical", "hotlist:stolen")
    assert red.details["match_kind"] == "exact" and red.details["reason"] == "reported stolen"
    assert (blue.details["match_kind"], blue.details["matched"], blue.details["plate"]) == (
        "confusion", "AB45IEJ", "AB451EJ")
    assert blue.severity == "high" and blue.details["note"] == "case 2"
    for alert in (red, blue):
        assert all(store.exists(key) for key in alert.evidence_keys) and len(alert.evidence_keys) == 2


def test_a_duplicate_track_of_the_same_vehicle_joins_the_first(recognizer, stills, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store = MemoryBus(), LocalStore(tmp_path)
    dup, later = "cam-p:s1:9", "cam-p:s1:10"
    publish(bus, [put_crop(store, stills["red", 380], RED, 1), put_crop(store, stills["red", 540], dup, 2),
                  put_crop(store, stills["red", 460], later, 3, at=T0 + timedelta(seconds=90))])
    worker = run(make_worker(bus, store, recognizer, clock=lambda: T0 + timedelta(seconds=95)), 3)
    tracks = by_track(plates(bus))
    assert dup not in tracks and worker.stats["merged_tracks"] == 1
    # the duplicate's read joined the first track's vote (published only if it raised the confidence enough)
    assert len(worker.tracks.peek(RED).reads) == 2 and tracks[RED][-1].votes <= 2
    assert later in tracks  # the same plate 90 s later is another passage
    # the duplicate track keeps pointing at the first one after a restart
    publish(bus, [put_crop(store, stills["red", 460], dup, 4)])
    run(make_worker(bus, store, recognizer, clock=lambda: T0 + timedelta(seconds=95)), 1)
    assert dup not in by_track(plates(bus))


def test_stale_objects_are_skipped_and_counted(recognizer, stills, tmp_path: Path) -> None:  # noqa: ANN001
    bus, store = MemoryBus(), LocalStore(tmp_path)
    publish(bus, [put_crop(store, stills["red", 460], RED, 1), put_crop(store, stills["red", 460], BLUE, 2,
                                                                      at=T0 + timedelta(seconds=100))])
    worker = run(make_worker(bus, store, recognizer, settings=PlateWorkerConfig(max_lag_s=60),
                             clock=lambda: T0 + timedelta(seconds=120)), 2)
    assert worker.stats["skipped_stale"] == 1 and set(by_track(plates(bus))) == {BLUE}
