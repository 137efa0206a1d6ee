"""Constant-velocity Kalman filter for one box, in continuous time.

The state is ``(cx, cy, w, h, vx, vy, vw, vh)``: box centre, width and height in pixels and their
velocities in pixels per *second*. Time steps are whatever elapsed between two frames, so the filter
works at any analysis rate and across gaps. Process noise is the exact discretisation of a continuous
white-noise acceleration model (spectral density ``(accel_std * h)**2`` per axis), which has a useful
property for frame skipping: predicting over 0.2 s then 0.2 s gives the same state and covariance as
predicting over 0.4 s at once. All noise levels scale with the box height, as in ByteTrack/DeepSORT,
so near and far objects are treated alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

_DIM = 4
_IDENTITY = np.eye(_DIM)
_H = np.hstack([_IDENTITY, np.zeros((_DIM, _DIM))])  # measurement: the box itself


@dataclass(frozen=True)
class MotionNoise:
    """Noise levels, all as fractions of the box height (so unit-free across object sizes).

    ``measure_std``: detector jitter of centre and size. ``accel_std``: how fast the centre's
    velocity wanders (per second squared). ``size_accel_std``: the same for width/height.
    ``init_velocity_std``: uncertainty of a new track's velocity (per second); wide, so that two boxes
    a frame apart already give a usable velocity for a runner or a car, not only for a walker.
    """

    measure_std: float = 0.05
    accel_std: float = 1.0
    size_accel_std: float = 0.25
    init_velocity_std: float = 2.0

    def __post_init__(self) -> None:
        for name in ("measure_std", "accel_std", "size_accel_std", "init_velocity_std"):
            if not getattr(self, name) > 0:
                msg = f"MotionNoise.{name} must be > 0, got {getattr(self, name)!r}"
                raise ValueError(msg)


def xyxy_to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=np.float64)


def cxcywh_to_xyxy(state: np.ndarray) -> np.ndarray:
    cx, cy, w, h = (float(v) for v in state[:4])
    w, h = max(w, 0.0), max(h, 0.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64)


class BoxKalman:
    """One object's box under constant velocity; ``predict(dt)`` then ``update(box)``."""

    def __init__(self, box_xyxy: np.ndarray, noise: MotionNoise | None = None) -> None:
        self.noise = noise or MotionNoise()
        z = xyxy_to_cxcywh(box_xyxy)
        self.mean = np.concatenate([z, np.zeros(_DIM)])
        h = max(z[3], 1.0)
        pos = 2 * self.noise.measure_std * h
        vel = self.noise.init_velocity_std * h
        self.covariance = np.diag([pos, pos, pos, pos, vel, vel, vel * 0.25, vel * 0.25]) ** 2

    @property
    def box(self) -> np.ndarray:
        """The current estimate as xyxy (float64)."""
        return cxcywh_to_xyxy(self.mean)

    @property
    def velocity(self) -> np.ndarray:
        """Velocity of (cx, cy, w, h) in pixels per second."""
        return self.mean[_DIM:].copy()

    def _process_noise(self, dt: float) -> np.ndarray:
        h = max(self.mean[3], 1.0)
        spectral = np.array(
            [self.noise.accel_std, self.noise.accel_std, self.noise.size_accel_std, self.noise.size_accel_std]
        )
        q = (spectral * h) ** 2  # the diagonal of the 4×4 blocks, filled in place: np.block cost more than the rest
        noise = np.zeros((2 * _DIM, 2 * _DIM))  # of predict together (same values, same arithmetic)
        cross = q * dt**2 / 2
        index = np.arange(_DIM)
        noise[index, index] = q * dt**3 / 3
        noise[index, index + _DIM] = cross
        noise[index + _DIM, index] = cross
        noise[index + _DIM, index + _DIM] = q * dt
        return noise

    def predict(self, dt: float, freeze_size: bool = False) -> np.ndarray:
        """Advance the state by ``dt`` seconds and return the predicted xyxy box.

        ``freeze_size`` zeroes the size velocity first (used for tracks without a recent
        measurement, so a lost box neither balloons nor collapses)."""
        if dt < 0:
            msg = f"cannot predict backwards in time (dt={dt})"
            raise ValueError(msg)
        if freeze_size:
            self.mean[6:8] = 0.0
        if dt == 0:
            return self.box
        f = np.eye(2 * _DIM)
        f[:_DIM, _DIM:] = _IDENTITY * dt
        self.mean = f @ self.mean
        self.covariance = f @ self.covariance @ f.T + self._process_noise(dt)
        self.mean[2:4] = np.maximum(self.mean[2:4], 1.0)
        return self.box

    def update(self, box_xyxy: np.ndarray) -> np.ndarray:
        """Fuse a measured xyxy box into the state; returns the corrected xyxy box."""
        z = xyxy_to_cxcywh(box_xyxy)
        h = max(z[3], 1.0)
        r = np.diag(np.full(_DIM, self.noise.measure_std * h) ** 2)
        innovation = z - _H @ self.mean
        s = _H @ self.covariance @ _H.T + r
        gain = np.linalg.solve(s, _H @ self.covariance).T
        self.mean = self.mean + gain @ innovation
        self.covariance = (np.eye(2 * _DIM) - gain @ _H) @ self.covariance
        self.covariance = (self.covariance + self.covariance.T) / 2
        return self.box
