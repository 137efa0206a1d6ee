"""The embedded pipeline: every worker in one process over one bus and store.

``tubeline up`` runs this on the in-memory bus and the local-folder store by default
(no broker, no S3 server), or on whatever backends the configuration names. It is
the same worker code as the distributed deployment, wired by a
:class:`pipeline.runtime.supervisor.Supervisor`: ingest publishes frames, the
downstream workers consume them, and the run ends when the source files are done
and every downstream worker has caught up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.bus import open_bus
from pipeline.config import TubelineConfig
from pipeline.config.ingest import CameraSpec
from pipeline.runtime.supervisor import Supervisor
from pipeline.store import ObjectStore, open_store
from workers.framestore import FrameStoreWorker
from workers.ingest.worker import IngestWorker

log = logging.getLogger(__name__)


@dataclass
class EmbeddedResult:
    elapsed_s: float
    frames_published: int
    frames_dropped: int
    frames_stored: int
    dead_letters: int
    objects: dict[str, tuple[int, int]] = field(default_factory=dict)  # top-level prefix -> (count, bytes)
    sample_keys: list[str] = field(default_factory=list)


def summarize_store(store: ObjectStore, prefixes: tuple[str, ...] = ("frames/", "recordings/", "registry/")) -> tuple[dict[str, tuple[int, int]], list[str]]:
    summary: dict[str, tuple[int, int]] = {}
    samples: list[str] = []
    for prefix in prefixes:
        count = size = 0
        for info in store.list(prefix):
            count += 1
            size += info.size
            if count <= 2:
                samples.append(info.key)
        summary[prefix.rstrip("/")] = (count, size)
    return summary, samples


def run_embedded(
    config: TubelineConfig,
    cameras: list[CameraSpec],
    *,
    timeout_s: float = 1800.0,
    progress: Callable[[str], None] | None = None,
) -> EmbeddedResult:
    """Run ingest → frame store on ``cameras`` (files) until done; return what was stored."""
    bus = open_bus(config)
    store = open_store(config)
    supervisor = Supervisor(
        restart_budget=config.runtime.restart_budget, restart_window_s=config.runtime.restart_window_s
    )
    supervisor.add("framestore", lambda stop: FrameStoreWorker(config, bus=bus, store=store, stop_event=stop))
    supervisor.add(
        "ingest", lambda stop: IngestWorker(config, bus=bus, store=store, stop_event=stop, cameras=cameras)
    )
    started = time.monotonic()
    supervisor.start()
    last_report = 0.0

    def counts() -> tuple[int, int, int]:
        workers = supervisor.workers()
        ingest = workers.get("ingest")
        sink = workers.get("framestore")
        published = dropped = 0
        if isinstance(ingest, IngestWorker):
            for _, runner in list(ingest.runners.values()):
                snap = runner.snapshot()
                published += snap.frames_out
                dropped += snap.dropped
        stored = sink.processed if isinstance(sink, FrameStoreWorker) else 0
        return published, dropped, stored

    def done() -> bool:
        nonlocal last_report
        ingest = supervisor.workers().get("ingest")
        published, _, stored = counts()
        now = time.monotonic()
        if progress and now - last_report >= 2.0:
            last_report = now
            progress(f"{now - started:6.1f}s  frames published {published}, stored {stored}")
        if now - started > timeout_s:
            log.error("embedded run timed out after %.0f s", timeout_s)
            return True
        return ingest is not None and ingest.finished() and stored >= published

    try:
        supervisor.run_until(done)
    finally:
        published, dropped, _ = counts()
        supervisor.stop(timeout=config.runtime.drain_timeout_s + 30)
    sink = supervisor.workers().get("framestore")
    stored = sink.processed if isinstance(sink, FrameStoreWorker) else 0
    dead = sink.dead_letter.count if isinstance(sink, FrameStoreWorker) and sink.dead_letter else 0
    objects, samples = summarize_store(store)
    bus.close()
    store.close()
    if supervisor.failure:
        raise RuntimeError(supervisor.failure)
    return EmbeddedResult(time.monotonic() - started, published, dropped, stored, dead, objects, samples)


def sample_video() -> Path | None:
    """The sample video from the shared test data, when this checkout sits beside it."""
    candidate = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "vtest.avi"
    return candidate if candidate.is_file() else None


__all__ = ["EmbeddedResult", "run_embedded", "sample_video", "summarize_store"]
