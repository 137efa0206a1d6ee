"""Synthetic catalog records (tracks, plates, faces, alerts, camera status) and face vectors.

Used by the search benchmarks and by the indexer/search tests. Faces are drawn as identities:
each person has a random unit "centre" and each face of the person is the centre plus Gaussian
noise, renormalised — the clustered structure real face embeddings have (random unit vectors
with no structure are the worst case for IVF and say little about recall on faces).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from schemas.alerts import Alert
from schemas.cameras import CameraStats, CameraStatus
from schemas.faces import FaceEmbedding, FaceQuality, FaceRecord
from schemas.plates import PlateRead
from schemas.tracks import TrackSummary

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on Chinese plates
ALNUM = LETTERS + "0123456789"


def random_plate(rng: np.random.Generator) -> str:
    """A plausible blue Chinese plate: province, letter, five letters or digits."""
    return (PROVINCES[rng.integers(len(PROVINCES))] + LETTERS[rng.integers(len(LETTERS))]
            + "".join(ALNUM[i] for i in rng.integers(len(ALNUM), size=5)))


def track(
    camera_id: str,
    number: int,
    started_at: datetime,
    *,
    seconds: float = 4.0,
    class_name: str = "car",
    vehicle_type: str | None = "car",
    colour: str = "white",
    upper: str | None = None,
    lower: str | None = None,
    session: str = "s0",
    segment: int = 0,
) -> TrackSummary:
    """A closed track moving left to right across a 1280×720 frame."""
    steps = 5
    path = tuple(
        (round(seconds * i / (steps - 1), 3), 100.0 + 150 * i, 300.0, 300.0 + 150 * i, 450.0 + 10 * i)
        for i in range(steps)
    )
    track_id = f"{camera_id}:{session}:{number}"
    return TrackSummary(
        track_id=track_id, segment=segment, camera_id=camera_id, class_name=class_name,
        class_id=0 if class_name == "person" else 2, started_at=started_at,
        ended_at=started_at + timedelta(seconds=seconds), frame_width=1280, frame_height=720, path=path,
        mean_score=0.8, best_crop_key=f"crops/{camera_id}/{started_at:%Y-%m-%d}/{track_id}/1.jpg",
        colour=colour, colour_confidence=0.7 if colour != "unknown" else 0.0, vehicle_type=vehicle_type,
        upper_colour=upper, lower_colour=lower,  # type: ignore[arg-type]
        closed_reason="lost",
    )


def plate(t: TrackSummary, text: str, *, revision: int = 0, confidence: float = 0.9) -> PlateRead:
    """The plate read of a vehicle track, captured one second into the track."""
    captured = t.started_at + timedelta(seconds=1)
    return PlateRead(
        read_id=f"{t.track_id}.plate.{revision}", track_id=t.track_id, camera_id=t.camera_id, captured_at=captured,
        text=text, char_confidences=tuple([confidence] * len(text)), confidence=confidence,
        plate_box=(500.0, 430.0, 590.0, 458.0), crop_key=f"plates/{t.camera_id}/{captured:%Y-%m-%d}/{t.track_id}/{revision}.jpg",
        region="cn", plate_kind="blue", model_id="plate-reader-cn@1", votes=3, revision=revision,
    )


def face(
    t: TrackSummary, sequence: int, vector: np.ndarray, *, model_id: str = "arcface-r50@1", seconds: float = 1.0
) -> FaceRecord:
    """A face of a person track with the given embedding (normalised here)."""
    v = np.asarray(vector, dtype=np.float64)
    v = v / np.linalg.norm(v)
    captured = t.started_at + timedelta(seconds=seconds)
    return FaceRecord(
        face_id=f"{t.track_id}.face.{sequence}", track_id=t.track_id, camera_id=t.camera_id, captured_at=captured,
        embedding=FaceEmbedding(model_id=model_id, dimension=len(v), values=tuple(float(x) for x in v)),
        quality=FaceQuality(score=0.8, sharpness=0.8, brightness=0.9, frontality=0.9, resolution=1.0, detection=0.95),
        crop_key=f"faces/{t.camera_id}/{captured:%Y-%m-%d}/{t.track_id}/{sequence}.jpg",
        box=(110.0, 205.0, 134.0, 236.0),
        landmarks=((117.0, 216.0), (128.0, 216.5), (122.5, 223.0), (118.0, 229.0), (127.5, 229.5)),
    )


def alert(camera_id: str, number: int, at: datetime, *, alert_type: str = "zone_intrusion",
          track_id: str | None = None) -> Alert:
    return Alert(
        alert_id=f"alert-{camera_id}-{number}", alert_type=alert_type, camera_id=camera_id, occurred_at=at,
        severity="high", rule_id="rule-1", track_id=track_id, message=f"{alert_type} on {camera_id}",
        details={"zone": "gate", "count": number},
    )


def status(camera_id: str, at: datetime, event: str, *, reason: str | None = None, fps: float = 5.0) -> CameraStatus:
    stats = CameraStats(window_seconds=60.0, fps_in=25.0, fps_out=fps, bitrate_kbps=2048.0) if event == "stats" else None
    return CameraStatus(camera_id=camera_id, observed_at=at, event=event, reason=reason, stats=stats,
                        detail="connection refused" if event == "offline" else "")


def identities(rng: np.random.Generator, people: int, dim: int) -> np.ndarray:
    """Unit centres of ``people`` identities."""
    centres = rng.standard_normal((people, dim)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def faces_of(rng: np.random.Generator, centres: np.ndarray, labels: np.ndarray, noise: float = 0.6) -> np.ndarray:
    """Unit face vectors of the given identities: centre + N(0, noise²/dim) per component, renormalised.

    With ``noise`` 0.6 two faces of one person have a cosine of about 0.74 and faces of different
    people about 0 — roughly the spread of a good face embedder.
    """
    dim = centres.shape[1]
    out = centres[labels] + rng.standard_normal((len(labels), dim)).astype(np.float32) * (noise / math.sqrt(dim))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)
