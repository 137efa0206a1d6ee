"""The plate worker (``tubeline worker plate``): vehicle crops in, one voted plate read per vehicle out.

Consumes ``tubeline.objects.v1`` in the consumer group ``tubeline-plate``. Crops of classes not in
``plate.classes`` (persons ...) are committed and skipped; so are crops captured more than
``plate.max_lag_s`` ago (counted and logged: a worker that fell far behind catches up instead of reading
stale crops; the group only lags, ingest and detect are never held up). For each vehicle crop it fetches
the JPEG, runs the plate pipeline (:mod:`workers.plate.reading`), stores the plate's evidence crop at
``plates/{camera}/{date}/{track}/{sequence}.jpg``, and adds the read to the track's vote
(:mod:`workers.plate.voting`). When the voted plate is new or better it publishes a
:class:`schemas.plates.PlateRead` on ``tubeline.plates.v1`` (key: camera) with the next ``revision``
under the idempotency key ``{track}/plate``, and matches it against the hotlists
(:mod:`workers.plate.hotlists`, lists from :mod:`pipeline.hotlists`): each hit is an ``Alert`` (``plate_hotlist``) on ``tubeline.alerts.v1``
with ``alert_id = stable_id("plate_hotlist", list, entry, track)``, raised once per track and entry.

Delivery: **at-least-once**. Per batch: handle → flush outputs → write the touched tracks' vote state to
the store (:mod:`workers.plate.state`) → commit offsets. A crash before the commit redelivers the batch:
the state either does not know those crops yet (the same reads and revisions are published again,
identical) or already counts them (they are recognised by object ID and change nothing). A crop whose
object is missing or not an image goes to ``tubeline.objects.v1.dlq`` with the reason. The consume, skip,
fetch and commit skeleton is :class:`pipeline.runtime.crop_worker.CropWorker`, shared with the face worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

import cv2
import numpy as np

from pipeline import crops, metrics
from pipeline.bus.base import BadMessage
from pipeline.config.enrich import HotlistsConfig, PlateWorkerConfig
from pipeline.hotlists import HotlistEntry
from pipeline.runtime.crop_worker import CropWorker, CropWorkerArgs
from schemas.alerts import Alert
from schemas.frames import FrameHeader
from schemas.ids import stable_id
from schemas.plates import PlateRead
from schemas.topics import ALERTS, FRAMES, OBJECTS, PLATES
from workers.plate.checkpoint import PlateTracker, context_view
from workers.plate.hotlists import HotlistBook
from workers.plate.matching import Match
from workers.plate.reading import PlateFound, best_plate, frame_plates, region_of
from workers.plate.state import PlateStateStore
from workers.plate.voting import TrackPlates, Vote, vote

if TYPE_CHECKING:
    from pipeline.bus.base import Message
    from pipeline.config import TubelineConfig
    from pipeline.hotlists import Hotlist
    from schemas.objects import ObjectCrop

log = logging.getLogger(__name__)

GROUP = "tubeline-plate"


class PlateWorker(CropWorker[PlateWorkerConfig, TrackPlates]):
    """Reads plates on vehicle crops, votes per track, publishes plate reads and hotlist alerts."""

    name = "plate"
    group: ClassVar = GROUP
    outputs: ClassVar = (PLATES, ALERTS)

    def __init__(self, config: TubelineConfig, *, recognizer: Any = None, settings: PlateWorkerConfig | None = None,
                 hotlists: HotlistsConfig | None = None, extra_hotlists: Sequence[Hotlist] = (),
                 **kwargs: Unpack[CropWorkerArgs]) -> None:
        settings = settings or config.plate
        super().__init__(config, settings=settings, new_track=self._load_track, **kwargs)
        self.book = HotlistBook(hotlists or config.hotlists, self.store, extra=extra_hotlists)
        self.recognizer = recognizer
        self.saved = PlateStateStore(self.store, settings.state_prefix)
        self.dirty: dict[str, TrackPlates] = {}
        self.checkpoints = frozenset(settings.checkpoint_cameras)
        if self.checkpoints:
            self.topics = (OBJECTS.name, FRAMES.name)  # type: ignore[misc,assignment]  # frames: checkpoints only
        self.plate_trackers: dict[str, PlateTracker] = {}

    # -- hooks ------------------------------------------------------------------------------------
    def load_models(self) -> None:
        if self.recognizer is None:
            from models.zoo import ModelZoo

            self.recognizer = ModelZoo(self.config.models).plate_recognizer()
        self.book.refresh(force=True)

    def persist(self) -> None:
        """The touched tracks' vote state, before the batch is committed (see the module docstring)."""
        for state in self.dirty.values():
            self.saved.save(state)
        self.dirty.clear()

    def refresh(self) -> None:
        self.book.refresh()

    # -- one message ------------------------------------------------------------------------------
    def handle_message(self, message: Message) -> None:
        if message.topic == FRAMES.name:
            self._handle_frame(message)
            return
        super().handle_message(message)

    def handle_crop(self, crop: ObjectCrop, image: np.ndarray) -> None:
        where = crops.placement(crop, image, self.margin)
        day = crop.captured_at.strftime("%Y-%m-%d")
        plate_key = f"plates/{crop.camera_id}/{day}/{crop.track_id}/{crop.sequence}.jpg"
        with metrics.timed(metrics.INFERENCE, "plate-detect+read"):
            found = best_plate(self.recognizer, image, crop, where, min_confidence=self.settings.min_read_confidence,
                               margin=self.settings.plate_crop_margin, plate_key=plate_key)
        metrics.BATCH_SIZE.labels("plate-detect+read").observe(1)
        if found is None:
            self.stats["no_plate"] += 1
        else:
            self._store_evidence(found, crop.camera_id, crop.track_id)
            self.stats["reads"] += 1
        self._vote(crop.camera_id, crop.track_id, crop.object_id, crop.captured_at, found)

    # -- checkpoint frames (workers/plate/checkpoint.py) ----------------------------------------
    def _handle_frame(self, message: Message) -> None:
        """A frame of a checkpoint camera: whole-frame plate reads, each into its plate track's vote."""
        try:
            header = FrameHeader.from_headers(message.headers)
        except ValueError as exc:
            msg = f"invalid frame headers: {exc}"
            raise BadMessage(msg) from exc
        if header.camera_id not in self.checkpoints or header.sequence % self.settings.checkpoint_every_n:
            self.stats["frames_skipped"] += 1
            return
        lag = (self.clock() - header.captured_at).total_seconds()
        if self.settings.max_lag_s > 0 and lag > self.settings.max_lag_s:
            self.stats["skipped_stale"] += 1
            return
        if len(message.value) > self.settings.max_frame_bytes:
            msg = f"frame of {len(message.value)} bytes is above plate.max_frame_bytes"
            raise BadMessage(msg)
        image = cv2.imdecode(np.frombuffer(message.value, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            msg = f"frame {header.idempotency_key()} is not a decodable JPEG"
            raise BadMessage(msg)
        self.stats["frames"] += 1
        tracker = self.plate_trackers.setdefault(header.camera_id, PlateTracker(
            header.camera_id, self.settings.checkpoint_gap_s, self.book.table.canonical))
        day = header.captured_at.strftime("%Y-%m-%d")
        for number, found in enumerate(frame_plates(
                self.recognizer, image, header, min_confidence=self.settings.min_read_confidence,
                margin=self.settings.plate_crop_margin)):
            read = found.observation
            track_id = tracker.assign(np.asarray(read.plate_box), read.text, header.captured_at)
            base = f"plates/{header.camera_id}/{day}/{track_id}/{header.session}-{header.sequence}-{number}"
            context = context_view(image, read.plate_box)
            found = PlateFound(replace(read, crop_key=f"{base}.jpg", object_key=f"{base}.view.jpg"),
                               found.plate_image)
            self._store_evidence(found, header.camera_id, track_id)
            self.store.put(found.observation.object_key, crops.encode_jpeg(context, self.settings.jpeg_quality),
                           content_type="image/jpeg", metadata={"camera-id": header.camera_id, "track-id": track_id})
            self.stats["checkpoint_reads"] += 1
            self._vote(header.camera_id, track_id, read.object_id, header.captured_at, found)

    def _store_evidence(self, found: PlateFound, camera_id: str, track_id: str) -> None:
        if found.plate_image.size == 0:
            return
        self.store.put(found.observation.crop_key, crops.encode_jpeg(found.plate_image, self.settings.jpeg_quality),
                       content_type="image/jpeg", metadata={"camera-id": camera_id, "track-id": track_id})

    # -- votes ------------------------------------------------------------------------------------
    def _load_track(self, camera_id: str, track_id: str) -> TrackPlates:
        return self.saved.load(camera_id, track_id) or TrackPlates(track_id, camera_id)

    def _track(self, camera_id: str, track_id: str) -> TrackPlates:
        state = self.tracks.get(camera_id, track_id)
        if state.alias_of:
            return self.tracks.get(camera_id, state.alias_of)
        return state

    def _vote(self, camera_id: str, track_id: str, object_id: str, captured_at: datetime,
              found: PlateFound | None) -> None:
        self.tracks.observe(camera_id, captured_at)
        own = self.tracks.get(camera_id, track_id)
        state = self._track(camera_id, track_id)
        read = found.observation if found else None
        if not state.add(read, object_id, captured_at, self.settings.max_reads_per_track):
            self.stats["redelivered"] += 1
            return
        self.dirty[state.track_id] = state
        if read is None:
            return
        voted = vote(state.reads)
        if voted is None:
            return
        if state is own and own.revision < 0:
            state = self._maybe_alias(own, voted)
            voted = vote(state.reads) or voted
        if state.is_better(voted, self.settings.min_improvement):
            self._publish(state, voted)

    def _maybe_alias(self, state: TrackPlates, voted: Vote) -> TrackPlates:
        """A new track that reads the plate an earlier track of the camera published moments ago is the same
        vehicle (the detector's duplicate or a fragmented track): fold its reads into that track."""
        window = self.settings.dedupe_window_s
        if window <= 0 or state.last_seen is None:
            return state
        canonical = self.book.table.canonical(voted.text)
        for other in self.tracks.of_camera(state.camera_id):
            if other is state or other.revision < 0 or other.alias_of or other.last_seen is None:
                continue
            if self.book.table.canonical(other.published_text) != canonical:
                continue
            if abs((state.last_seen - other.last_seen).total_seconds()) > window:
                continue
            log.info("plate: track %s reads %s like track %s; counting it as the same vehicle",
                     state.track_id, voted.text, other.track_id)
            state.alias_of = other.track_id
            for read in state.reads:
                other.add(read, read.object_id, read.captured_at, self.settings.max_reads_per_track)
            self.dirty[state.track_id] = state
            self.dirty[other.track_id] = other
            self.stats["merged_tracks"] += 1
            return other
        return state

    # -- outputs ----------------------------------------------------------------------------------
    def _publish(self, state: TrackPlates, voted: Vote) -> None:
        assert self.producer is not None
        revision = state.published(voted)
        evidence = voted.evidence
        read = PlateRead(
            read_id=f"{state.track_id}.plate.{revision}", track_id=state.track_id, camera_id=state.camera_id,
            captured_at=evidence.captured_at, text=voted.text, char_confidences=voted.char_confidences,
            confidence=voted.confidence, plate_box=evidence.plate_box, crop_key=evidence.crop_key,
            region=region_of(voted.text), plate_kind=evidence.kind,  # type: ignore[arg-type]
            model_id=self.recognizer.model_id, votes=voted.votes, revision=revision,
        )
        self.producer.send(PLATES.name, read.to_json(), key=state.camera_id)
        self.stats["published"] += 1
        log.debug("plate: track %s revision %d: %s (%.2f, %d votes)", state.track_id, revision, read.text,
                  read.confidence, read.votes)
        if read.confidence >= self.book.config.min_confidence:
            for hotlist, entry, match in self.book.match(read.text):
                self._alert(state, read, evidence.object_key, hotlist, entry, match)

    def _alert(self, state: TrackPlates, read: PlateRead, vehicle_key: str, hotlist: Hotlist, entry: HotlistEntry,
               match: Match) -> None:
        assert self.producer is not None
        alert_id = stable_id("plate_hotlist", hotlist.name, entry.plate, state.track_id)
        if alert_id in state.alerted:
            return
        state.alerted.add(alert_id)
        self.dirty[state.track_id] = state
        alert = Alert(
            alert_id=alert_id, alert_type="plate_hotlist", camera_id=read.camera_id, occurred_at=read.captured_at,
            severity=hotlist.severity, rule_id=hotlist.rule_id(), track_id=read.track_id,
            message=f"Plate {read.text} matches {entry.plate} on hotlist '{hotlist.name}' ({match.kind})"[:500],
            evidence_keys=(read.crop_key, vehicle_key),
            details={
                "hotlist": hotlist.name, "reason": hotlist.reason[:1000], "owner": hotlist.owner,
                "matched": entry.plate, "note": entry.note, "plate": read.text, "match_kind": match.kind,
                "match_cost": round(match.cost, 4), "confidence": read.confidence, "revision": read.revision,
            },
        )
        self.producer.send(ALERTS.name, alert.to_json(), key=read.camera_id)
        self.stats["alerts"] += 1
        log.info("alert plate_hotlist %s camera %s: %s", hotlist.severity, read.camera_id, alert.message)

