"""Detect worker: frames → detector (micro-batched across cameras) → per-camera tracker → outputs.

Consumes ``tubeline.frames.v1`` in the group ``tubeline-detect`` and produces per analysed frame a
``detections.v1`` message, for vehicle and person tracks a few best-moment crops (stored in the object
store, announced on ``objects.v1``), and for every ended track a summary on ``tracks.v1``.

Before tracking, boxes of one confusable class group (car/truck/bus) that overlap strongly are reduced to
the higher-scoring one (``pipeline.tracking.suppress_confusable``): the detector's NMS is per class and
boxes one vehicle as car *and* truck, which used to start a second track. A tracked object reports its
track's voted class, so its class does not flicker between frames. Crops: the first usable moment of a
track at once, later ones only when clearly better (``crop_quality_gain``), and the last slot held for the
track's best moment, announced when the track ends (``hold_best_crop``).

Delivery: **at-least-once with deterministic replays**. Every ``commit_interval_s`` the worker flushes its
outputs, snapshots each camera's tracking state (``workers.detect.state``) and only then commits the
frames' offsets. Through a store outage crops and snapshots wait in the worker's spool on local disk (that
counts as durable) and detection goes on; a crop's ``objects.v1`` announcement is sent once the crop is
stored, so enrichment never reads a crop that is not there yet. A worker that takes over a camera (restart, crash of the previous owner, rebalance)
loads the snapshot, skips frames the snapshot already covers, and replays the rest from the same state,
so it emits the same track IDs and the same idempotency keys; downstream sees duplicates, never
different tracks. See ``docs/design/detect.md``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar

import cv2
import numpy as np

from pipeline import metrics
from pipeline.bus.base import Message, TopicPartition, TopicSpec
from pipeline.config import TubelineConfig
from pipeline.config.detect import DetectConfig
from pipeline.core import Detections
from pipeline.runtime.worker import ConsumerWorker
from pipeline.tracking import suppress_confusable
from schemas.detections import DetectedObject
from schemas.detections import Detections as DetectionsMessage
from schemas.frames import FrameHeader
from schemas.ids import stable_id
from schemas.objects import ObjectCrop
from schemas.topics import DETECTIONS, FRAMES, OBJECTS, TRACKS
from schemas.tracks import TrackSummary
from workers.detect.attributes import (
    VEHICLE_CLASSES,
    crop_box,
    crop_quality,
    crop_quality_ceiling,
    in_front,
    person_colours,
    vehicle_colour,
    vehicle_type,
)
from workers.detect.outbox import Outbox
from workers.detect.state import (
    CameraState,
    CropCandidate,
    SnapshotRefused,
    TrackRecord,
    load_snapshot,
    save_snapshot,
    snapshot_key,
)

log = logging.getLogger(__name__)


def _imdecode(value: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_COLOR)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class DetectWorker(ConsumerWorker):
    """Detects and tracks objects in frames; publishes detections, track summaries and the best object crops.

    Batching, crops and the delivery guarantee: see the module docstring.
    """

    name = "detect"
    topics: ClassVar = (FRAMES.name,)
    group: ClassVar = "tubeline-detect"

    def __init__(self, config: TubelineConfig, *, detector: Any = None, close_on_stop: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.settings: DetectConfig = config.detect
        self.detector = detector
        self.closeup_detector: Any = None  # close-up cameras' frames (detect.closeup_cameras): several views
        self.closeup_cameras: frozenset[str] = frozenset()
        self.close_on_stop = close_on_stop
        self.states: dict[str, CameraState] = {}
        self.partitions: dict[str, TopicPartition] = {}
        self.last_frame_at: dict[str, float] = {}
        self._behind: set[str] = set()  # cameras whose silence was found to be frames waiting (logged once)
        self.pending: list[Message] = []
        self.touched: set[str] = set()
        self.next_checkpoint = 0.0
        self.frames_done = 0
        self.summaries = 0
        self.crops = 0
        self.snapshots_refused = 0
        self.latencies: list[float] = []
        self.outbox: Outbox | None = None
        self._decoder: ThreadPoolExecutor | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def topic_specs(self) -> list[TopicSpec]:
        return [TopicSpec(t.name, t.partitions, t.retention_ms) for t in (FRAMES, DETECTIONS, OBJECTS, TRACKS)]

    def setup(self) -> None:
        if self.detector is None:
            from models.zoo import ModelZoo

            self.detector = ModelZoo(self.config.models).detector()
        self.closeup_cameras = frozenset(self.settings.closeup_cameras) | frozenset(self.config.plate.checkpoint_cameras)
        if self.closeup_cameras and self.closeup_detector is None:
            from models.multiview import MultiViewDetector

            # the same model session: a configured multi-view detector is unwrapped to its base
            base = getattr(self.detector, "base", self.detector)
            self.closeup_detector = MultiViewDetector(base, self.settings.closeup_views)
            log.info("close-up cameras %s: detector views %s", sorted(self.closeup_cameras),
                     list(self.settings.closeup_views))
        super().setup()
        self.outbox = Outbox(self.store, self._produce, self.settings.upload_threads)
        if self.settings.decode_threads > 0:
            self._decoder = ThreadPoolExecutor(self.settings.decode_threads, thread_name_prefix="jpeg-decode")
        self.next_checkpoint = time.monotonic() + self.settings.commit_interval_s

    def step(self) -> None:
        batch = self._poll_batch()
        self._drop_revoked()
        if batch:
            self._process(batch)
        else:
            self._close_idle()
        assert self.outbox is not None
        self.outbox.pump()
        if time.monotonic() >= self.next_checkpoint:
            self.checkpoint()

    def drain(self) -> None:
        if self.close_on_stop:
            for camera in list(self.states):
                self._close_camera(camera, "shutdown")
        self.checkpoint()
        if self.outbox is not None:
            self.outbox.close()
        if self._decoder is not None:
            self._decoder.shutdown(wait=True)

    def finished(self) -> bool:
        return False

    # -- batching --------------------------------------------------------------------------------
    def _poll_batch(self) -> list[Message]:
        size = self.settings.max_batch
        batch = self.poll(size)
        deadline = time.monotonic() + self.settings.max_wait_ms / 1000
        while batch and len(batch) < size and (remaining := deadline - time.monotonic()) > 0:
            batch += self.poll(size - len(batch), timeout=remaining)
        return batch

    def _process(self, batch: list[Message]) -> None:
        assert self.dead_letter is not None
        decoded: list[tuple[Message, FrameHeader, np.ndarray]] = []
        headed: list[tuple[Message, FrameHeader]] = []
        for message in batch:
            try:
                headed.append((message, FrameHeader.from_headers(message.headers)))
            except ValueError as exc:
                self.dead_letter.send(message, f"invalid frame headers: {exc}")
        values = [message.value for message, _ in headed]
        images = list(self._decoder.map(_imdecode, values)) if self._decoder and len(values) > 1 else \
            [_imdecode(v) for v in values]
        for (message, header), image in zip(headed, images, strict=True):
            if image is None:
                self.dead_letter.send(message, "frame value is not a decodable JPEG")
                continue
            decoded.append((message, header, image))
        results = self._detect([header.camera_id for _, header, _ in decoded], [image for _, _, image in decoded])
        done_at = time.time()
        for (message, header, image), (found, model_id) in zip(decoded, results, strict=True):
            self.partitions[header.camera_id] = message.tp
            self._handle_frame(header, image, found, model_id)
            self.latencies.append(done_at - header.captured_at.timestamp())
            metrics.FRAMES.labels(self.name, header.camera_id, "in").inc()
            metrics.STAGE_LATENCY.labels("detect").observe(max(0.0, done_at - header.captured_at.timestamp()))
        self.observe_batch(batch)
        self.latencies = self.latencies[-10_000:]
        self.pending.extend(batch)

    def _detect(self, cameras: list[str], images: list[np.ndarray]) -> list[tuple[Detections, str]]:
        """Each frame's detections and the model that made them: close-up cameras' frames through the close-up
        views, the others through the configured detector, each group as one batch."""
        out: list[tuple[Detections, str] | None] = [None] * len(images)
        close = [i for i, camera in enumerate(cameras) if camera in self.closeup_cameras]
        rest = [i for i, camera in enumerate(cameras) if camera not in self.closeup_cameras]
        for detector, rows in ((self.detector, rest), (self.closeup_detector, close)):
            if not rows:
                continue
            with metrics.timed(metrics.INFERENCE, detector.model_id):
                found = detector.detect_batch([images[i] for i in rows])
            metrics.BATCH_SIZE.labels(detector.model_id).observe(len(rows))
            for i, dets in zip(rows, found, strict=True):
                out[i] = (dets, detector.model_id)
        return [pair for pair in out if pair is not None]

    # -- one frame -------------------------------------------------------------------------------
    def _state_for(self, header: FrameHeader) -> CameraState:
        camera = header.camera_id
        state = self.states.get(camera)
        if state is not None and state.ingest_session != header.session:
            log.info("camera %s: new ingest session %s; closing the previous session's tracks", camera, header.session)
            self._close_camera(camera, "lost")
            state = None
        if state is None:
            snap = self._load_snapshot(camera)
            if snap is not None and snap.ingest_session == header.session:
                log.info("camera %s: continuing tracking state from snapshot at sequence %d", camera, snap.last_sequence)
                state = snap
            else:
                state = CameraState.new(camera, header.session, header.sequence, self.settings.tracker,
                                        self.settings.confusable_classes)
            self.states[camera] = state
        return state

    def _load_snapshot(self, camera: str) -> CameraState | None:
        """The camera's stored state when it can be used; a refused one is logged and counted (the camera then
        starts afresh with a new tracking epoch, and the next checkpoint overwrites the refused object)."""
        try:
            return load_snapshot(self.store, camera, self.settings.tracker, self.settings.confusable_classes)
        except SnapshotRefused as exc:
            self.snapshots_refused += 1
            log.error("camera %s: refused the tracking snapshot %s (%s); starting a new tracking epoch",
                      camera, snapshot_key(camera), exc)
        return None

    def _handle_frame(self, header: FrameHeader, image: np.ndarray, found: Detections,
                      model_id: str | None = None) -> None:
        s = self.settings
        state = self._state_for(header)
        if header.sequence <= state.last_sequence:
            return  # covered by the snapshot: outputs were flushed before it was written
        self.last_frame_at[header.camera_id] = time.monotonic()
        self._behind.discard(header.camera_id)
        wanted = np.array([found.class_name(i) in s.classes for i in range(len(found))], dtype=bool)
        keep = wanted & (found.confidence >= s.min_score)
        found = found[keep].clipped(image.shape[1], image.shape[0])
        if s.suppress_iou is not None:
            found = found[suppress_confusable(found, s.confusable_classes, s.suppress_iou)]
        ts = header.captured_at.timestamp()
        tracked = state.tracker.update(found, ts)
        track_of_row: dict[int, int] = {
            int(i): int(n) for i, n in zip(tracked.data["detection_index"], tracked.tracker_id, strict=True)
        }
        records = {row: self._observe_track(state, header, image, found, row, number)
                   for row, number in track_of_row.items()}
        objects = []
        for i in range(len(found)):
            record = records.get(i)
            class_id = record.class_id if record is not None else int(found.class_id[i])  # the track's vote
            objects.append(DetectedObject(
                box=tuple(round(float(v), 2) for v in found.xyxy[i]),
                class_name=self._class_name(found, class_id),
                class_id=class_id,
                score=round(float(found.confidence[i]), 4),
                track_id=record.track_id if record is not None else None,
            ))
        message = DetectionsMessage(
            camera_id=header.camera_id, session=header.session, sequence=header.sequence,
            captured_at=header.captured_at, frame_width=image.shape[1], frame_height=image.shape[0],
            model_id=model_id or self.detector.model_id, objects=tuple(objects),
        )
        self._send(DETECTIONS.name, header.camera_id, message.to_json())
        for row, record in records.items():
            self._maybe_crop(state, record, header, image, found, row)
        for closed in state.tracker.removed:
            ended = state.tracks.pop(closed.track_id, None)
            if ended is not None:
                self._emit_summary(state, ended, "lost")
        state.last_sequence = header.sequence
        self.touched.add(header.camera_id)
        self.frames_done += 1

    @staticmethod
    def _class_name(found: Detections, class_id: int) -> str:
        names = found.class_names
        return names[class_id] if 0 <= class_id < len(names) else str(class_id)

    def _observe_track(
        self, state: CameraState, header: FrameHeader, image: np.ndarray, found: Detections, row: int, number: int
    ) -> TrackRecord:
        when = header.captured_at
        box = tuple(float(v) for v in found.xyxy[row])
        record = state.tracks.get(number)
        if record is None:
            record = TrackRecord(state.track_id(number), number, when, when, image.shape[1], image.shape[0])
            state.tracks[number] = record
        elif (when - record.started_at).total_seconds() >= self.settings.max_track_s:
            self._emit_summary(state, record, "max_duration")
            record.next_segment(when)
        record.observe(when, box, int(found.class_id[row]), float(found.confidence[row]))  # type: ignore[arg-type]
        return record

    def _maybe_crop(
        self, state: CameraState, record: TrackRecord, header: FrameHeader, image: np.ndarray,
        found: Detections, row: int,
    ) -> None:
        """Announce this moment's crop, hold it for the track's end, or let it go (docs/detect.md, "Crops").

        The first usable moment is announced at once (downstream gets something early). After that a moment
        must beat the best announced by ``crop_quality_gain``; it is announced at once while more than one
        slot is left, and with ``hold_best_crop`` the last slot takes the best such moment of the rest of
        the track, held until the track ends (``_emit_summary``)."""
        s = self.settings
        if record.crops_emitted >= s.max_crops_per_track:
            return
        h, w = image.shape[:2]
        x1, y1, x2, y2 = crop_box(found.xyxy[row], w, h, s.crop_margin)
        if min(x2 - x1, y2 - y1) < s.min_crop_side:
            return
        first = record.best_crop_key is None
        hold = not first and s.hold_best_crop and record.crops_emitted >= s.max_crops_per_track - 1
        if not first:  # most moments of a track cannot win even perfectly sharp: skip the crop's sharpness
            ceiling = crop_quality_ceiling(found.xyxy[row], w, h)
            if ceiling < record.best_quality * s.crop_quality_gain or (
                    hold and record.held is not None and ceiling <= record.held.quality):
                return
        crop = image[y1:y2, x1:x2]
        quality = crop_quality(found.xyxy[row], crop, w, h)
        if not first and quality < record.best_quality * s.crop_quality_gain:
            return
        if hold and record.held is not None and quality <= record.held.quality:
            return
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, s.crop_jpeg_quality])
        if not ok:
            return
        bx1, by1, bx2, by2 = (float(v) for v in found.xyxy[row])
        inner = (bx1 - x1, by1 - y1, bx2 - x1, by2 - y1)  # the box inside the crop: its margin is background
        others = [(float(r[0]), float(r[1]), float(r[2]), float(r[3]))
                  for r in (found.xyxy[j] for j in range(len(found)) if j != row)]
        front = [(a - x1, b - y1, c - x1, d - y1) for a, b, c, d in in_front((bx1, by1, bx2, by2), others)]
        upper: str | None = None
        lower: str | None = None
        if self._class_name(found, record.class_id) in VEHICLE_CLASSES:
            colour, colour_confidence = vehicle_colour(crop, inner, occluders=front).as_tuple()
        else:
            top, bottom = person_colours(crop, inner, occluders=front)
            (colour, colour_confidence), upper, lower = top.as_tuple(), top.colour, bottom.colour
        candidate = CropCandidate(
            sequence=header.sequence, captured_at=header.captured_at,
            box=tuple(round(float(v), 2) for v in found.xyxy[row]),  # type: ignore[arg-type]
            score=round(float(found.confidence[row]), 4), quality=quality, jpeg=jpeg.tobytes(),
            colour=colour, colour_confidence=colour_confidence, upper_colour=upper, lower_colour=lower,
        )
        if hold:
            record.held = candidate
        else:
            self._announce(state, record, candidate, w, h)

    def _announce(self, state: CameraState, record: TrackRecord, crop: CropCandidate, w: int, h: int) -> None:
        """Store the crop and announce it on ``objects.v1`` under the track's voted class — once it is stored:
        through a store outage the crop and its announcement wait together in the spool."""
        day = crop.captured_at.strftime("%Y-%m-%d")
        key = f"crops/{state.camera_id}/{day}/{record.track_id}/{crop.sequence}.jpg"
        record.best_quality, record.best_crop_key = crop.quality, key
        record.colour, record.colour_confidence = crop.colour, crop.colour_confidence
        record.upper_colour, record.lower_colour = crop.upper_colour, crop.lower_colour
        record.crops_emitted += 1
        record.held = None
        names = getattr(self.detector, "class_names", ())
        class_id = record.class_id
        crop_msg = ObjectCrop(
            object_id=stable_id(record.track_id, state.ingest_session, crop.sequence),
            track_id=record.track_id, camera_id=state.camera_id, session=state.ingest_session, sequence=crop.sequence,
            captured_at=crop.captured_at, class_name=names[class_id] if 0 <= class_id < len(names) else str(class_id),
            class_id=class_id, score=crop.score, box=crop.box, frame_width=w, frame_height=h,
            quality=round(crop.quality, 4), crop_key=key,
        )
        assert self.outbox is not None  # the crop is announced only once it is stored (workers.detect.outbox)
        self.outbox.put_then_send(key, crop.jpeg, "image/jpeg",
                                  {"camera-id": state.camera_id, "track-id": record.track_id},
                                  OBJECTS.name, state.camera_id, crop_msg.to_json())
        self.crops += 1

    # -- track ends ------------------------------------------------------------------------------
    def _emit_summary(self, state: CameraState, record: TrackRecord, reason: str) -> None:
        if record.held is not None:  # the track's best moment goes out before the summary that names it
            self._announce(state, record, record.held, record.frame_w, record.frame_h)
        if not record.path:
            return
        names = getattr(self.detector, "class_names", ())
        class_id = record.class_id
        class_name = names[class_id] if 0 <= class_id < len(names) else str(class_id)
        summary = TrackSummary(
            track_id=record.track_id, segment=record.segment, camera_id=state.camera_id, class_name=class_name,
            class_id=class_id, started_at=record.started_at, ended_at=record.last_seen,
            frame_width=record.frame_w, frame_height=record.frame_h,
            path=tuple((t, round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)) for t, x1, y1, x2, y2 in record.path),
            mean_score=round(record.score_sum / max(1, record.score_count), 4),
            best_crop_key=record.best_crop_key, colour=record.colour if record.best_crop_key else "unknown",
            colour_confidence=round(record.colour_confidence, 4) if record.best_crop_key else 0.0,
            upper_colour=record.upper_colour if record.best_crop_key and class_name == "person" else None,
            lower_colour=record.lower_colour if record.best_crop_key and class_name == "person" else None,
            vehicle_type=vehicle_type(class_name), closed_reason=reason,
        )
        self._send(TRACKS.name, state.camera_id, summary.to_json())
        self.summaries += 1

    def _close_camera(self, camera: str, reason: str) -> None:
        state = self.states.get(camera)
        if state is None:
            return
        state.tracker.close_all()
        for record in list(state.tracks.values()):
            self._emit_summary(state, record, reason)
        state.tracks.clear()
        self.touched.add(camera)

    def _close_idle(self) -> None:
        """Close the tracks of cameras that sent nothing for ``idle_s``. Only of a camera whose partition this
        worker has read to its end: frames still waiting there (a backlog, a partition the consumer served
        after another) mean the camera is not silent. Closing it then split its tracks wherever this worker
        happened to fall behind, a run-to-run difference a replay from the snapshot did not repeat."""
        idle_s = max(2 * self.settings.tracker.track_buffer_s, 10.0)
        now = time.monotonic()
        assert self.consumer is not None
        for camera, state in self.states.items():
            if not state.tracks or now - self.last_frame_at.get(camera, now) <= idle_s:
                continue
            tp = self.partitions.get(camera)
            if tp is None or self.consumer.caught_up(tp):
                log.info("camera %s: no frames for %.0f s; closing %d track(s)", camera, idle_s, len(state.tracks))
                self._close_camera(camera, "lost")
            elif camera not in self._behind:
                self._behind.add(camera)
                log.info("camera %s: no frame handled for %.0f s, but frames of %s wait for this worker; its %d "
                         "track(s) stay open", camera, now - self.last_frame_at[camera], tp, len(state.tracks))

    def _drop_revoked(self) -> None:
        """Forget cameras whose partition moved to another worker (it continues from our last snapshot)."""
        if not self.partitions:
            return
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        for camera, tp in list(self.partitions.items()):
            if tp not in assigned:
                log.info("camera %s: partition %s revoked; handing over via the last snapshot", camera, tp)
                self.states.pop(camera, None)
                self.partitions.pop(camera, None)
                self.touched.discard(camera)

    # -- output and commits ------------------------------------------------------------------------
    def _send(self, topic: str, key: str, value: bytes) -> None:
        assert self.outbox is not None
        self.outbox.send(topic, key, value)

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        assert self.producer is not None
        self.producer.send(topic, value, key=key)

    def checkpoint(self) -> None:
        """Flush outputs, snapshot touched cameras, then commit the processed frames.

        Only frames of partitions still assigned are committed: their cameras were just snapshotted. A frame
        of a partition this worker is losing (or, while the group rejoins after a broker restart, has no
        assignment for) stays uncommitted, so whoever reads the partition next replays it from the last
        snapshot instead of skipping frames the snapshot does not cover."""
        assert self.producer is not None and self.consumer is not None and self.outbox is not None
        self.outbox.drain()  # every crop stored (or spooled) and every output sent before the snapshot and the commit
        self.producer.flush()
        assigned = self.consumer.assignment()
        for camera in sorted(self.touched):
            tp = self.partitions.get(camera)
            if camera in self.states and (tp is None or tp in assigned):
                save_snapshot(self.store, self.states[camera])
        covered = [m for m in self.pending if m.tp in assigned]
        if covered and self.commit(covered):
            self.processed += len(covered)
        self.pending.clear()
        self.touched.clear()
        self.next_checkpoint = time.monotonic() + self.settings.commit_interval_s
