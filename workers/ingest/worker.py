"""The ingest worker: runs every enabled camera of its shard and, when enabled, the GB/T 28181 platform.

``tubeline worker ingest`` and the embedded ``tubeline up`` both run :class:`IngestWorker`. Cameras come
from the registry (``registry/cameras/*.json``), from ``cameras.static`` in the config and from the
``cameras`` constructor argument; the registry wins on equal IDs. The registry is re-read every
``ingest.registry_refresh_s``: new cameras start, removed or disabled ones stop, changed ones restart.

Delivery: frames are best-effort by design (live video; the drop policy in
:mod:`workers.ingest.publish` decides what is lost and counts it). Status events and recordings are
produced as they happen; recordings are idempotent (keys from camera + segment start).

Outages: cameras keep running through a store outage — segments wait in the worker's spool on local disk
(:mod:`workers.ingest.recorder`), the camera list stays the last one read from the registry — and through
a broker outage (the producer keeps and resends unacknowledged messages; frames beyond its buffer are
dropped and counted). At start the worker first finishes segments a crashed run left open.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pipeline.bus.base import Bus, Producer, TopicSpec
from pipeline.cameras.registry import CameraRegistry
from pipeline.config.ingest import CameraSpec, IngestConfig
from pipeline.live.topic import TopicLiveSink, live_topic_spec
from pipeline.recordings import INDEX_HOOK, index_segment
from pipeline.runtime.worker import Worker
from pipeline.spool import spool_of
from schemas.devices import DeviceCommand
from schemas.topics import ALERTS, CAMERA_STATUS, DEVICE_COMMANDS, FRAMES
from workers.ingest.camera import CameraRunner, SourceFactory
from workers.ingest.gb28181.commands import DeviceCommands
from workers.ingest.gb28181.platform import GbPlatform
from workers.ingest.gb28181.records import download, refresh_device_spans
from workers.ingest.live import LiveSink, LiveTap
from workers.ingest.publish import DropQueue, FrameEncoder, FramePublisher
from workers.ingest.recorder import Recorder, recording_workdir, recover_segments
from workers.ingest.sources.base import Source, SourceError
from workers.ingest.sources.file import FileSource
from workers.ingest.sources.rtsp import RtspSource, TransportMemory
from workers.ingest.status import StatusReporter

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)


def in_shard(camera_id: str, index: int, count: int) -> bool:
    return count <= 1 or zlib.crc32(camera_id.encode("utf-8")) % count == index


def make_source_factory(camera: CameraSpec, ingest: IngestConfig, gb: GbPlatform | None = None) -> SourceFactory:
    """A function that builds a fresh source for ``camera`` each time the runner (re)connects."""

    memory = TransportMemory()  # RTSP: the transport that worked, kept across reconnects

    def build(stop_event: threading.Event) -> Source:
        threads = ingest.decoder_threads
        if camera.kind == "file":
            return FileSource(camera.id, camera.url, loop=camera.loop, realtime=camera.realtime,
                              decoder_threads=threads, stop_event=stop_event)
        if camera.kind == "rtsp":
            transport = camera.transport if camera.transport in ("tcp", "udp") else ingest.rtsp.transport
            return RtspSource(camera.id, camera.url, username=camera.username, password=camera.password,
                              transport=transport, fallback=ingest.rtsp.fallback, memory=memory,
                              open_timeout_s=ingest.rtsp.open_timeout_s, read_timeout_s=ingest.rtsp.read_timeout_s,
                              probe_s=ingest.rtsp.probe_s, decoder_threads=threads, stop_event=stop_event)
        if gb is None:
            msg = f"camera {camera.id} is a GB/T 28181 channel but the GB/T 28181 platform is not enabled"
            raise SourceError(msg, reason="not_found")
        return gb.source(camera, stop_event=stop_event, decoder_threads=threads)

    return build


class IngestWorker(Worker):
    """Cameras (files, RTSP, GB/T 28181) into frames, live packets, recordings and status, for this shard's cameras.

    ``cameras`` adds cameras to those of the registry and config; ``ingest_config`` replaces the
    config tree's ``ingest`` section (tests, embedding); ``tmp_dir`` holds recording segments
    while they are written (default: the spool's work folder, or the system temp folder without a spool;
    segments a crash left there are recovered at start, except in the shared system temp folder); ``live``
    receives every camera's packets for live viewing (the embedded run's in-process hub; default: the live
    topic when ``ingest.live_topic``).
    """

    name: ClassVar[str] = "ingest"

    def __init__(
        self,
        config: TubelineConfig,
        *,
        bus: Bus,
        store: ObjectStore,
        stop_event: threading.Event | None = None,
        cameras: Iterable[CameraSpec] = (),
        ingest_config: IngestConfig | None = None,
        tmp_dir: str | Path | None = None,
        live: LiveSink | None = None,
    ) -> None:
        super().__init__(config, bus=bus, store=store, stop_event=stop_event)
        self.live = live
        self.ingest = ingest_config if ingest_config is not None else config.ingest
        self.cameras_config = config.cameras
        self.extra_cameras = list(cameras)
        self.tmp_dir = tmp_dir
        self.session = uuid.uuid4().hex[:12]
        # With the configured keys: the registry opens camera passwords here (and seals what GB catalogs write).
        self.registry = CameraRegistry.from_config(store, config)
        self._registered: dict[str, CameraSpec] = {}  # the registry's cameras as last read
        if (spooled := spool_of(store)) is not None:
            spooled.register_hook(INDEX_HOOK, index_segment)
        self.recovered_segments = 0
        self.runners: dict[str, tuple[CameraSpec, CameraRunner]] = {}
        self.final_totals: dict[str, Any] = {}
        self.producer: Producer | None = None
        self.gb: GbPlatform | None = None
        self.commands: DeviceCommands | None = None
        self._next_refresh = 0.0
        self._next_stats = 0.0
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------
    def setup(self) -> None:
        if self.tmp_dir is not None or spool_of(self.store) is not None:
            self.recovered_segments = recover_segments(self.store, recording_workdir(self.store, self.tmp_dir))
        self.retry_bus("creating topics", lambda: self.bus.ensure_topics([
            TopicSpec(FRAMES.name, FRAMES.partitions, FRAMES.retention_ms),
            TopicSpec(CAMERA_STATUS.name, CAMERA_STATUS.partitions, CAMERA_STATUS.retention_ms),
            *([TopicSpec(ALERTS.name, ALERTS.partitions, ALERTS.retention_ms),
               TopicSpec(DEVICE_COMMANDS.name, DEVICE_COMMANDS.partitions, DEVICE_COMMANDS.retention_ms)]
              if self.ingest.gb28181.enabled else []),
        ]))
        self.producer = self.retry_bus("connecting the producer", self.bus.producer)
        self.producer.bind_stop(self.stop_event)
        if self.live is None and self.ingest.live_topic:
            self.retry_bus("creating the live topic", lambda: self.bus.ensure_topics([live_topic_spec()]))
            self.live = TopicLiveSink(self.producer)
        if self.ingest.gb28181.enabled:
            self.gb = GbPlatform(self.ingest.gb28181, registry=self.registry, producer=self.producer,
                                 on_channels=self._channels_changed, on_device_back=self._gb_device_back,
                                 taps=self._tap_of)
            self.gb.start()
            self.commands = DeviceCommands(self.bus, self.gb.queries, channel_device=self._gb_device_of,
                                           recordings=self._device_recordings, group=f"ingest-commands-{self.session}")
            self.commands.start()
        self.refresh()
        self._next_stats = time.monotonic() + self.ingest.stats_interval_s

    def step(self) -> None:
        self.stop_event.wait(0.2)
        now = time.monotonic()
        if now >= self._next_refresh:
            self.refresh()
        if now >= self._next_stats:
            self._next_stats = now + self.ingest.stats_interval_s
            for _, runner in list(self.runners.values()):
                if not runner.state.finished:
                    runner.report_stats()

    def finished(self) -> bool:
        """True once every camera is a file that has ended (and no GB platform is running)."""
        if self.gb is not None or not self.runners:
            return False
        return all(r.state.finished and not r.alive for _, r in self.runners.values())

    def teardown(self) -> None:
        runners = [r for _, r in self.runners.values()]
        for runner in runners:
            runner.stop_event.set()
        for runner in runners:
            runner.stop(timeout=self.config.runtime.drain_timeout_s)
        # Keep each camera's final counters for whoever reports on the run (tubeline up).
        self.final_totals = {cid: r.snapshot() for cid, (_, r) in self.runners.items()}
        self.runners.clear()
        if self.commands is not None:
            self.commands.stop()
            self.commands = None
        if self.gb is not None:
            self.gb.stop()
            self.gb = None
        if self.producer is not None:
            try:
                self.producer.flush(timeout=self.config.runtime.drain_timeout_s)
            finally:
                self.producer.close()
                self.producer = None

    # -- cameras ----------------------------------------------------------------------------------
    def wanted(self) -> dict[str, CameraSpec]:
        """Cameras this worker should run now (the registry's as last read when it cannot be read now)."""
        try:
            self._registered = {c.id: c for c in self.registry.list()}
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop cameras that are known
            log.warning("ingest: could not read the camera registry (keeping the cameras last read): %s", exc)
        merged: dict[str, CameraSpec] = {c.id: c for c in self.cameras_config.static}
        merged.update({c.id: c for c in self.extra_cameras})
        merged.update(self._registered)
        only = set(self.ingest.camera_ids)
        return {
            cid: cam for cid, cam in merged.items()
            if cam.enabled and (not only or cid in only)
            and in_shard(cid, self.ingest.shard_index, self.ingest.shard_count)
        }

    def refresh(self) -> None:
        """Start, stop and restart cameras to match :meth:`wanted`."""
        self._next_refresh = time.monotonic() + self.ingest.registry_refresh_s
        try:
            wanted = self.wanted()
        except Exception as exc:
            log.warning("ingest: could not read the camera registry (keeping current cameras): %s", exc)
            return
        with self._lock:
            for cid in [c for c in self.runners if c not in wanted or wanted[c] != self.runners[c][0]]:
                _, runner = self.runners.pop(cid)
                log.info("ingest: stopping camera %s", cid)
                runner.stop(timeout=self.config.runtime.drain_timeout_s)
            for cid, spec in wanted.items():
                if cid not in self.runners:
                    self.runners[cid] = (spec, self._start_camera(spec))

    def _start_camera(self, spec: CameraSpec) -> CameraRunner:
        assert self.producer is not None
        ing = self.ingest
        queue: DropQueue[Any] = DropQueue(ing.frame_queue_size, ing.overflow)
        publisher = FramePublisher(spec.id, self.session, self.producer, FRAMES.name,
                                   FrameEncoder(ing.resize, ing.jpeg_quality), queue)
        record = spec.record if spec.record is not None else ing.recordings.enabled
        recorder = (Recorder(spec.id, self.store, ing.recordings, tmp_dir=self.tmp_dir, block=ing.overflow == "block")
                    if record else None)
        runner = CameraRunner(
            spec.id,
            make_source_factory(spec, ing, self.gb),
            publisher=publisher,
            status=StatusReporter(spec.id, self.producer, CAMERA_STATUS.name),
            analysis_fps=spec.analysis_fps or ing.analysis_fps,
            backoff=ing.reconnect,
            recorder=recorder,
            overflow=ing.overflow,
            live=LiveTap(spec.id, self.session, self.live) if self.live is not None else None,
        )
        log.info("ingest: starting camera %s (%s)", spec.id, spec.kind)
        runner.start()
        return runner

    def _channels_changed(self, channels: list[CameraSpec]) -> None:
        """A GB/T 28181 catalog updated the registry: re-read it at the next step."""
        self._next_refresh = 0.0

    def _gb_device_back(self, device_id: str) -> None:
        """A GB/T 28181 device registered anew: its channels retry at once with their backoff reset."""
        with self._lock:
            runners = [r for spec, r in self.runners.values() if spec.kind == "gb28181" and spec.gb_device_id == device_id]
        for runner in runners:
            runner.retry_now(f"GB/T 28181 device {device_id} registered again")

    def _tap_of(self, camera_id: str) -> Any:
        """The running camera's ``add_tap`` (a superior platform forwards its live stream), or None."""
        with self._lock:
            entry = self.runners.get(camera_id)
        return entry[1].add_tap if entry is not None and entry[1].state.online else None

    def _gb_device_of(self, camera_id: str) -> str | None:
        """The online GB/T 28181 device of a channel, if it is registered here."""
        with self._lock:
            spec = self.runners[camera_id][0] if camera_id in self.runners else None
        if spec is None:
            try:
                spec = self.registry.get(camera_id)
            except Exception:  # not a known camera
                return None
        device = self.gb.devices.get(spec.gb_device_id or "") if self.gb is not None else None
        return device.device_id if device is not None and device.online and spec.kind == "gb28181" else None

    def _device_recordings(self, command: DeviceCommand, device_id: str) -> None:
        """record_info / download commands (run in their own thread by DeviceCommands)."""
        assert self.gb is not None and command.start is not None and command.end is not None
        if command.action == "record_info":
            refresh_device_spans(self.gb.queries, self.store, self.ingest.recordings.prefix, device_id,
                                 command.camera_id, command.start, command.end, tz=self.gb.tz)
        else:
            download(self.gb, self.store, self.ingest.recordings, device_id, command.camera_id, command.start,
                     command.end, tmp_dir=self.tmp_dir)

    def runner(self, camera_id: str) -> CameraRunner:
        return self.runners[camera_id][1]
