"""The fault suite's machinery: a scene, a pipeline of real workers, outcomes compared on stable keys.

**Scene.** One camera, 17.5 s at 10 fps (1280×720, H.264): two real cars carrying plates (one of them on a
hotlist) drive down the plaza of ``vtest.avi``, then two portrait "persons" walk across it, then 1.5 s of
the plaza alone so every track ends inside the clip (tests/fixtures/enrich/make_videos.py composes it).
The plaza's own pedestrians are in it too.

**Pipeline.** The real workers — ingest, detect, rules, plate, face, index — each with its real lifecycle
(``Worker.run``), its own store spool, the store rights of its own identity (``pipeline.access``) and its
own consumer group, on the real broker (Tansu) and the real S3 server (SeaweedFS). A worker that is to be killed runs as its own process (``python -m workers.cli
worker NAME``, the production entry point) and gets SIGKILL; its replacement runs in this process.

**Outcome.** What a run leaves behind, by stable keys: the idempotency keys on the output topics (tracks,
alerts, objects, plate reads with their revision, faces — as sets: the bus is at-least-once), the object
keys in the store (crops, plate and face images, recordings) and the catalog's rows per kind as a
*multiset* of row identities (idempotency key + content digest), so a duplicate row shows up.

**Reference.** The same workers on the in-memory bus and a local folder, fed exactly the frames the
faulted run had on its frames topic: what a fault-free pipeline makes of the same input. Detection runs
one frame at a time (``detect.max_batch: 1``) so its results do not depend on how frames were batched.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.access import ScopedStore
from pipeline.bus.base import Bus, Message, TopicSpec
from pipeline.bus.memory import MemoryBus
from pipeline.catalog.format import parse_segment_key, read_table
from pipeline.config import TubelineConfig, config_data
from pipeline.config.ingest import CameraSpec
from pipeline.config.stack import StackConfig
from pipeline.runtime.worker import Worker
from pipeline.spool import SpooledStore, spool_of
from pipeline.stack import LocalStack, free_port_block
from pipeline.store.base import ObjectStore
from pipeline.store.local import LocalStore
from schemas.alerts import Alert
from schemas.faces import FaceRecord
from schemas.objects import ObjectCrop
from schemas.plates import PlateRead
from schemas.topics import ALERTS, FACES, FRAMES, OBJECTS, PLATES, TRACKS
from schemas.tracks import TrackSummary
from tests.conftest import REPO
from workers.index.writer import row_identities
from workers.plate.hotlists import Hotlist, HotlistRepository
from workers.runner.registry import worker_store

log = logging.getLogger(__name__)

CAMERA = "fault-cam"
CLIP_FRAMES = 175
HOTLIST = Hotlist.model_validate({
    "name": "stolen", "reason": "reported stolen", "owner": "fault suite", "severity": "critical",
    "entries": [{"plate": "湘A0PQ76", "note": "the red car"}],
})
RULES = {"cameras": [{
    "camera_id": CAMERA,
    "zones": [{"id": "road", "name": "Lower half", "polygon": [[0.0, 0.55], [1.0, 0.55], [1.0, 1.0], [0.0, 1.0]]}],
    "lines": [{"id": "mid", "name": "Middle", "a": [0.5, 0.0], "b": [0.5, 1.0]}],
    "rules": [
        {"id": "road-intrusion", "kind": "zone_intrusion", "zone": "road", "classes": ["person", "car"],
         "severity": "medium", "cooldown_s": 0},
        {"id": "mid-crossing", "kind": "line_crossing", "line": "mid", "direction": "both", "classes": ["person"],
         "severity": "low", "cooldown_s": 0},
    ],
}]}
DOWNSTREAM = ("rules", "plate", "face", "index")


def make_clip(out: Path) -> Path:
    """The scene (see the module docstring), written once."""
    from tests.fixtures.enrich.make_videos import (
        FACE_ACTORS,
        PLATE_ACTORS,
        TESTDATA,
        cut_sprite,
        portrait_sprite,
        render,
        write_video,
    )

    if out.exists():
        return out
    cars = [(a, cut_sprite(TESTDATA, s, crop, mirrored)) for a, s, crop, mirrored in PLATE_ACTORS[:2]]
    persons = [(dataclasses.replace(a, first=a.first + 70), portrait_sprite(TESTDATA, f)) for a, f in FACE_ACTORS[:2]]
    write_video(out, render(TESTDATA, cars + persons, CLIP_FRAMES))
    return out


def cut_clip(src: Path, out: Path, seconds: float) -> Path:
    """The first ``seconds`` of ``src`` (whole GOPs, packets copied, not re-encoded)."""
    import av

    with av.open(str(src)) as source, av.open(str(out), "w") as target:
        video = source.streams.video[0]
        stream = target.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is None:
                continue  # the demuxer's end-of-stream flush packet
            if packet.is_keyframe and packet.pts is not None and float(packet.pts * video.time_base) >= seconds:
                break
            packet.stream = stream
            target.mux(packet)
    return out


def suite_config(base: TubelineConfig, *, prefix: str, bucket: str, spool: Path, clip: Path | None = None,
                 realtime: bool = True, loop: bool = False) -> TubelineConfig:
    """The configuration every run of the suite uses (``clip``: the camera ingest reads)."""
    data = config_data(base, reveal_secrets=True)
    data["bus"]["topic_prefix"] = prefix
    data["bus"]["kafka"].update(session_timeout_ms=1000, heartbeat_interval_ms=300)
    data["store"]["s3"]["bucket"] = bucket
    data["spool"].update(dir=spool, retry_initial_s=0.2, retry_max_s=2.0)
    data["runtime"].update(poll_timeout_s=0.2, drain_timeout_s=20)
    data["detect"].update(max_batch=1, commit_interval_s=0.5, crop_quality_gain=1.0, max_crops_per_track=3)
    data["plate"]["max_lag_s"] = 0
    data["face"].update(max_lag_s=0, min_person_height_px=300)  # the portraits, not the plaza's passers-by
    data["index"].update(flush_interval_s=1.0, shard_snapshot_interval_s=3600)
    data["rules"] = RULES
    data["ingest"].update(analysis_fps=5, overflow="drop_oldest")
    data["ingest"]["recordings"]["segment_s"] = 4.0
    data["cameras"]["static"] = [] if clip is None else [{
        "id": CAMERA, "kind": "file", "device_type": "file", "url": str(clip), "realtime": realtime, "loop": loop,
    }]
    return TubelineConfig.model_validate(data)


def write_config(config: TubelineConfig, path: Path) -> Path:
    """``config`` as a YAML file a worker process reads (secrets in clear: mode 0600, in the test's tmp)."""
    import json

    data = json.loads(json.dumps(config_data(config, reveal_secrets=True), default=str))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(data, out, allow_unicode=True)
    return path


# -- stacks -------------------------------------------------------------------------------------------------
class ObjectStoreServer:
    """A SeaweedFS S3 server of its own (the broker keeps its data in another one), to stop and restart."""

    def __init__(self, state_dir: Path) -> None:
        base = free_port_block(4, also_grpc=True)
        s3 = free_port_block(1, also_grpc=True)
        while base <= s3 <= base + 3:
            s3 = free_port_block(1, also_grpc=True)
        self.stack = LocalStack(StackConfig(state_dir=state_dir, s3_port=s3, seaweed_base_port=base,
                                            start_timeout_s=60))
        self.start()

    def start(self) -> None:
        self.stack._start_s3()  # noqa: SLF001 - only the S3 half of a local stack

    def kill(self) -> None:
        self.stack.kill_service("s3")

    def stop(self) -> None:
        self.stack.stop_service("s3")

    def point(self, config: TubelineConfig) -> TubelineConfig:
        creds = self.stack.credentials()
        data = config_data(config, reveal_secrets=True)
        data["store"] = {"backend": "s3", "s3": {**data["store"]["s3"], "endpoint": self.stack.s3_endpoint,
                                                 "access_key": creds["access_key"], "secret_key": creds["secret_key"],
                                                 "secure": False}}
        return TubelineConfig.model_validate(data)


# -- frames -------------------------------------------------------------------------------------------------
def _end_offsets(bus: Bus, consumer: Any) -> dict[tuple[str, int], int]:
    """The end offset of every partition assigned to ``consumer`` (Kafka: asked of the broker)."""
    return {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(consumer.assignment()).items()}


def read_topic(bus: Bus, topics: Iterable[str], *, join_s: float = 20.0, timeout_s: float = 120.0) -> list[Message]:
    """Everything on ``topics`` so far: read (a throw-away group) until every partition's end offset, taken once
    the group is joined, is reached — not until the topic looks quiet, which a loaded machine can fake."""
    out: list[Message] = []
    with bus.consumer(list(topics), f"fault-read-{uuid.uuid4().hex[:8]}") as consumer:
        deadline = time.monotonic() + join_s
        batch = consumer.poll(timeout=1.0, max_records=2000)
        while not batch and not consumer.assignment() and time.monotonic() < deadline:
            batch = consumer.poll(timeout=1.0, max_records=2000)
        assert consumer.assignment(), f"no partition of {list(topics)} assigned within {join_s:g} s"
        ends = _end_offsets(bus, consumer)
        seen: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            out += batch
            for m in batch:
                seen[(m.topic, m.partition)] = max(seen.get((m.topic, m.partition), -1), m.offset)
            if all(end == 0 or seen.get(tp, -1) + 1 >= end for tp, end in ends.items()):
                # confirm: nothing more arrives within a second and the end offsets have not moved (the broker's
                # answer to the first look can trail a write it had just acknowledged)
                batch = consumer.poll(timeout=1.0, max_records=2000)
                again = _end_offsets(bus, consumer)
                if not batch and again == ends:
                    return out
                ends = again
                continue
            assert time.monotonic() < deadline, f"read {len(out)} messages of {list(topics)} up to {seen}, not {ends}"
            batch = consumer.poll(timeout=0.5, max_records=2000)


def publish(bus: Bus, messages: list[Message]) -> None:
    bus.ensure_topics([TopicSpec(FRAMES.name, FRAMES.partitions, FRAMES.retention_ms)])
    with bus.producer() as producer:
        for m in messages:
            producer.send(m.topic, m.value, key=m.key, headers=list(m.headers))
        producer.flush()


# -- outcomes -----------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What a run left behind, by stable keys (see the module docstring)."""

    topics: dict[str, set[str]] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)  # messages per topic, redeliveries included
    stored: dict[str, set[str]] = field(default_factory=dict)
    catalog: dict[str, Counter[str]] = field(default_factory=dict)
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # kind -> identity -> row content
    recordings: list[dict[str, Any]] = field(default_factory=list)

    def redelivered(self) -> int:
        """Output messages delivered more than once (the duplicates downstream had to absorb)."""
        return sum(self.delivered.get(name, 0) - len(keys) for name, keys in self.topics.items())

    def counts(self) -> dict[str, int]:
        out = {f"topic {k}": len(v) for k, v in self.topics.items()}
        out |= {f"store {k}": len(v) for k, v in self.stored.items()}
        out |= {f"catalog {k}": sum(v.values()) for k, v in self.catalog.items()}
        return out


_KEYS: dict[str, Callable[[bytes], str]] = {
    TRACKS.name: lambda v: TrackSummary.from_json(v).idempotency_key(),
    ALERTS.name: lambda v: Alert.from_json(v).idempotency_key(),
    OBJECTS.name: lambda v: ObjectCrop.from_json(v).idempotency_key(),
    PLATES.name: lambda v: (lambda r: f"{r.idempotency_key()}#{r.revision}")(PlateRead.from_json(v)),
    FACES.name: lambda v: FaceRecord.from_json(v).idempotency_key(),
}


def collect(bus: Bus, store: ObjectStore) -> Outcome:
    outcome = Outcome(topics={t.split(".")[1]: set() for t in _KEYS})
    for m in read_topic(bus, _KEYS):
        name = m.topic.split(".")[1]
        outcome.topics[name].add(_KEYS[m.topic](m.value))
        outcome.delivered[name] = outcome.delivered.get(name, 0) + 1
    for prefix in ("crops", "plates", "faces", "recordings"):
        outcome.stored[prefix] = {i.key for i in store.list(prefix + "/") if not i.key.endswith("index.json")}
    for info in store.list("catalog/"):
        ref = parse_segment_key(info.key, "catalog")
        if ref is not None:
            table = read_table(store.get(info.key))
            identities = row_identities(table)
            outcome.catalog.setdefault(ref.kind, Counter()).update(identities)
            meta = {"ikey", "ingested_at", "src_partition", "src_offset"}
            for identity, row in zip(identities, table.to_pylist(), strict=True):
                outcome.rows.setdefault(ref.kind, {})[identity] = {k: v for k, v in row.items() if k not in meta}
    from pipeline.recordings import load_index

    days = sorted({k.split("/")[2] for k in outcome.stored["recordings"]})
    outcome.recordings = [dataclasses.asdict(e) for d in days for e in load_index(store, "recordings", CAMERA, d)]
    return outcome


def differences(expected: Outcome, got: Outcome) -> list[str]:
    """What ``got`` lost, added or duplicated compared with ``expected`` (empty when they are equal)."""
    problems = []
    for name, want in expected.topics.items():
        have = got.topics.get(name, set())
        if want != have:
            problems.append(f"{name}.v1: missing {sorted(want - have)[:5]}, unexpected {sorted(have - want)[:5]}")
    for name in ("crops", "plates", "faces"):
        want, have = expected.stored.get(name, set()), got.stored.get(name, set())
        if want != have:
            problems.append(f"store {name}/: missing {sorted(want - have)[:5]}, unexpected {sorted(have - want)[:5]}")
    for kind in sorted(set(expected.catalog) | set(got.catalog)):
        want, have = expected.catalog.get(kind, Counter()), got.catalog.get(kind, Counter())
        if kind == "camera-status":
            continue  # status events carry wall-clock times: compared by the ingest checks instead
        if want != have:
            dupes = sorted(k for k, n in have.items() if n > 1)
            problems.append(f"catalog {kind}: missing {sorted((want - have).elements())[:4]}, "
                            f"unexpected {sorted((have - want).elements())[:4]}, duplicated {dupes[:4]}")
            problems += _changed(kind, expected.rows.get(kind, {}), got.rows.get(kind, {}))
    return problems


def _changed(kind: str, want: dict[str, dict[str, Any]], have: dict[str, dict[str, Any]]) -> list[str]:
    """For rows whose key is in both but whose content differs: the columns that differ."""
    by_key_want = {i.split("#")[0]: r for i, r in want.items()}
    out = []
    for identity, row in have.items():
        ikey = identity.split("#")[0]
        other = by_key_want.get(ikey)
        if identity not in want and other is not None:
            cols = sorted(k for k in row if row[k] != other.get(k))
            out.append(f"  {kind} {ikey}: content differs in {cols}: "
                       + "; ".join(f"{c}={str(other.get(c))[:80]} vs {str(row[c])[:80]}" for c in cols[:3]))
    return out[:6]


# -- the pipeline -------------------------------------------------------------------------------------------
@dataclass
class Models:
    detector: Any
    recognizer: Any
    analyzer: Any


class Pipeline:
    """Real workers in threads of this process (and, for a victim, in a process of its own)."""

    def __init__(self, config: TubelineConfig, bus: Bus, store: ObjectStore, models: Models, tmp: Path) -> None:
        self.config = config
        self.bus = bus
        self.store = store
        self.models = models
        self.tmp = tmp
        self.workers: dict[str, Worker] = {}
        self.threads: dict[str, threading.Thread] = {}
        self.stores: dict[str, ObjectStore] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # victims, each in a process of its own
        self.health_ports: dict[str, int] = {}

    def make(self, name: str, stop: threading.Event) -> Worker:
        from workers.detect.worker import DetectWorker
        from workers.face.worker import FaceWorker
        from workers.index.worker import IndexWorker
        from workers.ingest.worker import IngestWorker
        from workers.plate.worker import PlateWorker
        from workers.rules.worker import RulesWorker

        old = self.spools().get(name)
        if old is not None:
            old.spool.close()
        # the rights of its own identity, checked before its spool (as `tubeline worker NAME` wires it)
        store = self.stores[name] = worker_store(name, self.config, self.store, stop)
        assert isinstance(store, ScopedStore), f"{name} is not a spooling worker"
        common: dict[str, Any] = {"bus": self.bus, "store": store, "stop_event": stop}
        if name == "detect":
            return DetectWorker(self.config, detector=self.models.detector, **common)
        if name == "plate":
            return PlateWorker(self.config, recognizer=self.models.recognizer, **common)
        if name == "face":
            return FaceWorker(self.config, analyzer=self.models.analyzer, **common)
        cls = {"ingest": IngestWorker, "rules": RulesWorker, "index": IndexWorker}[name]
        return cls(self.config, **common)

    def spools(self) -> dict[str, SpooledStore]:
        """The spool beneath each worker's store."""
        return {name: s for name, store in self.stores.items() if (s := spool_of(store)) is not None}

    def start(self, *names: str) -> None:
        for name in names:
            worker = self.workers[name] = self.make(name, threading.Event())
            thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, name=f"w-{name}",
                                      daemon=True)
            self.threads[name] = thread
            thread.start()

    def spawn(self, name: str) -> None:
        """``name`` as its own process, the production way (``tubeline worker NAME``)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = self.health_ports[name] = sock.getsockname()[1]
        config = self.config.model_copy(update={"runtime": self.config.runtime.model_copy(
            update={"health_port": port})})
        config_file = write_config(config, self.tmp / f"{name}.yaml")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUBELINE_")}
        env["TUBELINE_CONFIG"] = str(config_file)
        with open(self.tmp / f"{name}.log", "ab") as log_file:
            self.processes[name] = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", name], cwd=REPO,
                                                    env=env, stdout=log_file, stderr=subprocess.STDOUT)

    def process_ready(self, name: str) -> bool:
        """The worker process ``name`` answers 200 on /readyz (set up, group joined, not degraded)."""
        try:
            url = f"http://127.0.0.1:{self.health_ports[name]}/readyz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def process_log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self, name: str) -> None:
        """SIGKILL the process of ``name``, which must still be running."""
        process = self.processes.pop(name)
        assert process.poll() is None, f"{name} died on its own:\n{self.process_log(name)}"
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def check(self) -> None:
        for name, worker in self.workers.items():
            assert worker.error is None, f"{name} failed: {worker.error!r}"
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited:\n{self.process_log(name)}"

    def progress(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for name in sorted(self.workers):
            w: Any = self.workers[name]
            out += [getattr(w, "processed", 0), getattr(w, "frames_done", 0), getattr(w, "crops", 0)]
        out += [s.pending for s in self.spools().values()]
        return tuple(out)

    def progress_names(self) -> list[str]:
        return [f"{name}.{field}" for name in sorted(self.workers) for field in ("processed", "frames_done", "crops")] + [
            f"spool.{name}" for name in self.spools()]

    def detect_position(self) -> tuple[str, int] | None:
        """(ingest session, last sequence) the detect worker has processed for the camera, if any."""
        detect: Any = self.workers.get("detect")
        state = detect.states.get(CAMERA) if detect is not None else None
        return None if state is None else (state.ingest_session, state.last_sequence)

    def wait_quiet(self, done: Callable[[], bool], *, quiet_s: float, timeout_s: float, what: str = "",
                   stall_s: float = 90.0) -> None:
        """Until ``done()`` and nothing moved for ``quiet_s`` seconds (no spooled write pending). Fails when nothing
        has moved for ``stall_s`` seconds short of ``done()`` (a stall: something lost or stuck), or after
        ``timeout_s`` in all (a slow machine's backlog gets that long, as long as it keeps moving)."""
        started = time.monotonic()
        last, since = None, started
        while True:
            self.check()
            now = self.progress()
            if now != last:
                last, since = now, time.monotonic()
            pending = any(s.pending for s in self.spools().values())
            finished = done()
            if finished and not pending and time.monotonic() - since >= quiet_s:
                return
            stalled = not finished and time.monotonic() - since >= stall_s
            assert not stalled and time.monotonic() - started < timeout_s, (
                f"no quiet pipeline after {time.monotonic() - started:.0f} s (done: {finished} {what}, last move "
                f"{time.monotonic() - since:.1f} s ago); progress {dict(zip(self.progress_names(), now, strict=True))}; "
                f"detect at {self.detect_position()}")
            time.sleep(0.2)

    def stop(self, *names: str) -> None:
        for name in names or ("ingest", "detect", *DOWNSTREAM):
            worker = self.workers.get(name)
            if worker is None:
                continue
            worker.stop()
            self.threads[name].join(60)
        if not names:
            for name, process in list(self.processes.items()):
                process.kill()
                process.wait(10)
                del self.processes[name]
        if not names:
            for spooled in self.spools().values():
                spooled.spool.close()

    def detected(self, last: tuple[str, int]) -> bool:
        """True when the detect worker has processed ``last`` = (ingest session, sequence) of the last frame."""
        return self.detect_position() == last


def last_frame(frames: list[Message]) -> tuple[str, int]:
    """(ingest session, sequence) of the last frame: the highest sequence of the session that wrote last (a message
    the producer sent again after a broker restart can sit on the topic after later ones)."""
    from schemas.frames import FrameHeader

    headers = [FrameHeader.from_headers(m.headers) for m in frames]
    session = headers[-1].session
    return session, max(h.sequence for h in headers if h.session == session)


def reference(frames: list[Message], config: TubelineConfig, models: Models, tmp: Path) -> Outcome:
    """What the pipeline makes of ``frames`` without faults: in-memory bus, local folder."""
    bus = MemoryBus(default_partitions=config.bus.default_partitions)
    store = LocalStore(tmp / "reference-store")
    HotlistRepository(store).put(HOTLIST)
    publish(bus, frames)
    pipeline = Pipeline(config, bus, store, models, tmp)
    pipeline.start("detect", *DOWNSTREAM)
    try:
        final = last_frame(frames)
        pipeline.wait_quiet(lambda: pipeline.detected(final), quiet_s=1.5, timeout_s=240)
    finally:
        pipeline.stop()
    return collect(bus, store)


def ingest_frames(clip: Path, config: TubelineConfig, models: Models, tmp: Path) -> list[Message]:
    """The frames a real ingest worker publishes for ``clip`` (read as fast as possible, nothing dropped)."""
    bus = MemoryBus(default_partitions=config.bus.default_partitions)
    data = config_data(config, reveal_secrets=True)
    data["ingest"]["overflow"] = "block"
    data["ingest"]["recordings"]["enabled"] = False
    data["cameras"]["static"] = [CameraSpec(id=CAMERA, kind="file", device_type="file", url=str(clip),
                                            realtime=False).model_dump()]
    pipeline = Pipeline(TubelineConfig.model_validate(data), bus, LocalStore(tmp / "ingest-store"), models, tmp)
    pipeline.start("ingest")
    pipeline.threads["ingest"].join(120)
    pipeline.stop()
    return read_topic(bus, [FRAMES.name])
