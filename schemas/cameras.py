"""Camera status events and image-quality health, on ``tubeline.camera-status.v1`` and
``tubeline.camera-health.v1``.

:class:`CameraStatus` is what ingest says about a connection: it came online, went offline
(with a reason), is reconnecting, or periodic ``stats`` (fps in/out, bitrate, RTP loss,
dropped frames over a window). :class:`CameraHealth` is what the quality worker says about
the picture: blur, brightness, freeze, no signal and colour cast, and a verdict.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import Field, Strict, model_validator

from schemas.common import (
    CameraId,
    Count,
    Score,
    UtcDateTime,
    WireMessage,
    WireModel,
    format_utc,
    type_field,
)

CameraEvent = Literal["online", "offline", "reconnecting", "stats"]
OfflineReason = Literal[
    "timeout", "auth", "not_found", "codec", "network", "protocol", "eof", "stopped", "other"
]
HealthVerdict = Literal["ok", "degraded", "failed"]
HealthProblem = Literal["blur", "brightness", "freeze", "no_signal", "colour_cast"]

WindowSeconds = Annotated[float, Strict(), Field(gt=0.0, le=86400.0)]
Rate = Annotated[float, Strict(), Field(ge=0.0, le=1000.0)]


class CameraStats(WireModel):
    """Connection statistics over one reporting window (counts are for the window, not cumulative)."""

    window_seconds: WindowSeconds = Field(
        title="Window", description="Length of the reporting window in seconds."
    )
    fps_in: Rate = Field(title="Input fps", description="Frames per second decoded from the source.")
    fps_out: Rate = Field(title="Output fps", description="Frames per second published to the frames topic.")
    bitrate_kbps: Annotated[float, Strict(), Field(ge=0.0, le=10_000_000.0)] = Field(
        title="Bitrate", description="Received source bitrate in kbit/s."
    )
    frames_decoded: Count = Field(
        default=0, title="Frames decoded", description="Frames decoded from the source in the window."
    )
    decode_errors: Count = Field(
        default=0, title="Decode errors", description="Packets or frames the decoder rejected in the window."
    )
    frames_dropped: Count = Field(
        default=0,
        title="Frames dropped",
        description="Decoded frames not published because downstream was slow (back-pressure drops).",
    )
    recording_drops: Count = Field(
        default=0,
        title="Recording drops",
        description="Packets the recorder could not write in the window (a gap in the recording).",
    )
    rtp_packets_received: Count = Field(
        default=0,
        title="RTP packets received",
        description="RTP packets received in the window; 0 for non-RTP sources.",
    )
    rtp_packets_lost: Count = Field(
        default=0,
        title="RTP packets lost",
        description="RTP packets missing by sequence number in the window.",
    )
    rtp_packets_reordered: Count = Field(
        default=0,
        title="RTP packets reordered",
        description="RTP packets that arrived out of order and were put back in order in the window.",
    )


class CameraStatus(WireMessage):
    """A connection event or periodic statistics of one camera."""

    SCHEMA_NAME = "camera_status"

    type: Literal["camera_status"] = type_field("camera_status")
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    observed_at: UtcDateTime = Field(
        title="Observed at", description="UTC time of the event (end of window for stats)."
    )
    event: CameraEvent = Field(title="Event", description="online, offline, reconnecting or stats.")
    reason: OfflineReason | None = Field(
        default=None,
        title="Reason",
        description=(
            "Why the camera is offline or reconnecting: timeout (no data in time), auth (credentials "
            "refused), not_found (no such stream/device), codec (undecodable), network (unreachable, "
            "refused, reset), protocol (peer broke RTSP/SIP/RTP/PS rules), eof (a file or playback "
            "ended), stopped (disabled or shut down), other. Required for offline; null for online and stats."
        ),
    )
    detail: Annotated[str, Strict(), Field(max_length=1000)] = Field(
        default="",
        title="Detail",
        description="Human-readable detail (the error message); never contains credentials.",
    )
    attempt: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] | None = Field(
        default=None,
        title="Reconnect attempt",
        description="For reconnecting: 1 for the first attempt after a failure, then 2, 3, ...; else null.",
    )
    retry_in_seconds: Annotated[float, Strict(), Field(ge=0.0, le=86400.0)] | None = Field(
        default=None,
        title="Retry delay",
        description="For reconnecting: seconds until the next attempt (backoff with jitter); else null.",
    )
    first_frame_seconds: Annotated[float, Strict(), Field(ge=0.0, le=86400.0)] | None = Field(
        default=None,
        title="Time to first frame",
        description="For online: seconds from starting to open the source to its first decoded frame; else null.",
    )
    stats: CameraStats | None = Field(
        default=None,
        title="Statistics",
        description="Window statistics; required for stats events, optional otherwise.",
    )

    @model_validator(mode="after")
    def _reason_matches_event(self) -> Self:
        if self.event == "offline" and self.reason is None:
            msg = "an offline event needs a reason"
            raise ValueError(msg)
        if self.event in ("online", "stats") and self.reason is not None:
            msg = f"a {self.event} event has no reason, got {self.reason!r}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _retry_only_when_reconnecting(self) -> Self:
        if self.event != "reconnecting" and (self.attempt is not None or self.retry_in_seconds is not None):
            msg = f"attempt and retry_in_seconds belong to reconnecting events, not {self.event}"
            raise ValueError(msg)
        if self.event != "online" and self.first_frame_seconds is not None:
            msg = f"first_frame_seconds belongs to online events, not {self.event}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _stats_present(self) -> Self:
        if self.event == "stats" and self.stats is None:
            msg = "a stats event needs stats"
            raise ValueError(msg)
        return self

    def idempotency_key(self) -> str:
        """``{camera_id}/status/{event}/{observed_at}``: one record per camera event."""
        return f"{self.camera_id}/status/{self.event}/{format_utc(self.observed_at)}"

    @classmethod
    def example(cls) -> Self:
        return cls(
            camera_id="34020000001320000001",
            observed_at=datetime(2024, 5, 1, 8, 1, tzinfo=UTC),
            event="stats",
            stats=CameraStats(
                window_seconds=60.0,
                fps_in=25.0,
                fps_out=5.0,
                bitrate_kbps=2048.5,
                frames_decoded=1500,
                frames_dropped=2,
                rtp_packets_received=13200,
                rtp_packets_lost=3,
                rtp_packets_reordered=11,
            ),
        )


class HealthScores(WireModel):
    """Severity of each picture problem in [0, 1]: 0 = not present, 1 = certainly present."""

    blur: Score = Field(title="Blur", description="Out of focus or smeared picture.")
    brightness: Score = Field(title="Brightness", description="Too dark or too bright (over/under exposure).")
    freeze: Score = Field(title="Freeze", description="Picture not changing while frames keep arriving.")
    no_signal: Score = Field(title="No signal", description="Blank, single-colour or 'no video' screen.")
    colour_cast: Score = Field(title="Colour cast", description="Strong tint of one colour over the picture.")


class CameraHealth(WireMessage):
    """Image-quality diagnosis of one camera over a window of sampled frames."""

    SCHEMA_NAME = "camera_health"

    type: Literal["camera_health"] = type_field("camera_health")
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    observed_at: UtcDateTime = Field(
        title="Observed at", description="UTC capture time of the window's last frame."
    )
    window_seconds: WindowSeconds = Field(
        title="Window", description="Length of the diagnosed window in seconds."
    )
    frames_sampled: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = Field(
        title="Frames sampled", description="Number of frames the diagnosis looked at."
    )
    scores: HealthScores = Field(title="Scores", description="Severity of each problem in [0, 1].")
    problems: tuple[HealthProblem, ...] = Field(
        default=(),
        title="Problems",
        description="Problems whose score crossed the configured threshold, each at most once.",
        max_length=5,
    )
    verdict: HealthVerdict = Field(
        title="Verdict", description="ok (no problems), degraded (usable with problems) or failed (unusable)."
    )

    @model_validator(mode="after")
    def _verdict_matches_problems(self) -> Self:
        if len(set(self.problems)) != len(self.problems):
            msg = f"problems listed twice: {list(self.problems)}"
            raise ValueError(msg)
        if (self.verdict == "ok") != (not self.problems):
            msg = f"verdict {self.verdict!r} does not match problems {list(self.problems)}"
            raise ValueError(msg)
        return self

    def idempotency_key(self) -> str:
        """``{camera_id}/health/{observed_at}``: one diagnosis per camera and window."""
        return f"{self.camera_id}/health/{format_utc(self.observed_at)}"

    @classmethod
    def example(cls) -> Self:
        return cls(
            camera_id="cam-01",
            observed_at=datetime(2024, 5, 1, 8, 1, tzinfo=UTC),
            window_seconds=60.0,
            frames_sampled=60,
            scores=HealthScores(blur=0.72, brightness=0.1, freeze=0.0, no_signal=0.0, colour_cast=0.05),
            problems=("blur",),
            verdict="degraded",
        )
