"""Synopsis worker: builds synopses requested through the object store, and one per camera per closed window.

Requests: a client (the API, ``tubeline synopsis --submit``) writes ``{request_prefix}/{id}.json``
(:func:`submit_synopsis`). Every ``worker.poll_s`` the worker lists that prefix; for each request it
writes the status ``running`` (refreshed by a heartbeat while it builds), builds with
:func:`workers.synopsis.builder.build_synopsis`, writes the status ``done`` / ``empty`` / ``failed``
(with the reason) and only then deletes the request.

Delivery: **at-least-once**. A worker that dies mid-build leaves the request; once the status's
heartbeat is older than ``worker.lease_s`` any worker builds it again. Outputs are keyed by the
request's stable ID and builds are deterministic, so a rebuild (or two workers racing) overwrites the
same objects with the same bytes. A request that fails is not retried forever: its status keeps the
request and the reason (the store's dead letter); submitting it again retries.

Tracks: the Parquet catalog (durable, written by the indexer) plus an in-memory cache fed by a consumer
of ``tubeline.tracks.v1`` / ``tubeline.plates.v1`` in a fresh group from the earliest offset (covers
what the indexer has not flushed yet); the cache forgets summaries older than ``worker.track_memory_s``.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.bus.base import Consumer, TopicSpec
from pipeline.config import TubelineConfig
from pipeline.config.synopsis import SynopsisConfig
from pipeline.runtime.worker import Worker
from pipeline.store.base import ObjectNotFound
from pipeline.synopsis.queue import submit_synopsis, synopsis_status, write_status
from pipeline.synopsis.request import (
    SynopsisRequest,
    SynopsisStatus,
    window_request,
)
from schemas.plates import PlateRead
from schemas.topics import PLATES, TRACKS
from schemas.tracks import TrackSummary
from workers.synopsis.builder import NothingToShow, build_synopsis
from workers.synopsis.sources import MemoryTrackSource, TrackSource

log = logging.getLogger(__name__)


class CombinedTrackSource:
    """Several sources as one (catalog + recent cache); duplicates are removed by the selection."""

    def __init__(self, *sources: TrackSource) -> None:
        self.sources = sources

    def tracks(self, camera_id: str, start: datetime, end: datetime) -> list[TrackSummary]:
        return [s for source in self.sources for s in source.tracks(camera_id, start, end)]

    def plates(self, camera_id: str, start: datetime, end: datetime) -> dict[str, str]:
        merged: dict[str, str] = {}
        for source in self.sources:
            merged.update(source.plates(camera_id, start, end))
        return merged


class _Heartbeat:
    """Rewrites the ``running`` status every ``interval_s`` while a build runs."""

    def __init__(self, beat: Any, interval_s: float) -> None:
        self._beat, self._interval = beat, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synopsis-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a missed heartbeat only shortens the lease
                log.warning("synopsis heartbeat failed", exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)


class SynopsisWorker(Worker):
    """Builds the synopses asked for (and those of closed windows) from recordings and tracks."""

    name = "synopsis"

    def __init__(self, config: TubelineConfig, *, source: TrackSource | None = None, settings: SynopsisConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.settings = settings or config.synopsis
        self.injected_source = source
        self.cache = MemoryTrackSource()
        self.source: TrackSource = source or self.cache
        self.consumer: Consumer | None = None
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.next_poll = 0.0
        self.built = self.empty = self.failed = 0
        self.windows_known: set[str] = set()

    def setup(self) -> None:
        if self.injected_source is not None:
            return
        from workers.synopsis.catalog import CatalogTrackSource

        catalog = CatalogTrackSource(self.store, self.config.index.catalog_prefix)
        self.source = CombinedTrackSource(catalog, self.cache)
        self.bus.ensure_topics([TopicSpec(t.name, t.partitions, t.retention_ms) for t in (TRACKS, PLATES)])
        group = f"tubeline-synopsis-cache-{uuid.uuid4().hex[:10]}"
        self.consumer = self.bus.consumer([TRACKS.name, PLATES.name], group)

    def step(self) -> None:
        self._feed_cache()
        now = time.monotonic()
        if now >= self.next_poll:
            self.next_poll = now + self.settings.worker.poll_s
            self.ensure_windows()
            self.poll_requests()
        elif self.consumer is None:
            self.stop_event.wait(min(0.2, max(0.0, self.next_poll - now)))

    def teardown(self) -> None:
        if self.consumer is not None:
            self.consumer.close()

    # -- track cache ---------------------------------------------------------------------------------
    def _feed_cache(self) -> None:
        if self.consumer is None:
            return
        batch = self.consumer.poll(timeout=min(0.5, self.config.runtime.poll_timeout_s), max_records=1000)
        for message in batch:
            try:
                if message.topic.endswith(PLATES.name):
                    self.cache.add_plate(PlateRead.from_json(message.value))
                else:
                    self.cache.add(TrackSummary.from_json(message.value))
            except ValueError:
                log.warning("synopsis: ignoring an invalid message on %s", message.topic)
        if batch:
            cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.worker.track_memory_s)
            self.cache.forget_before(cutoff)

    # -- requests ------------------------------------------------------------------------------------
    def poll_requests(self) -> int:
        """Build every pending request once; returns how many were handled."""
        handled = 0
        for info in list(self.store.list(self.settings.request_prefix + "/")):
            if self.stop_event.is_set():
                break
            if info.key.endswith(".json") and self._handle(info.key):
                handled += 1
        return handled

    def _handle(self, key: str) -> bool:
        try:
            request = SynopsisRequest.from_json(self.store.get(key))
        except ObjectNotFound:
            return False
        except ValueError as exc:
            log.warning("synopsis: invalid request %s moved aside: %s", key, exc)
            self.store.put(key.replace(self.settings.request_prefix + "/", self.settings.request_prefix + "-invalid/", 1),
                           self.store.get(key), content_type="application/json", metadata={"reason": str(exc)[:500]})
            self.store.delete(key)
            return False
        status = synopsis_status(self.store, request.camera_id, request.synopsis_id(), self.settings)
        if status is not None and status.state == "running" and status.worker != self.worker_id:
            age = (datetime.now(UTC) - status.updated_at).total_seconds()
            if age < self.settings.worker.lease_s:
                return False
            log.info("synopsis %s: lease of %s expired %.0f s ago; building it", status.synopsis_id, status.worker,
                     age - self.settings.worker.lease_s)
        self.build(request)
        self.store.delete(key)
        return True

    def build(self, request: SynopsisRequest) -> SynopsisStatus:
        """Build one request now, with status and heartbeat; never raises for a bad request."""
        now: dict[str, Any] = {"phase": "arrange", "progress": 0.0}

        def beat() -> None:
            write_status(self.store, self.settings, request, "running", worker=self.worker_id, phase=now["phase"],
                         progress=now["progress"])

        def progress(phase: str, fraction: float) -> None:
            now.update(phase=phase, progress=fraction)

        beat()
        interval = min(self.settings.worker.lease_s / 3, self.settings.worker.status_s)
        try:
            with _Heartbeat(beat, interval):
                result = build_synopsis(self.store, request, self.source, self.settings, progress=progress)
        except NothingToShow as exc:
            self.empty += 1
            return write_status(self.store, self.settings, request, "empty", worker=self.worker_id, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded in the status (the store's dead letter)
            self.failed += 1
            log.exception("synopsis %s failed", request.synopsis_id())
            return write_status(self.store, self.settings, request, "failed", worker=self.worker_id,
                                error=f"{type(exc).__name__}: {exc}")
        self.built += 1
        log.info("synopsis %s built: %s", result.synopsis_id, result.keys.video)
        return write_status(self.store, self.settings, request, "done", worker=self.worker_id)

    # -- per-window synopses -------------------------------------------------------------------------
    def window_requests(self, now: datetime | None = None) -> list[SynopsisRequest]:
        """The per-window requests that should exist by ``now`` (closed windows, newest first)."""
        w = self.settings.worker
        if not w.window_cameras:
            return []
        now = now or datetime.now(UTC)
        latest_end = math.floor((now.timestamp() - w.window_delay_s) / w.window_s) * w.window_s
        requests = []
        for back in range(w.windows_back):
            end = datetime.fromtimestamp(latest_end - back * w.window_s, tz=UTC)
            start = end - timedelta(seconds=w.window_s)
            for camera in w.window_cameras:
                requests.append(window_request(camera, start, end, min(w.window_length_s, w.window_s)))
        return requests

    def ensure_windows(self, now: datetime | None = None) -> int:
        """Submit the per-window requests that were never submitted; returns how many."""
        submitted = 0
        wanted = self.window_requests(now)
        self.windows_known &= {r.synopsis_id() for r in wanted}
        for request in wanted:
            synopsis_id = request.synopsis_id()
            if synopsis_id in self.windows_known:
                continue
            if synopsis_status(self.store, request.camera_id, synopsis_id, self.settings) is None:
                submit_synopsis(self.store, request, self.settings)
                submitted += 1
            self.windows_known.add(synopsis_id)
        return submitted
