"""The embedded pipeline: every worker in one process over one bus and store.

``tubeline up`` runs this on the in-memory bus and the local-folder store by default
(no broker, no S3 server), or on whatever backends the configuration names. It is
the same worker code as the distributed deployment — each worker confined to the store prefixes its own
identity may use there (:class:`pipeline.access.ScopedStore`) — wired by a
:class:`pipeline.runtime.supervisor.Supervisor`: ingest publishes frames, the
detect worker finds and tracks objects, the rules worker raises alerts, and the run
ends when the source files are done and detection has caught up; the detect worker
then closes its open tracks so every track gets a summary.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.access import ScopedStore, access_matrix
from pipeline.bus import Bus, open_bus
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec
from pipeline.runtime.supervisor import Supervisor, WorkerFactory
from pipeline.runtime.worker import Health
from pipeline.spool import SpooledStore, spool_of
from pipeline.store import ObjectStore, open_store
from schemas.alerts import Alert
from schemas.topics import ALERTS, TRACKS
from schemas.tracks import TrackSummary
from workers.detect.worker import DetectWorker
from workers.ingest.live import LiveSink
from workers.ingest.worker import IngestWorker
from workers.runner.registry import SPOOLED, WORKERS, worker_class, worker_store

log = logging.getLogger(__name__)

# Workers after detect that `up` runs when they are registered, in the order they are stopped.
DOWNSTREAM = ("quality", "rules", "plate", "face", "index")


@dataclass
class EmbeddedResult:
    elapsed_s: float
    frames_published: int
    frames_dropped: int
    frames_detected: int
    dead_letters: int
    tracks_by_class: dict[str, int] = field(default_factory=dict)
    alerts_by_type: dict[str, int] = field(default_factory=dict)
    crops: int = 0
    objects: dict[str, tuple[int, int]] = field(default_factory=dict)  # top-level prefix -> (count, bytes)
    sample_keys: list[str] = field(default_factory=list)


def summarize_store(
    store: ObjectStore,
    prefixes: tuple[str, ...] = ("crops/", "recordings/", "catalog/", "index/", "state/"),
) -> tuple[dict[str, tuple[int, int]], list[str]]:
    summary: dict[str, tuple[int, int]] = {}
    samples: list[str] = []
    for prefix in prefixes:
        count = size = 0
        for info in store.list(prefix):
            count += 1
            size += info.size
            if count <= 1:
                samples.append(info.key)
        if count:
            summary[prefix.rstrip("/")] = (count, size)
    return summary, samples


def read_topic(bus: Bus, topic: str, quiet_s: float = 1.0) -> list[bytes]:
    """Every message on ``topic`` so far, read by a throwaway consumer group."""
    values: list[bytes] = []
    with bus.consumer([topic], f"tubeline-up-report-{uuid.uuid4().hex[:8]}") as consumer:
        # On Kafka the first poll also joins the group, which takes seconds.
        batch = consumer.poll(timeout=15.0 if bus.name == "kafka" else quiet_s, max_records=1000)
        while batch:
            values.extend(m.value for m in batch)
            batch = consumer.poll(timeout=quiet_s, max_records=1000)
    return values


class WorkerStores:
    """One store per worker name, kept across the supervisor's restarts of that worker: the rights its own store
    identity has in a deployment (:class:`pipeline.access.ScopedStore`), with its own spool beneath where it has
    one (:func:`workers.runner.registry.worker_store`) — a restarted worker takes over its predecessor's spool."""

    def __init__(self, config: TubelineConfig, store: ObjectStore) -> None:
        self.config = config
        self.store = store
        self.matrix = access_matrix(config)
        self.by_worker: dict[str, ObjectStore] = {}

    def __call__(self, name: str, stop: threading.Event) -> ObjectStore:
        store = self.by_worker.get(name)
        if store is None:
            store = self.by_worker[name] = (worker_store(name, self.config, self.store, stop) if name in SPOOLED
                                            else ScopedStore(self.store, self.matrix[name]))
        elif (spooled := spool_of(store)) is not None:
            spooled.stop_event = stop
        return store

    def spools(self) -> dict[str, SpooledStore]:
        return {name: s for name, store in self.by_worker.items() if (s := spool_of(store)) is not None}

    def close(self) -> None:
        for spooled in self.spools().values():
            spooled.stop()
            spooled.spool.close()


def build_pipeline(config: TubelineConfig, bus: Bus, store: ObjectStore | WorkerStores, cameras: list[CameraSpec],
                   detector: Any, live: LiveSink | None = None, downstream: tuple[str, ...] = DOWNSTREAM) -> Supervisor:
    """Workers in pipeline order: the supervisor stops them in this order, each after the one before drained.

    ``store``: the run's store, or the :class:`WorkerStores` over it (to store what their spools hold at the end);
    ``downstream``: which of the workers after detect to run (default: all of quality, rules, plate, face, index)."""
    stores = store if isinstance(store, WorkerStores) else WorkerStores(config, store)
    supervisor = Supervisor(
        restart_budget=config.runtime.restart_budget, restart_window_s=config.runtime.restart_window_s
    )
    supervisor.add("ingest", lambda stop: IngestWorker(config, bus=bus, store=stores("ingest", stop), stop_event=stop,
                                                       cameras=cameras, live=live))
    supervisor.add("detect", lambda stop: DetectWorker(config, bus=bus, store=stores("detect", stop), stop_event=stop,
                                                       close_on_stop=True, detector=detector))

    def factory(name: str) -> WorkerFactory:
        cls = worker_class(name)
        return lambda stop: cls(config, bus=bus, store=stores(name, stop), stop_event=stop)

    for name in DOWNSTREAM:
        if name in WORKERS and name in downstream:
            supervisor.add(name, factory(name))
    return supervisor


def _drain_downstream(supervisor: Supervisor, bus: Bus, quiet_s: float = 3.0, timeout_s: float = 120.0) -> None:
    """Wait until the workers after detect have consumed everything, then stop them in order."""
    workers = {n: w for n, w in supervisor.workers().items() if n in DOWNSTREAM}
    deadline = time.monotonic() + timeout_s
    if isinstance(bus, MemoryBus):
        groups = [getattr(w, "group", "") or w.name for w in workers.values()]
        while time.monotonic() < deadline and any(bus.lag(g) for g in groups):
            time.sleep(0.1)
        time.sleep(0.2)  # let the last polled batch be handled
    else:  # Kafka: end offsets are not reliable on every broker; wait for a quiet period instead
        last, quiet_since = None, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_s:
            now = tuple(getattr(w, "processed", 0) for w in workers.values())
            if now != last:
                last, quiet_since = now, time.monotonic()
            time.sleep(0.2)
    for name in workers:
        supervisor.stop_worker(name)


def run_embedded(
    config: TubelineConfig,
    cameras: list[CameraSpec],
    *,
    detector: Any = None,
    timeout_s: float = 1800.0,
    progress: Callable[[str], None] | None = None,
    bus: Bus | None = None,
    live: LiveSink | None = None,
) -> EmbeddedResult:
    """Run ingest → detect → rules → plate, face → index on ``cameras`` (files) until done; report what was found.

    ``bus``: run on this bus and leave it open (the caller reads the topics afterwards, e.g. the track
    summaries of an in-memory run); default: the configured bus, closed on return. ``live``: where ingest
    sends every camera's packets for live viewing (the API's hub when ``tubeline up`` serves while it runs)."""
    own_bus = bus is None
    bus = bus if bus is not None else open_bus(config)
    store = open_store(config)
    if detector is None:
        from models.zoo import ModelZoo

        detector = ModelZoo(config.models).detector()
    stores = WorkerStores(config, store)
    supervisor = build_pipeline(config, bus, stores, cameras, detector, live)
    started = time.monotonic()
    supervisor.start()
    last_report = 0.0

    def counts() -> tuple[int, int, int, int]:
        workers = supervisor.workers()
        ingest, detect = workers.get("ingest"), workers.get("detect")
        published = dropped = 0
        if isinstance(ingest, IngestWorker):
            snaps = [r.snapshot() for _, r in list(ingest.runners.values())] or list(ingest.final_totals.values())
            published = sum(s.frames_out for s in snaps)
            dropped = sum(s.dropped for s in snaps)
        done = dead = 0
        if isinstance(detect, DetectWorker):
            done = detect.frames_done
            dead = detect.dead_letter.count if detect.dead_letter else 0
        return published, dropped, done, dead

    def finished() -> bool:
        nonlocal last_report
        ingest = supervisor.workers().get("ingest")
        published, _, done, dead = counts()
        now = time.monotonic()
        if progress and now - last_report >= 2.0:
            last_report = now
            progress(f"{now - started:6.1f}s  frames published {published}, detected {done}")
        if now - started > timeout_s:
            log.error("embedded run timed out after %.0f s", timeout_s)
            return True
        ingest_done = isinstance(ingest, IngestWorker) and ingest.health == Health.STOPPED and bool(ingest.final_totals)
        return ingest_done and done + dead >= published

    try:
        supervisor.run_until(finished)
        supervisor.stop_worker("ingest")
        supervisor.stop_worker("detect")  # closes its open tracks: their summaries go downstream
        _drain_downstream(supervisor, bus)
    finally:
        published, dropped, done, dead = counts()
        supervisor.stop(timeout=config.runtime.drain_timeout_s + 30)
        _store_spooled(stores, bus)
    detect = supervisor.workers().get("detect")
    crops = detect.crops if isinstance(detect, DetectWorker) else 0
    tracks: Counter[str] = Counter()
    for value in read_topic(bus, TRACKS.name):
        tracks[TrackSummary.from_json(value).class_name] += 1
    alerts: Counter[str] = Counter()
    for value in read_topic(bus, ALERTS.name):
        alerts[Alert.from_json(value).alert_type] += 1
    objects, samples = summarize_store(store)
    if own_bus:
        bus.close()
    store.close()
    if supervisor.failure:
        raise RuntimeError(supervisor.failure)
    return EmbeddedResult(
        time.monotonic() - started, published, dropped, done, dead, dict(tracks), dict(alerts), crops, objects, samples
    )


def _store_spooled(stores: WorkerStores, bus: Bus, timeout_s: float = 120.0) -> None:
    """Store what the workers' spools still hold before the run is reported (a short outage at the end); their
    announcements go out through a producer of the run's bus."""
    pending = {n: s for n, s in stores.spools().items() if s.pending}
    if pending:
        with bus.producer() as producer:
            for name, store in pending.items():
                store.bind_producer(producer)
                store.start()
                if not store.wait_drained(timeout_s):
                    log.error("%s: %d write(s) still spooled in %s; they are stored on the next run", name,
                              store.pending, store.spool.folder)
                store.stop()
                store.bind_producer(None)
    stores.close()


def sample_video() -> Path | None:
    """The sample video from the shared test data, when this checkout sits beside it."""
    candidate = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "vtest.avi"  # beside the checkout
    return candidate if candidate.is_file() else None


__all__ = ["EmbeddedResult", "WorkerStores", "build_pipeline", "run_embedded", "sample_video", "summarize_store"]
