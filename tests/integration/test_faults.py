"""The fault suite: kill -9 of each worker kind mid-run, a broker killed and restarted, the object store down
during real-time ingest — on the real broker (Tansu) and S3 server (SeaweedFS). Each run's tracks, alerts,
crops, plate reads, faces, catalog rows and recordings equal what a fault-free pipeline makes of the same
frames: nothing lost, nothing duplicated (compared on stable keys; see fault_harness.py).

Figures from these runs are in docs/security.md ("Fault figures").
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.bus import open_bus
from pipeline.bus.base import Bus, Message
from pipeline.config import TubelineConfig
from pipeline.recordings import load_index
from pipeline.runtime.worker import Health
from pipeline.stack import LocalStack
from pipeline.store import open_store
from pipeline.store.base import ObjectStore
from schemas.frames import FrameHeader
from schemas.topics import ALERTS, DETECTIONS, FACES, FRAMES, PLATES
from tests.conftest import start_private_stack
from tests.integration.fault_harness import (
    CAMERA,
    DOWNSTREAM,
    HOTLIST,
    Models,
    ObjectStoreServer,
    Outcome,
    Pipeline,
    cut_clip,
    differences,
    ingest_frames,
    last_frame,
    make_clip,
    read_topic,
    reference,
    suite_config,
)
from workers.plate.hotlists import HotlistRepository

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PUBLISH_FPS = 10.0  # the recorded frames go out at twice their capture rate: faults land mid-run
FIGURES: dict[str, dict[str, object]] = {}  # measured per scenario; written to $TUBELINE_FAULT_FIGURES if set


def _record(scenario: str, started: float, got: Outcome, **figures: object) -> None:
    FIGURES[scenario] = {"run_s": round(time.monotonic() - started, 1), "redelivered": got.redelivered(),
                         "catalog_rows": sum(sum(c.values()) for c in got.catalog.values()),
                         "duplicate_rows": sum(n - 1 for c in got.catalog.values() for n in c.values() if n > 1),
                         **figures}


@dataclass
class Suite:
    tmp: Path
    clip: Path
    broker: LocalStack
    objects: ObjectStoreServer
    base: TubelineConfig
    models: Models
    frames: list[Message]
    reference: Outcome

    def config(self, name: str, *, clip: Path | None = None, loop: bool = False) -> TubelineConfig:
        """The suite's configuration under a prefix of its own (``clip``: the file the camera plays)."""
        prefix = f"f{name.replace('_', '')}{uuid.uuid4().hex[:6]}"
        return suite_config(self.base, prefix=prefix, bucket=prefix, spool=self.tmp / name / "spool", clip=clip,
                            loop=loop)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    from models.zoo import ModelZoo

    tmp = tmp_path_factory.mktemp("faults")
    clip = make_clip(tmp / "clip.mp4")
    broker = start_private_stack(tmp / "broker")
    objects = ObjectStoreServer(tmp / "objects")
    try:
        base = objects.point(broker.client_config())
        zoo = ModelZoo(base.models)
        models = Models(zoo.detector(), zoo.plate_recognizer(), zoo.face_analyzer())
        config = suite_config(base, prefix="ref", bucket="ref", spool=tmp / "ref-spool")
        frames = ingest_frames(clip, config, models, tmp)
        expected = reference(frames, config, models, tmp)
        counts = expected.counts()
        # the scene must exercise every worker, or the comparisons below prove little
        assert counts["topic tracks"] >= 4 and counts["topic alerts"] >= 3 and counts["topic plates"] >= 2, counts
        assert counts["topic faces"] >= 2 and counts["store crops"] >= 8, counts
        yield Suite(tmp, clip, broker, objects, base, models, frames, expected)
    finally:  # throw-away servers: killed, not shut down gracefully (that took 10-14 s)
        objects.kill()
        broker.kill_service("kafka")
        broker.kill_service("s3")
        if os.environ.get("TUBELINE_FAULT_FIGURES"):
            Path(os.environ["TUBELINE_FAULT_FIGURES"]).write_text(json.dumps(FIGURES, indent=1))


def _paced(bus: Bus, frames: list[Message], fps: float) -> threading.Thread:
    """Publish ``frames`` at ``fps`` in a thread, as a camera would (the producer rides out broker restarts)."""

    def run() -> None:
        with bus.producer() as producer:
            started = time.monotonic()
            for i, m in enumerate(frames):
                time.sleep(max(0.0, started + i / fps - time.monotonic()))
                producer.send(m.topic, m.value, key=m.key, headers=list(m.headers))
            producer.flush()

    thread = threading.Thread(target=run, name="camera", daemon=True)
    thread.start()
    return thread


class Counter:
    """Counts messages on one topic as they arrive (a watcher of its own consumer group)."""

    def __init__(self, bus: Bus, topic: str) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._consumer = bus.consumer([topic], f"watch-{uuid.uuid4().hex[:8]}")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.count += len(self._consumer.poll(timeout=0.2, max_records=500))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def _until(condition: Callable[[], bool], what: str, pipeline: Pipeline, timeout: float = 120.0,
           detail: Callable[[], object] | None = None) -> None:
    """Wait for ``condition``; on time-out the assertion says what was awaited and, with ``detail``, the state."""
    deadline = time.monotonic() + timeout
    while not condition():
        pipeline.check()
        assert time.monotonic() < deadline, f"timed out waiting for {what}" + (f": {detail()}" if detail else "")
        time.sleep(0.1)


def _start(suite: Suite, name: str, *, clip: Path | None = None,
           loop: bool = False) -> tuple[TubelineConfig, Bus, ObjectStore, Pipeline]:
    config = suite.config(name, clip=clip, loop=loop)
    bus, store = open_bus(config), open_store(config)
    HotlistRepository(store).put(HOTLIST)
    tmp = suite.tmp / name
    tmp.mkdir(parents=True, exist_ok=True)
    return config, bus, store, Pipeline(config, bus, store, suite.models, tmp)


def _finish(pipeline: Pipeline, last: tuple[str, int], bus: Bus, store: ObjectStore) -> Outcome:
    try:
        pipeline.wait_quiet(lambda: pipeline.detected(last), quiet_s=2.0, timeout_s=600,
                            what=f"the last frame on the topic {last}")
    finally:
        pipeline.stop()
    from tests.integration.fault_harness import collect

    return collect(bus, store)


# How to see the victim's progress (an output topic, or None: catalog segments in the store), and how much of
# it means "mid-run": some of its work done, some still to do.
_KILL_AT: dict[str, tuple[str | None, Callable[[Outcome, int], int]]] = {
    "detect": (DETECTIONS.name, lambda ref, frames: frames // 3),
    "rules": (ALERTS.name, lambda ref, frames: max(1, len(ref.topics["alerts"]) // 3)),
    "plate": (PLATES.name, lambda ref, frames: 1),
    "face": (FACES.name, lambda ref, frames: 1),
    "index": (None, lambda ref, frames: 1),
}
_TOTAL: dict[str, Callable[[Outcome, int], int]] = {
    "detect": lambda ref, frames: frames,
    "rules": lambda ref, frames: len(ref.topics["alerts"]),
    "plate": lambda ref, frames: len(ref.topics["plates"]),
    "face": lambda ref, frames: len(ref.topics["faces"]),
}


VICTIMS = tuple(_KILL_AT)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``victims``: all kinds in one run, each killed in turn; with TUBELINE_FAULT_MATRIX=1 also each kind in a run
    of its own (the full matrix, about a minute more per kind; not collected otherwise, so nothing is skipped)."""
    if "victims" in metafunc.fixturenames:
        runs = [VICTIMS] + ([(v,) for v in VICTIMS] if os.environ.get("TUBELINE_FAULT_MATRIX") == "1" else [])
        metafunc.parametrize("victims", runs, ids=["each-in-turn" if len(r) > 1 else r[0] for r in runs])


class _Victim:
    """One worker kind to kill: its own process until its mid-run point, then a replacement in this process."""

    def __init__(self, name: str, suite: Suite, bus: Bus, store: ObjectStore) -> None:
        topic, threshold = _KILL_AT[name]
        self.name = name
        self.store = store
        self.watch = Counter(bus, topic) if topic else None
        self.threshold = threshold(suite.reference, len(suite.frames))
        self.total = _TOTAL[name](suite.reference, len(suite.frames)) if name in _TOTAL else None
        self.killed_at = 0.0
        self.done_at_kill = 0
        self.resumed_s: float | None = None

    def progressed(self) -> int:
        return self.watch.count if self.watch else sum(1 for _ in self.store.list("catalog/"))

    def kill_if_due(self, pipeline: Pipeline, camera: threading.Thread) -> None:
        """Kill -9 once it has done some of its work and has some left; start its replacement at once."""
        if self.killed_at or self.progressed() < self.threshold:
            return
        pipeline.kill(self.name)
        self.killed_at = time.monotonic()
        self.done_at_kill = self.progressed()
        if self.total is not None:
            assert self.done_at_kill < self.total, f"{self.name} finished before it could be killed"
        else:
            assert camera.is_alive(), f"the frames were all sent before {self.name} could be killed mid-run"
        pipeline.start(self.name)  # the replacement: takes over the group's partitions and the spool

    def resumed(self, pipeline: Pipeline) -> bool:
        """True once the replacement has done work (the dead member's session expired, the group rebalanced)."""
        if self.resumed_s is None and self.killed_at:
            replacement: Any = pipeline.workers[self.name]
            if replacement.processed or getattr(replacement, "frames_done", 0):
                self.resumed_s = time.monotonic() - self.killed_at
        return self.resumed_s is not None

    def close(self) -> None:
        if self.watch:
            self.watch.close()


def test_workers_killed_mid_run_lose_and_duplicate_nothing(suite: Suite, victims: tuple[str, ...]) -> None:
    """Each victim runs as its own process and is killed -9 at its own mid-run point (the run goes on around the
    dead and the replaced), so one run covers every worker kind; the outcome is compared once with the reference."""
    started = time.monotonic()
    config, bus, store, pipeline = _start(suite, "kill_" + "_".join(victims) if len(victims) == 1 else "kill_all")
    pipeline.start(*[n for n in ("detect", *DOWNSTREAM) if n not in victims])
    for name in victims:
        pipeline.spawn(name)
    targets = [_Victim(name, suite, bus, store) for name in victims]
    try:
        _until(lambda: all(pipeline.process_ready(n) for n in victims), "the victims' processes to be ready",
               pipeline)
        camera = _paced(bus, suite.frames, PUBLISH_FPS)

        def all_killed_and_resumed() -> bool:
            for target in targets:
                target.kill_if_due(pipeline, camera)
            return all([t.resumed(pipeline) for t in targets])

        _until(all_killed_and_resumed, "every victim to be killed mid-run and replaced", pipeline)
        camera.join(120)
    finally:
        for target in targets:
            target.close()
    got = _finish(pipeline, last_frame(suite.frames), bus, store)
    problems = differences(suite.reference, got)
    assert not problems, "\n".join(problems) + f"\n{got.counts()}"
    order = sorted(targets, key=lambda t: t.killed_at)
    _record("kill -9 " + ", ".join(t.name for t in order), started, got,
            resumed_s={t.name: round(t.resumed_s or 0, 1) for t in order},
            done_at_kill={t.name: t.done_at_kill for t in order},
            killed_after_s={t.name: round(t.killed_at - started, 1) for t in order})


# -- ingest: the broker restarted and the object store down, the ingest worker killed ----------------------------
OUTAGE_S = 60.0  # the outage; TUBELINE_FAULT_OUTAGE_S=12 runs a shorter one
CLIP_OUTLASTS_S = 12.0  # the longest outage the 17.5-s scene outlasts once its first segment is stored
BROKER_DOWN_S = 3.0


def _segments(store: ObjectStore) -> list[str]:
    return [i.key for i in store.list("recordings/") if i.key.endswith(".ts")]


def _contiguous(entries: list[dict]) -> bool:
    """Each segment starts where the one before it ended (within a frame), none after a gap."""
    ends = [datetime.fromisoformat(e["end"]) for e in entries]
    starts = [datetime.fromisoformat(e["start"]) for e in entries]
    return not any(e["after_gap"] for e in entries) and all(
        abs((s - e).total_seconds()) <= 0.11 for e, s in zip(ends, starts[1:], strict=False))


def _ingested(suite: Suite, bus: Bus, pipeline: Pipeline, store: ObjectStore) -> tuple[list[Message], Outcome]:
    """Wait for ingest to finish the file, then for the pipeline; the frames on the topic and the outcome."""
    pipeline.threads["ingest"].join(180)
    assert not pipeline.threads["ingest"].is_alive(), "ingest did not finish the clip"
    frames = read_topic(bus, [FRAMES.name])
    return frames, _finish(pipeline, last_frame(frames), bus, store)


def _restart_broker(suite: Suite, pipeline: Pipeline) -> float:
    """Kill -9 the broker, start it again ``BROKER_DOWN_S`` later (same ports, same S3-backed data); seconds down."""
    suite.broker.kill_service("kafka")
    down = time.monotonic()
    try:
        time.sleep(BROKER_DOWN_S)
        pipeline.check()  # every worker is still up
    finally:
        suite.broker._start_kafka()  # noqa: SLF001 - only the broker half of the stack
    return time.monotonic() - down


def test_broker_restart_and_object_store_outage_during_real_time_ingest_lose_nothing(suite: Suite) -> None:
    """One real-time ingest run, two faults in turn: the broker killed mid-run and restarted, then the object store
    down for ``OUTAGE_S`` (the broker's own data lives in another S3 server, which stays up)."""
    started = time.monotonic()
    outage = float(os.environ.get("TUBELINE_FAULT_OUTAGE_S", OUTAGE_S))
    loop = outage > CLIP_OUTLASTS_S  # a longer outage than the clip lasts: the camera plays it in a loop
    config, bus, store, pipeline = _start(suite, "s3down", clip=suite.clip, loop=loop)
    pipeline.start("detect", *DOWNSTREAM)
    _until(lambda: all(w.health == Health.RUNNING for w in pipeline.workers.values()), "workers to run", pipeline)
    pipeline.start("ingest")
    detect: Any = pipeline.workers["detect"]
    _until(lambda: detect.frames_done >= 8, "detection to be under way", pipeline)
    detected_at_broker_kill = detect.frames_done
    broker_down_s = _restart_broker(suite, pipeline)
    _until(lambda: _segments(store), "the first recording segment", pipeline)
    suite.objects.kill()
    degraded: set[str] = set()
    peak = {"entries": 0, "bytes": 0}

    def sample() -> None:
        stores = list(pipeline.spools().values())
        peak["entries"] = max(peak["entries"], sum(s.pending for s in stores))
        peak["bytes"] = max(peak["bytes"], sum(s.spool.size_bytes for s in stores))

    try:
        ends = time.monotonic() + outage
        while time.monotonic() < ends:
            pipeline.check()  # every worker stays up
            degraded |= {n for n, w in pipeline.workers.items() if w.health == Health.DEGRADED}
            sample()
            time.sleep(0.2)
    finally:
        suite.objects.start()
    back = time.monotonic()
    _until(lambda: all(not s.pending for s in pipeline.spools().values()), "the spools to drain", pipeline,
           detail=lambda: {name: s.status() for name, s in pipeline.spools().items() if s.pending})
    drained_s = time.monotonic() - back
    if loop:
        time.sleep(2.0)
        pipeline.stop("ingest")
    frames, got = _ingested(suite, bus, pipeline, store)
    totals = pipeline.workers["ingest"].final_totals[CAMERA]  # type: ignore[attr-defined]
    spooled = {name: s.spooled for name, s in pipeline.spools().items()}
    resent = sum(getattr(w.producer, "resent", 0) for w in pipeline.workers.values())  # type: ignore[attr-defined]
    if not loop:  # no frame lost on its way to the broker while it was down: the whole clip is on the topic
        assert len(frames) == len(suite.frames), f"{len(frames)} of {len(suite.frames)} frames on the topic"
    assert {"ingest", "detect", "index"} <= degraded, f"not ready during the outage: only {sorted(degraded)}"
    assert all(w.health == Health.STOPPED for w in pipeline.workers.values())
    expected = reference(frames, config, suite.models, suite.tmp / "s3down-reference")
    problems = differences(expected, got)
    assert not problems, "\n".join(problems) + f"\n{got.counts()}"
    recorded = [e for e in got.recordings if e["key"] in got.stored["recordings"]]
    assert recorded == got.recordings and _contiguous(recorded)
    # every packet read is recorded (packets, not decoded frames: stopped mid-file, the decoder still holds some)
    assert totals.record_drops == 0 and sum(e["packets"] for e in recorded) == totals.packets_in, (
        f"recorded {sum(e['packets'] for e in recorded)} packets of {totals.packets_in} read")
    # ingest and detect wrote through the outage; the indexer may instead have waited to read a partition it
    # had not seen before (its rows are checked against the catalog before they are written)
    assert spooled["ingest"] >= 1 and spooled["detect"] >= 1, spooled
    _record(f"broker restarted, then S3 down {outage:.0f} s, during real-time ingest", started, got,
            detected_at_broker_kill=detected_at_broker_kill, broker_down_s=round(broker_down_s, 1), resent=resent,
            spooled=spooled,
            spool_peak_entries=peak["entries"], spool_peak_mb=round(peak["bytes"] / 1e6, 1),
            drained_s=round(drained_s, 1), degraded=sorted(degraded), frames=len(frames),
            segments=len(recorded))


INGEST_CLIP_S = 8.0  # two 4-s segments: the kill lands in the second; the restart plays it all again


def test_ingest_killed_mid_segment_loses_no_recording(suite: Suite) -> None:
    """Ingest alone (what comes after it is the same pipeline as above, fed a second session's frames), on the
    scene's first ``INGEST_CLIP_S`` seconds."""

    started = time.monotonic()
    clip = cut_clip(suite.clip, suite.tmp / "ingest-clip.mp4", INGEST_CLIP_S)
    config, bus, store, pipeline = _start(suite, "kill_ingest", clip=clip)
    clip_frames = len(ingest_frames(clip, config, suite.models, suite.tmp / "kill_ingest"))  # without a fault
    pipeline.spawn("ingest")
    _until(lambda: _segments(store), "the first recording segment", pipeline)
    time.sleep(1.5)  # into the second segment
    killed_at = time.time()
    pipeline.kill("ingest")
    pipeline.start("ingest")  # finishes the open segment from its spool's work folder, then plays the file again
    pipeline.threads["ingest"].join(180)
    worker = pipeline.workers["ingest"]
    assert worker.recovered_segments == 1  # type: ignore[attr-defined]
    totals = worker.final_totals[CAMERA]  # type: ignore[attr-defined]
    pipeline.stop()
    entries = [dataclasses.asdict(e) for d in sorted({k.split("/")[2] for k in _segments(store)})
               for e in load_index(store, "recordings", CAMERA, d)]
    assert {e["key"] for e in entries} == set(_segments(store)), "index and stored segments differ"
    # the restart plays the file from its start again: media time starts over (the wall-clock gap may be tiny)
    gaps = [i for i in range(1, len(entries)) if entries[i]["start_pts"] < entries[i - 1]["start_pts"]]
    assert len(gaps) == 1, f"one restart expected: {entries}"
    before, after = entries[: gaps[0]], entries[gaps[0] :]
    assert _contiguous(before) and _contiguous(after)
    cut = datetime.fromisoformat(before[-1]["end"]).timestamp()
    assert killed_at - 1.0 <= cut <= killed_at + 0.2, "the recording before the kill does not reach the kill"
    assert totals.record_drops == 0 and sum(e["packets"] for e in after) == totals.packets_in
    # frames: the killed session's are a gapless prefix, the new session's are all there, in order
    sessions: dict[str, list[int]] = {}
    for m in read_topic(bus, [FRAMES.name]):
        header = FrameHeader.from_headers(m.headers)
        sessions.setdefault(header.session, []).append(header.sequence)
    assert len(sessions) == 2
    first, second = sessions.values()
    assert first == list(range(len(first))) and second == list(range(len(second)))
    assert len(second) == clip_frames and 0 < len(first) < len(second)
    FIGURES["kill -9 ingest"] = {"run_s": round(time.monotonic() - started, 1),
                                 "video_lost_at_kill_s": round(killed_at - cut, 2),
                                 "recovered_segment_s": before[-1]["duration_s"], "segments": len(entries),
                                 "frames_before_kill": len(first)}
