"""The face worker (``tubeline worker face``): person crops in, a few good, diverse faces per track out.

Consumes ``tubeline.objects.v1`` in the consumer group ``tubeline-face``. Crops of classes other than
``face.classes`` are committed and skipped, as are person boxes shorter than ``face.min_person_height_px``
(their face could never pass the size gate) and crops captured more than ``face.max_lag_s`` ago (counted
and logged; the group lags, ingest and detect are never held up). For each remaining crop it detects
faces in the crop, keeps the best face belonging to the person (centre inside the person box, upper
part), applies the quality gates (:mod:`workers.face.quality`), and — when the track should publish it
(first good face, a clearly better one, or a clearly different view; at most ``max_faces_per_track``) —
aligns it, embeds it, stores the aligned chip at ``faces/{camera}/{date}/{track}/{sequence}.jpg`` and
publishes a :class:`schemas.faces.FaceRecord` on ``tubeline.faces.v1`` (key: camera).

Delivery: **at-least-once**. Per batch: handle → flush outputs → write the touched tracks' state to the
store (:mod:`workers.face.state`: the faces each published, the crops it considered) → commit offsets.
``face_id`` is ``{track}.face.{sequence}``, so a redelivered crop republishes the same record at most; a
worker that meets a track it does not hold (restart, rebalance, eviction from the bounded in-memory table,
:class:`pipeline.tracking.table.TrackTable`) loads the track's state first, so it publishes the faces an
uninterrupted worker would have and no others. A crop whose object is missing or not an image goes to
``tubeline.objects.v1.dlq`` with the reason.
The consume, skip, fetch and commit skeleton is :class:`pipeline.runtime.crop_worker.CropWorker`, shared
with the plate worker.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

import numpy as np

from models.faces.alignment import align
from pipeline import crops, metrics
from pipeline.config.enrich import FaceWorkerConfig
from pipeline.runtime.crop_worker import CropWorker, CropWorkerArgs
from schemas.faces import FaceEmbedding, FaceRecord
from schemas.objects import ObjectCrop
from schemas.topics import FACES
from workers.face.quality import FaceMeasures, TrackFaces, failed_gate, reason_to_publish, wire_quality
from workers.face.state import FaceStateStore

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig
    from pipeline.core import Detections

log = logging.getLogger(__name__)

GROUP = "tubeline-face"
HEAD_SHARE = 0.6  # a person's face sits in the upper 60 % of the person box


def measures(faces: Detections, i: int) -> FaceMeasures:
    d = faces.data
    return FaceMeasures(
        detection=float(faces.confidence[i]), eye_distance=float(d["eye_distance"][i]),
        sharpness=float(d["sharpness"][i]), yaw=float(d["yaw"][i]), pitch=float(d["pitch"][i]),
        roll=float(d["roll"][i]), quality=float(d["quality"][i]),
    )


def person_face(faces: Detections, person_box: np.ndarray) -> int | None:
    """The row of the face that belongs to the person (centre in the box's upper part), best quality first."""
    x1, y1, x2, y2 = (float(v) for v in person_box)
    head_bottom = y1 + HEAD_SHARE * (y2 - y1)
    best, best_key = None, (-1.0, -1.0)
    for i in range(len(faces)):
        fx1, fy1, fx2, fy2 = (float(v) for v in faces.xyxy[i])
        cx, cy = (fx1 + fx2) / 2, (fy1 + fy2) / 2
        if not (x1 <= cx <= x2 and y1 <= cy <= head_bottom):
            continue
        key = (float(faces.data["quality"][i]), (fx2 - fx1) * (fy2 - fy1))
        if key > best_key:
            best, best_key = i, key
    return best


class FaceWorker(CropWorker[FaceWorkerConfig, TrackFaces]):
    """Detects, gates, embeds and publishes the faces of person tracks."""

    name = "face"
    group: ClassVar = GROUP
    outputs: ClassVar = (FACES,)

    def __init__(self, config: TubelineConfig, *, analyzer: Any = None, settings: FaceWorkerConfig | None = None,
                 **kwargs: Unpack[CropWorkerArgs]) -> None:
        super().__init__(config, settings=settings or config.face,
                         new_track=lambda camera, track: self.saved.load(camera, track) or TrackFaces(track, camera),
                         **kwargs)
        self.analyzer = analyzer
        self.saved = FaceStateStore(self.store, self.settings.state_prefix)
        self.dirty: dict[str, TrackFaces] = {}

    # -- hooks ------------------------------------------------------------------------------------
    def load_models(self) -> None:
        if self.analyzer is None:
            from models.zoo import ModelZoo

            self.analyzer = ModelZoo(self.config.models).face_analyzer()

    def skip(self, crop: ObjectCrop) -> str | None:
        """Person boxes too short for their face to pass the size gate."""
        return "skipped_small" if crop.box[3] - crop.box[1] < self.settings.min_person_height_px else None

    def persist(self) -> None:
        """The touched tracks' state (the faces each published, the crops it considered), before the commit."""
        for track in self.dirty.values():
            self.saved.save(track)
        self.dirty.clear()

    # -- one crop ---------------------------------------------------------------------------------
    def handle_crop(self, crop: ObjectCrop, image: np.ndarray) -> None:
        self.tracks.observe(crop.camera_id, crop.captured_at)
        track = self.tracks.get(crop.camera_id, crop.track_id)
        if crop.object_id in track.seen:
            self.stats["redelivered"] += 1
            return
        track.last_seen = crop.captured_at if track.last_seen is None else max(track.last_seen, crop.captured_at)
        if track.full(self.settings):
            self.stats["track_full"] += 1
            return
        track.seen.add(crop.object_id)
        self.dirty[track.track_id] = track
        self._consider(crop, image, track)

    def _consider(self, crop: ObjectCrop, image: np.ndarray, track: TrackFaces) -> None:
        where = crops.placement(crop, image, self.margin)
        with metrics.timed(metrics.INFERENCE, "face-detect"):
            faces = self.analyzer.analyze(image, embed=False)
        metrics.BATCH_SIZE.labels("face-detect").observe(1)
        person = np.asarray(crop.box, dtype=np.float64) - np.array([where.x, where.y, where.x, where.y])
        row = person_face(faces, person) if len(faces) else None
        if row is None:
            self.stats["no_face"] += 1
            return
        face = measures(faces, row)
        gate = failed_gate(face, self.settings)
        if gate is not None:
            self.stats[f"gate_{gate}"] += 1
            return
        early = reason_to_publish(track, face.quality, None, self.settings)
        if early is None and self.settings.max_similarity <= -1.0:  # nothing can be "different enough"
            self.stats["not_better"] += 1
            return
        embedder = self.analyzer.embedder
        chip = align(image, faces.data["landmarks"][row], embedder.template, embedder.chip_size)
        with metrics.timed(metrics.INFERENCE, "face-embed"):
            embedding = embedder.embed_chips([chip])[0]
        metrics.BATCH_SIZE.labels("face-embed").observe(1)
        self.stats["embedded"] += 1
        reason = reason_to_publish(track, face.quality, embedding, self.settings)
        if reason is None:
            self.stats["not_better"] += 1
            return
        self._publish(crop, track, faces, row, face, chip, embedding, where)
        self.stats[f"published_{reason}"] += 1

    def _publish(self, crop: ObjectCrop, track: TrackFaces, faces: Detections, row: int, face: FaceMeasures,
                 chip: np.ndarray, embedding: np.ndarray, where: crops.CropPlacement) -> None:
        assert self.producer is not None
        embedder = self.analyzer.embedder
        day = crop.captured_at.strftime("%Y-%m-%d")
        key = f"faces/{crop.camera_id}/{day}/{crop.track_id}/{crop.sequence}.jpg"
        self.store.put(key, crops.encode_jpeg(chip, self.settings.jpeg_quality), content_type="image/jpeg",
                       metadata={"camera-id": crop.camera_id, "track-id": crop.track_id})
        template_eyes = float(np.linalg.norm(embedder.template[1] - embedder.template[0]))
        landmarks = where.to_frame(np.asarray(faces.data["landmarks"][row], dtype=np.float64))
        landmarks = np.clip(landmarks, 0, [crop.frame_width, crop.frame_height])
        values = np.clip(np.asarray(embedding, dtype=np.float64), -1.0, 1.0)
        record = FaceRecord(
            face_id=f"{crop.track_id}.face.{crop.sequence}", track_id=crop.track_id, camera_id=crop.camera_id,
            captured_at=crop.captured_at,
            embedding=FaceEmbedding(model_id=embedder.model_id, dimension=len(values),
                                    values=tuple(round(float(v), 6) for v in values)),
            quality=wire_quality(face, chip, template_eyes), crop_key=key,
            box=crops.clip_box(where.to_frame(faces.xyxy[row]), crop.frame_width, crop.frame_height),
            landmarks=tuple((round(float(x), 2), round(float(y), 2)) for x, y in landmarks),  # type: ignore[arg-type]
        )
        self.producer.send(FACES.name, record.to_json(), key=crop.camera_id)
        track.add(face.quality, embedding)
        log.debug("face: track %s published face %s (quality %.2f)", crop.track_id, record.face_id, face.quality)
