"""The quality worker (``tubeline worker quality``): frames in, camera-health events and quality alerts out.

Consumes ``tubeline.frames.v1`` in the consumer group ``tubeline-quality``. Per camera it diagnoses one
frame every ``quality.sample_interval_s`` seconds of capture time; the others are skipped before their
JPEG is decoded, so a camera costs about one small decode and ~5 ms of CPU per second. A frame larger
than ``quality.max_jpeg_bytes``, with invalid headers, or not a decodable JPEG goes to
``tubeline.frames.v1.dlq`` with the reason. The diagnosis is :class:`pipeline.quality.diagnose.CameraDiagnoser`
(hour-of-day baseline, masking, hysteresis); each transition becomes a :class:`schemas.cameras.CameraHealth`
on ``tubeline.camera-health.v1`` (``fault_started``, ``fault_ended``, ``scene_change``), and every
``quality.heartbeat_s`` of capture time a ``summary`` with the current scores and open faults. A fault in
``quality.alert_faults`` that starts raises one ``quality_fault`` alert on ``tubeline.alerts.v1`` with
``alert_id = stable_id("quality_fault", camera, fault, started_at)``: once per episode, never per frame.
The JPEG of the frame that confirmed a fault is stored at
``{thumbnail_prefix}/{camera}/{date}/{fault}-{start}.jpg`` for the daily report.

Every ``quality.housekeeping_interval_s`` the worker also raises recording-gap alerts
(:mod:`workers.quality.housekeeping`; the daily inspection reports are made beside the API).

Delivery: **at-least-once**. Per batch: diagnose → publish → flush → commit. Messages carry idempotency
keys (camera, event, fault, start) and alerts stable IDs, so a redelivered batch republishes the same
records. The diagnosis state (baselines, open faults) lives in memory: after a restart or a rebalance
a camera's baseline is learned again (hard thresholds meanwhile), and a fault still present is reported
as a new episode starting at the first frame seen after the restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

from pipeline import metrics
from pipeline.bus.base import Message, TopicSpec, dead_letter_topic
from pipeline.config.quality import QualityConfig
from pipeline.quality.diagnose import CameraDiagnoser, Sample, Transition
from pipeline.recordings import stamp
from pipeline.runtime.worker import BadMessage, ConsumerWorker
from schemas.alerts import Alert
from schemas.cameras import CameraHealth, HealthScores
from schemas.frames import FrameHeader
from schemas.ids import stable_id
from schemas.topics import ALERTS, CAMERA_HEALTH, FRAMES
from workers.quality.housekeeping import Housekeeping

if TYPE_CHECKING:
    import threading

    from pipeline.bus.base import Bus
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)

GROUP = "tubeline-quality"
EVENT_OF = {"start": "fault_started", "end": "fault_ended", "instant": "scene_change"}


@dataclass
class CameraSession:
    """What the worker keeps per camera: the diagnoser and the window since its last message."""

    diagnoser: CameraDiagnoser
    next_sample: datetime | None = None
    window_start: datetime | None = None
    sampled: int = 0
    last_summary: datetime | None = None
    epoch: float = 0.0
    thumbnails: dict[str, str] = field(default_factory=dict)


def _verdict(problems: Sequence[str]) -> str:
    if not problems:
        return "ok"
    return "failed" if {"no_signal", "freeze"} & set(problems) else "degraded"


class QualityWorker(ConsumerWorker):
    """Diagnoses sampled frames per camera; publishes camera-health events and quality-fault alerts.

    The delivery guarantee: see the module docstring.
    """

    name = "quality"
    topics: ClassVar = (FRAMES.name,)
    group: ClassVar = GROUP
    max_batch: ClassVar = 64

    def __init__(self, config: TubelineConfig, *, bus: Bus, store: ObjectStore,
                 stop_event: threading.Event | None = None, settings: QualityConfig | None = None) -> None:
        super().__init__(config, bus=bus, store=store, stop_event=stop_event)
        self.settings = settings if settings is not None else config.quality
        self.cameras: dict[str, CameraSession] = {}
        self.published = 0
        self.alerts = 0
        self.housekeeping = Housekeeping(config, store, self.settings)

    def topic_specs(self) -> Sequence[TopicSpec]:
        specs = [TopicSpec(t.name, t.partitions, t.retention_ms) for t in (FRAMES, CAMERA_HEALTH, ALERTS)]
        return [*specs, TopicSpec(dead_letter_topic(FRAMES.name), 1)]

    def step(self) -> None:
        super().step()
        if self.housekeeping.maybe_run(self._send_alert):
            assert self.producer is not None
            self.producer.flush()

    # -- frames ----------------------------------------------------------------------------------
    def handle_message(self, message: Message) -> None:
        try:
            header = FrameHeader.from_headers(message.headers)
        except ValueError as exc:
            msg = f"invalid frame headers: {exc}"
            raise BadMessage(msg) from None
        camera = header.camera_id
        metrics.FRAMES.labels(self.name, camera, "in").inc()
        session = self.cameras.get(camera)
        if session is None:
            session = self.cameras[camera] = CameraSession(CameraDiagnoser(self.settings))
        t = header.captured_at
        if session.next_sample is not None and t < session.next_sample:
            metrics.FRAMES.labels(self.name, camera, "dropped").inc()  # not sampled: never decoded
            return
        if len(message.value) > self.settings.max_jpeg_bytes:
            msg = f"frame of {len(message.value)} bytes is larger than quality.max_jpeg_bytes"
            raise BadMessage(msg)
        # The diagnosis works at 480 pixels wide: big frames are decoded at half size (JPEG DCT scaling, cheap).
        flag = cv2.IMREAD_REDUCED_COLOR_2 if header.width >= 1280 else cv2.IMREAD_COLOR
        image = cv2.imdecode(np.frombuffer(message.value, np.uint8), flag)
        if image is None:
            msg = "frame value is not a decodable JPEG"
            raise BadMessage(msg)
        session.next_sample = t + timedelta(seconds=self.settings.sample_interval_s)
        if session.window_start is None:
            session.window_start = session.last_summary = t
        sample, transitions = session.diagnoser.observe(t.timestamp(), t.hour, image)
        session.sampled += 1
        metrics.FRAMES.labels(self.name, camera, "out").inc()
        metrics.observe_latency("quality", t)
        for tr in transitions:
            self._publish_transition(camera, session, header, sample, tr, message.value)
        assert session.last_summary is not None
        if (t - session.last_summary).total_seconds() >= self.settings.heartbeat_s:
            self._publish(camera, session, t, sample, "summary")
            session.last_summary = t

    def _publish_transition(self, camera: str, session: CameraSession, header: FrameHeader, sample: Sample,
                            tr: Transition, jpeg: bytes) -> None:
        started = datetime.fromtimestamp(tr.start_s, UTC)
        ended = datetime.fromtimestamp(tr.end_s, UTC) if tr.end_s is not None else None
        thumbnail = None
        if tr.kind in ("start", "instant") and self.settings.thumbnails:
            thumbnail = self._thumbnail(camera, tr.fault, started, jpeg)
            session.thumbnails[tr.fault] = thumbnail
        elif tr.kind == "end":
            thumbnail = session.thumbnails.pop(tr.fault, None)
        self._publish(camera, session, header.captured_at, sample, EVENT_OF[tr.kind], fault=tr.fault,
                      started=started, ended=ended, score=tr.score, thumbnail=thumbnail)
        if tr.kind in ("start", "instant") and tr.fault in self.settings.alert_faults:
            self._quality_alert(camera, tr, started, thumbnail)

    def _thumbnail(self, camera: str, fault: str, started: datetime, jpeg: bytes) -> str:
        key = f"{self.settings.thumbnail_prefix}/{camera}/{started:%Y-%m-%d}/{fault}-{stamp(started)}.jpg"
        self.store.put(key, jpeg, content_type="image/jpeg")
        return key

    def _publish(self, camera: str, session: CameraSession, observed: datetime, sample: Sample, event: str, *,
                 fault: str | None = None, started: datetime | None = None, ended: datetime | None = None,
                 score: float = 0.0, thumbnail: str | None = None) -> None:
        assert self.producer is not None and session.window_start is not None
        problems = tuple(f for f, _, _ in session.diagnoser.open_faults())
        window = max(1e-3, (observed - session.window_start).total_seconds())
        message = CameraHealth(
            camera_id=camera, observed_at=observed, event=event, fault=fault, started_at=started, ended_at=ended,  # type: ignore[arg-type]
            score=round(min(1.0, max(0.0, score)), 4), window_seconds=min(window, 86400.0),
            frames_sampled=max(1, session.sampled),
            scores=HealthScores(**{f: round(v, 4) for f, v in sample.severity.items()}),
            problems=problems, verdict=_verdict(problems), thumbnail_key=thumbnail,  # type: ignore[arg-type]
        )
        self.producer.send(CAMERA_HEALTH.name, message.to_json(), key=CAMERA_HEALTH.key_for(message))
        self.published += 1
        session.window_start, session.sampled = observed, 0

    def _quality_alert(self, camera: str, tr: Transition, started: datetime, thumbnail: str | None) -> None:
        what = "scene changed (camera moved or turned)" if tr.fault == "scene_change" else tr.fault.replace("_", " ")
        alert = Alert(
            alert_id=stable_id("quality_fault", camera, tr.fault, started.isoformat()),
            alert_type="quality_fault", camera_id=camera, occurred_at=started,
            severity="high" if tr.fault in ("no_signal", "freeze", "occlusion") else "medium",
            rule_id=f"quality-{tr.fault.replace('_', '-')}",
            message=f"camera {camera}: picture fault — {what} (score {tr.score:.2f})",
            evidence_keys=(thumbnail,) if thumbnail else (),
            details={"fault": tr.fault, "score": round(tr.score, 4)},
        )
        self._send_alert(alert)

    def _send_alert(self, alert: Alert) -> None:
        assert self.producer is not None
        self.producer.send(ALERTS.name, alert.to_json(), key=ALERTS.key_for(alert))
        self.alerts += 1
