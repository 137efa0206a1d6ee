"""One camera's ingest: the reader thread, reconnects with backoff, and the hand-off to publisher and recorder.

The reader thread opens the source, decodes every packet, offers each packet to the recorder and each
sampled frame to the publisher's bounded queue (see :mod:`workers.ingest.publish` for the drop policy).
When the source fails it reports ``offline`` with the reason, waits a capped exponential backoff with
full jitter and reopens (``reconnecting`` events). A file that reaches its end without looping finishes
the camera.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config.ingest import BackoffConfig
from workers.ingest.live import LiveTap
from workers.ingest.publish import FramePublisher, Sampler
from workers.ingest.recorder import Recorder
from workers.ingest.sources.base import DecodedFrame, Source, SourceError, SourceItem, StreamInfo
from workers.ingest.status import StatusReporter, Totals

log = logging.getLogger(__name__)

_RANDOM = random.Random()

SourceFactory = Callable[[threading.Event], Source]


def backoff_delay(attempt: int, config: BackoffConfig, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with jitter: uniform(0.5, 1) × min(max, initial × 2^attempt)."""
    ceiling = min(config.max_s, config.initial_s * (2 ** min(attempt, 30)))
    return ceiling * (rng or _RANDOM).uniform(0.5, 1.0)


@dataclass
class CameraState:
    """What the runner knows about its camera right now (read by the worker and tests)."""

    online: bool = False
    finished: bool = False
    attempts: int = 0
    last_reason: str | None = None
    last_error: str = ""
    opens: int = 0
    retry_in_s: float | None = None  # the backoff delay of the latest retry
    first_frame_s: float | None = None  # time to first frame of the latest session (open → first decoded frame)


class CameraRunner:
    """Runs one camera until stopped: source → decode → sample → publisher / recorder."""

    def __init__(
        self,
        camera_id: str,
        source_factory: SourceFactory,
        *,
        publisher: FramePublisher,
        status: StatusReporter,
        analysis_fps: float,
        backoff: BackoffConfig,
        recorder: Recorder | None = None,
        overflow: str = "drop_oldest",
        live: LiveTap | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._factory = source_factory
        self.publisher = publisher
        self.status = status
        self.recorder = recorder
        self.live = live
        self.analysis_fps = analysis_fps
        self.backoff = backoff
        self.overflow = overflow
        self.stop_event = threading.Event()
        self._wake = threading.Event()  # set by stop() and retry_now(): ends a backoff wait early
        self._retry_now = False
        self.state = CameraState()
        self.totals = Totals()
        self._source: Source | None = None
        self._opening_since = time.monotonic()
        self._offline_reason: str | None = None
        self._source_stats_base = (0, 0, 0)
        self._taps: list[Callable[[SourceItem, StreamInfo], None]] = []  # e.g. a superior platform's live stream
        self._thread = threading.Thread(target=self._run, name=f"ingest-{camera_id}", daemon=True)

    # -- control ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.publisher.start()
        if self.recorder is not None:
            self.recorder.start()
        self._thread.start()

    def add_tap(self, tap: Callable[[SourceItem, StreamInfo], None]) -> Callable[[], None]:
        """Also hand each encoded packet (with the stream's info) to ``tap``, in the reader thread: it must be quick
        and never block. Returns the function that removes it."""
        self._taps = [*self._taps, tap]

        def remove() -> None:
            self._taps = [t for t in self._taps if t is not tap]

        return remove

    def retry_now(self, why: str) -> None:
        """The source is reachable again (a GB/T 28181 device registered anew): end a backoff wait now and
        start the next attempt with the backoff reset. A session that is running is not disturbed."""
        log.info("camera %s: %s: retrying now", self.camera_id, why)
        self._retry_now = True
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading, let the publisher and recorder finish what is queued (bounded by ``timeout``)."""
        self.stop_event.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("camera %s: reader did not stop within %.1f s", self.camera_id, timeout)
        self.publisher.close(timeout)
        if self.recorder is not None:
            self.recorder.close(timeout=max(timeout, 30.0))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> Totals:
        """Cumulative counters, including those of the current source session."""
        totals = Totals(**vars(self.totals))
        src = self._source
        if src is not None:
            _add_source_stats(totals, src)
        totals.frames_out = self.publisher.counters.published
        totals.dropped = self.publisher.queue.dropped
        totals.record_drops = self.recorder.dropped if self.recorder is not None else 0
        return totals

    def report_stats(self) -> None:
        self.status.stats(self.snapshot())

    # -- reader thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        try:
            while not self.stop_event.is_set():
                try:
                    delivered_s = self._session()
                except Exception as exc:  # a bug, not a camera problem: report it, retry like any failure
                    log.exception("camera %s: reader failed", self.camera_id)
                    self.state.last_reason, self.state.last_error = "error", f"internal error: {exc}"
                    self._went_offline("error", self.state.last_error, force=True)
                    delivered_s = 0.0
                if self.state.finished or self.stop_event.is_set():
                    break
                if delivered_s >= self.backoff.reset_after_s:
                    attempt = 0
                if self._retry_now:
                    attempt = 0
                delay = 0.0 if self._retry_now else backoff_delay(attempt, self.backoff)
                self._retry_now = False
                attempt += 1
                self.state.attempts += 1
                self.state.retry_in_s = delay
                self.status.event(
                    "reconnecting", self.state.last_reason, self.state.last_error,
                    attempt=attempt, retry_in_s=delay,
                )
                self._wait(delay)
                if self._retry_now:
                    attempt, self._retry_now = 0, False
        except Exception:  # never let the reader thread die silently
            log.exception("camera %s: reader crashed", self.camera_id)
        if not self.state.finished and self.state.online:
            self._went_offline("stopped", "ingest stopped")

    def _wait(self, delay: float) -> None:
        """Sleep ``delay`` seconds unless stopped or told to retry now."""
        self._wake.clear()
        if not self._retry_now and not self.stop_event.is_set():
            self._wake.wait(delay)

    def _session(self) -> float:
        """Open the source and read it until it ends or fails; returns seconds it delivered frames."""
        delivered_since: float | None = None
        source: Source | None = None
        self._opening_since = time.monotonic()
        try:
            source = self._factory(self.stop_event)
            self._source = source
            info = source.open()
            self.state.opens += 1
            if self.recorder is not None:
                self.recorder.begin(info)
            if self.live is not None:
                self.live.begin(info)
            delivered_since = self._read(source, info)
            if not source.live and not self.stop_event.is_set():
                self.state.finished = True
                self._went_offline("eof", _eof_detail(source))
            elif not self.stop_event.is_set():
                self.state.last_reason, self.state.last_error = "eof", "stream ended"
                self._went_offline("eof", "stream ended")
        except SourceError as exc:
            self.state.last_reason, self.state.last_error = exc.reason, str(exc)
            log.warning("camera %s: %s", self.camera_id, exc)
            self._went_offline(exc.reason, str(exc), force=True)
        finally:
            if source is not None:
                self._absorb(source)
                source.close()
            self._source = None
            if self.live is not None:
                self.live.end()
            if self.recorder is not None:
                self.recorder.end()
        return 0.0 if delivered_since is None else time.monotonic() - delivered_since

    def _read(self, source: Source, info: StreamInfo) -> float | None:
        sampler = Sampler(self.analysis_fps)
        queue = self.publisher.queue
        first: float | None = None
        for item in source.items():
            if self.live is not None:
                self.live.offer(item)  # before the recorder's thread may touch the packet
            if self.recorder is not None and item.packet is not None:
                self.recorder.offer(item)
            for tap in self._taps:
                try:
                    tap(item, info)
                except Exception:  # a consumer's bug must not stop the camera
                    log.exception("camera %s: a stream tap failed; removing it", self.camera_id)
                    self._taps = [t for t in self._taps if t is not tap]
            for frame in item.frames:
                if first is None:
                    first = time.monotonic()
                    self._came_online(source, info)
                if sampler.take(frame.pts):
                    entry: tuple[DecodedFrame, str] = (frame, info.codec)
                    if not queue.put(entry, self.stop_event):
                        break
            if self.stop_event.is_set():
                break
        return first

    def _absorb(self, source: Source) -> None:
        """Move a finished source session's counters into the camera's totals."""
        _add_source_stats(self.totals, source)
        source.stats.frames_decoded = source.stats.bytes = source.stats.decode_errors = 0
        for name in _RTP_COUNTERS.values():
            source.stats.extra.pop(name, None)

    def _came_online(self, source: Source, info: StreamInfo) -> None:
        self._retry_now = False  # a request to retry that came while this session opened is fulfilled
        self.state.online = True
        self._offline_reason = None
        self.state.last_reason = None
        ttff = time.monotonic() - self._opening_since
        self.state.first_frame_s = ttff
        self.status.event("online", None, f"{source.describe()} {info.codec} {info.width}x{info.height}, "
                          f"first frame after {ttff:.2f} s", first_frame_s=ttff)

    def _went_offline(self, reason: str, detail: str, *, force: bool = False) -> None:
        """Report offline once per outage (again only if the reason changes); retries say ``reconnecting``."""
        if self.state.online or self.state.finished or (force and reason != self._offline_reason):
            self.status.event("offline", reason, detail)
            self._offline_reason = reason
        self.state.online = False


_RTP_COUNTERS = {"rtp_received": "rtp_received", "rtp_lost": "rtp_lost", "rtp_reordered": "rtp_reordered"}


def _add_source_stats(totals: Totals, source: Source) -> None:
    stats = source.stats
    totals.frames_in += stats.frames_decoded
    totals.packets_in += stats.packets
    totals.bytes_in += stats.bytes
    totals.decode_errors += stats.decode_errors
    for field, name in _RTP_COUNTERS.items():
        setattr(totals, field, getattr(totals, field) + stats.extra.get(name, 0))


def _eof_detail(source: Source) -> str:
    errors = source.stats.decode_errors + source.stats.extra.get("read_errors", 0)
    detail = f"end of file after {source.stats.frames_decoded} frames"
    if errors:
        detail += f" ({errors} damaged packets or read errors: the file may be truncated)"
    return detail
