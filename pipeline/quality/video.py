"""The quality diagnosis over a video file: what ``tubeline quality check FILE`` runs.

Frames are decoded with PyAV (FFmpeg) and one every ``quality.check_interval_s`` seconds of media time
is diagnosed by a fresh :class:`~pipeline.quality.diagnose.CameraDiagnoser`, exactly as the quality worker
diagnoses a camera. The file's first clean seconds teach the baseline, so relative faults (occlusion,
scene change, the relative thresholds) can only be found after them; a fault present from the first
frame is found by the hard thresholds alone. Faults still active at the end of the file end there.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from pipeline.config.quality import QualityConfig
from pipeline.quality.diagnose import CameraDiagnoser, FaultSegment, Transition, segments

log = logging.getLogger(__name__)

NOMINAL_HOUR = 12
"""Hour of day a file's samples are filed under (a file has no wall clock)."""


@dataclass(frozen=True)
class FileCheck:
    path: Path
    segments: list[FaultSegment]
    samples: int
    duration_s: float
    elapsed_s: float


def check_file(path: str | Path, settings: QualityConfig | None = None) -> FileCheck:
    """Diagnose ``path``; raises ``ValueError`` when it has no decodable video stream."""
    settings = settings or QualityConfig()
    path = Path(path)
    started = time.monotonic()
    diagnoser = CameraDiagnoser(settings)
    transitions: list[Transition] = []
    samples, next_t, last_t = 0, 0.0, 0.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                msg = f"{path}: no video stream"
                raise ValueError(msg)
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 25)
            for index, frame in enumerate(container.decode(stream)):
                t = float(frame.pts * stream.time_base) if frame.pts is not None and stream.time_base else index / rate
                if index == 0:
                    origin = t
                t -= origin
                last_t = max(last_t, t + 1.0 / rate)
                if t + 1e-6 < next_t:
                    continue
                next_t = t + settings.check_interval_s
                _, found = diagnoser.observe(t, NOMINAL_HOUR, frame.to_ndarray(format="bgr24"))
                transitions.extend(found)
                samples += 1
    except av.error.FFmpegError as exc:
        msg = f"{path}: cannot decode: {exc}"
        raise ValueError(msg) from None
    if samples == 0:
        msg = f"{path}: no decodable frame"
        raise ValueError(msg)
    transitions.extend(diagnoser.finish(last_t))
    return FileCheck(path, segments(transitions), samples, last_t, time.monotonic() - started)
