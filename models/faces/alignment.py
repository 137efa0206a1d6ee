"""Five-point similarity alignment and face quality from landmarks.

Landmarks are in the order of :mod:`models.protocols` (eye on the image's left, eye on its right, nose
tip, mouth corner left, mouth corner right). Alignment maps them onto an embedder's template with the
least-squares similarity transform (rotation + uniform scale + translation; no shear), so the face is
upright and at the scale the embedder was trained on.

Templates:

* ``ARCFACE_112`` — the InsightFace 112×112 template used by ArcFace-style ONNX embedders.
* ``DLIB_150`` — where CenterFace's five points fall on dlib's own 150×150 face chips (``get_face_chip``,
  padding 0.25, from its 5-point shape predictor). Measured here: mean over 18 faces (the 9 faces of
  ``testdata/faces`` and their mirror images), made exactly left/right symmetric; per-point standard
  deviation 3–9 px. The dlib ResNet was trained on chips made that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.geometry import similarity_transform

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
DLIB_150 = np.array([[48.5, 48.3], [101.5, 48.3], [75.0, 77.1], [53.1, 103.6], [96.9, 103.6]], dtype=np.float32)


def align(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """The ``size``×``size`` chip whose five points best match ``template`` (BGR in, BGR out)."""
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


@dataclass(frozen=True)
class FaceQuality:
    """Quality measures of one face; ``score`` in 0..1 is the product of the three factor scores.

    * ``eye_distance`` — pixels between the eyes in the original image (resolution).
    * ``sharpness`` — variance of the Laplacian of the grey 112×112 aligned chip (blur).
    * ``yaw`` / ``roll`` in degrees, ``pitch`` as a ratio (0 = frontal), estimated from the landmarks.
    """

    eye_distance: float
    sharpness: float
    yaw: float
    pitch: float
    roll: float
    score: float

    def as_dict(self) -> dict[str, float]:
        return {
            "score": round(self.score, 3),
            "eye_distance": round(self.eye_distance, 1),
            "sharpness": round(self.sharpness, 1),
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 2),
            "roll": round(self.roll, 1),
        }


def pose_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw degrees, pitch ratio, roll degrees) from five points; frontal ≈ (0, 0, 0).

    Roll is the angle of the eye line. After undoing roll, yaw comes from how far the nose sits from the
    eyes' midpoint, relative to half the eye distance (arcsine), and pitch from where the nose sits between
    the eye line and the mouth line (0.55 of the way down on frontal faces, as on the ArcFace template).
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = pts
    dx, dy = right_eye - left_eye
    roll = float(np.degrees(np.arctan2(dy, dx)))
    c, s = np.cos(np.radians(-roll)), np.sin(np.radians(-roll))
    rot = np.array([[c, -s], [s, c]])
    eyes_mid = (left_eye + right_eye) / 2
    upright = (pts - eyes_mid) @ rot.T
    half_eyes = max(float(np.linalg.norm(right_eye - left_eye)) / 2, 1e-6)
    yaw = float(np.degrees(np.arcsin(np.clip(upright[2, 0] / (half_eyes * 1.2), -1.0, 1.0))))
    mouth_y = (upright[3, 1] + upright[4, 1]) / 2
    pitch = float(upright[2, 1] / mouth_y - 0.55) if mouth_y > 1e-6 else 1.0
    return yaw, pitch, roll


def assess(image: np.ndarray, landmarks: np.ndarray) -> FaceQuality:
    """Resolution, blur and pose of one face (see :class:`FaceQuality`)."""
    pts = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    eye_distance = float(np.linalg.norm(pts[1] - pts[0]))
    chip = align(image, pts, ARCFACE_112, 112)
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    yaw, pitch, roll = pose_from_landmarks(pts)
    size_score = float(np.clip((eye_distance - 8.0) / (40.0 - 8.0), 0.0, 1.0))
    blur_score = float(np.clip(sharpness / 60.0, 0.0, 1.0))
    pose_score = float(np.clip(1.0 - abs(yaw) / 60.0, 0.0, 1.0) * np.clip(1.0 - abs(pitch) / 0.5, 0.0, 1.0))
    return FaceQuality(eye_distance, sharpness, yaw, pitch, roll, size_score * blur_score * pose_score)
