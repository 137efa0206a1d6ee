"""Faces end to end over the in-memory bus: a video of the face test images walking across a real scene →
ingest → detect → face worker gives one face record per person track, and the embeddings of the same person
are closer than the calibrated threshold while different people are farther (docs/enrich.md)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.enrich import FaceWorkerConfig
from pipeline.store.local import LocalStore
from schemas.detections import Detections
from schemas.faces import FaceRecord
from schemas.topics import DETECTIONS, FACES
from tests.contract.test_bus_contract import drain
from tests.fixtures.enrich.harness import run_pipeline
from tests.fixtures.enrich.make_videos import FACE_FRAMES, FPS, TESTDATA, Truth, make_face_video
from workers.face.worker import FaceWorker

CAMERA = "cam-faces"


@pytest.fixture(scope="module")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Truth]]:
    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}")
    path = tmp_path_factory.mktemp("enrich") / "faces.mp4"
    return path, make_face_video(path)


def actor_at(truths: list[Truth], frame: float) -> Truth | None:
    return next((t for t in truths if t.first - 1 <= frame <= t.last + 1), None)


def test_one_face_record_per_person_and_identities_separate(face_video: tuple[Path, list[Truth]],
                                                            tmp_path: Path) -> None:
    from models.zoo import ModelZoo

    video, truths = face_video
    config = TubelineConfig()
    bus, store = MemoryBus(default_partitions=3), LocalStore(tmp_path / "store")
    analyzer = ModelZoo(config.models).face_analyzer()
    run = run_pipeline(config, bus, store, video, CAMERA,
                       [lambda stop: FaceWorker(config, bus=bus, store=store, stop_event=stop, analyzer=analyzer)])
    face_worker = run.downstream[0]
    assert face_worker.stats["objects"] == run.detect.crops > 0
    assert face_worker.dead_letter.count == 0

    with bus.consumer([FACES.name], "check") as consumer:
        records = {r.face_id: r for r in (FaceRecord.from_json(m.value) for m in drain(consumer, 0.5))}
    assert records, f"no face record; worker stats {dict(face_worker.stats)}"
    assert run.ingest.final_totals[CAMERA].frames_out == FACE_FRAMES
    # frame index of each record from its capture time (ingest stamps file frames at start + pts)
    first_frame_at = _first_frame_time(bus)
    by_track: dict[str, list[FaceRecord]] = defaultdict(list)
    for record in records.values():
        by_track[record.track_id].append(record)
    actor_of_track: dict[str, Truth] = {}
    for track_id, recs in by_track.items():
        frame = (recs[0].captured_at - first_frame_at).total_seconds() * FPS
        actor = actor_at(truths, frame)
        assert actor is not None, f"face record of track {track_id} at frame {frame:.0f} belongs to no person"
        actor_of_track[track_id] = actor
    # one record per person track, and every person of the video got a track with a face
    assert {len(recs) for recs in by_track.values()} == {1}, {t: len(r) for t, r in by_track.items()}
    assert sorted(a.name for a in actor_of_track.values()) == sorted(t.name for t in truths)

    threshold = analyzer.threshold
    for track_a, actor_a in actor_of_track.items():
        record = by_track[track_a][0]
        assert record.embedding.model_id == analyzer.embedder.model_id
        assert record.quality.score >= FaceWorkerConfig().min_quality
        assert store.exists(record.crop_key) and record.crop_key.startswith(f"faces/{CAMERA}/")
        for track_b, actor_b in actor_of_track.items():
            if track_a >= track_b:
                continue
            similarity = float(np.dot(record.embedding.values, by_track[track_b][0].embedding.values))
            if actor_a.truth == actor_b.truth:
                assert similarity >= threshold, f"{actor_a.name}/{actor_b.name}: {similarity:.3f} < {threshold}"
            else:
                assert similarity < threshold, f"{actor_a.name}/{actor_b.name}: {similarity:.3f} >= {threshold}"


def _first_frame_time(bus: MemoryBus) -> datetime:
    with bus.consumer([DETECTIONS.name], "first-frame") as consumer:
        frames = [Detections.from_json(m.value) for m in drain(consumer, 0.5)]
    (first,) = [d.captured_at for d in frames if d.sequence == 0]
    return first
