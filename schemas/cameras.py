"""Camera status events and image-quality health, on ``tubeline.camera-status.v1`` and
``tubeline.camera-health.v1``.

:class:`CameraStatus` is what ingest says about a connection: it came online, went offline
(with a reason), is reconnecting, or periodic ``stats`` (fps in/out, bitrate, RTP loss,
dropped frames over a window). :class:`CameraHealth` is what the quality worker says about
the picture: when each of eleven faults (blur, dark, bright, low contrast, colour cast, noise, freeze, no
signal, occlusion, scene change, stripes) started and ended, and periodic summaries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import Field, Strict, model_validator

from schemas.common import (
    CameraId,
    Count,
    Score,
    StoreKey,
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
HealthProblem = Literal[
    "blur", "dark", "bright", "low_contrast", "colour_cast", "noise", "freeze", "no_signal", "occlusion",
    "scene_change", "stripes",
]
HealthEvent = Literal["fault_started", "fault_ended", "scene_change", "summary"]

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
    """Severity of each picture fault in [0, 1] at one moment: 0.5 is the configured threshold, 1 certainly present."""

    blur: Score = Field(title="Blur", description="Out of focus, defocused or smeared picture.")
    dark: Score = Field(title="Dark", description="Too dark for the camera's usual picture at this hour.")
    bright: Score = Field(title="Bright", description="Too bright / over-exposed.")
    low_contrast: Score = Field(title="Low contrast", description="Washed out (fog, dirty dome, wrong gain).")
    colour_cast: Score = Field(title="Colour cast", description="Strong tint of one colour over the picture.")
    noise: Score = Field(title="Noise", description="Noise or snow.")
    freeze: Score = Field(title="Freeze", description="Picture not changing while frames keep arriving.")
    no_signal: Score = Field(title="No signal", description="Black, blue or single-colour 'no video' screen.")
    occlusion: Score = Field(title="Occlusion", description="Part of the lens covered.")
    scene_change: Score = Field(title="Scene change", description="The view no longer matches the camera's reference (moved or turned).")
    stripes: Score = Field(title="Stripes", description="Stripes, bars or rolling interference.")


class CameraHealth(WireMessage):
    """Image-quality diagnosis of one camera: a fault started or ended, a scene change, or a periodic summary.

    The quality worker publishes ``fault_started`` when a fault has persisted past its hysteresis,
    ``fault_ended`` (with both times) when it has been gone long enough, ``scene_change`` (an instant:
    ``started_at`` = ``ended_at``) and a ``summary`` every ``quality.heartbeat_s`` of event time with the
    current scores and open faults. Revised before it had a producer: the first published version of this
    contract is this one (no data of the earlier draft exists).
    """

    SCHEMA_NAME = "camera_health"

    type: Literal["camera_health"] = type_field("camera_health")
    camera_id: CameraId = Field(title="Camera ID", description="The camera; also the Kafka key.")
    observed_at: UtcDateTime = Field(
        title="Observed at", description="UTC capture time of the sampled frame that decided this message."
    )
    event: HealthEvent = Field(
        title="Event", description="fault_started, fault_ended, scene_change or summary (periodic, no fault)."
    )
    fault: HealthProblem | None = Field(
        default=None, title="Fault", description="The fault that started or ended; null for summaries."
    )
    started_at: UtcDateTime | None = Field(
        default=None, title="Fault start", description="UTC time the fault was first seen (fault events only)."
    )
    ended_at: UtcDateTime | None = Field(
        default=None, title="Fault end",
        description="UTC time the fault was first gone (fault_ended) or the scene change moment; else null.",
    )
    score: Score = Field(default=0.0, title="Score", description="Peak severity of the fault (0 for summaries).")
    window_seconds: WindowSeconds = Field(
        title="Window", description="Seconds of stream the message covers (since the camera's previous message)."
    )
    frames_sampled: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = Field(
        title="Frames sampled", description="Frames diagnosed in that window."
    )
    scores: HealthScores = Field(title="Scores", description="Severity of each fault at observed_at.")
    problems: tuple[HealthProblem, ...] = Field(
        default=(),
        title="Open faults",
        description="Faults active at observed_at (after this message's event), each at most once.",
        max_length=11,
    )
    verdict: HealthVerdict = Field(
        title="Verdict",
        description="ok (no open fault), failed (no signal or frozen: no usable picture) or degraded (other faults).",
    )
    thumbnail_key: StoreKey | None = Field(
        default=None, title="Thumbnail", description="Object-store key of a JPEG of the frame that started the fault."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.problems)) != len(self.problems):
            msg = f"problems listed twice: {list(self.problems)}"
            raise ValueError(msg)
        failed = bool({"no_signal", "freeze"} & set(self.problems))
        expected = "ok" if not self.problems else ("failed" if failed else "degraded")
        if self.verdict != expected:
            msg = f"verdict {self.verdict!r} does not match problems {list(self.problems)} (expected {expected!r})"
            raise ValueError(msg)
        if (self.event == "summary") != (self.fault is None):
            msg = "a summary has no fault; every other event names one"
            raise ValueError(msg)
        if self.event != "summary" and self.started_at is None:
            msg = f"a {self.event} event needs started_at"
            raise ValueError(msg)
        if (self.event in ("fault_ended", "scene_change")) != (self.ended_at is not None):
            msg = "ended_at belongs to fault_ended and scene_change events only"
            raise ValueError(msg)
        if self.event == "scene_change" and self.fault != "scene_change":
            msg = "a scene_change event has fault scene_change"
            raise ValueError(msg)
        if self.started_at is not None and self.ended_at is not None and self.ended_at < self.started_at:
            msg = "ended_at is before started_at"
            raise ValueError(msg)
        return self

    def idempotency_key(self) -> str:
        """``{camera_id}/health/{event}/{fault}/{started_at or observed_at}``: one record per episode edge."""
        when = self.started_at if self.started_at is not None else self.observed_at
        return f"{self.camera_id}/health/{self.event}/{self.fault or '-'}/{format_utc(when)}"

    @classmethod
    def example(cls) -> Self:
        t0 = datetime(2024, 5, 1, 8, 0, 12, tzinfo=UTC)
        return cls(
            camera_id="34020000001320000001",
            observed_at=datetime(2024, 5, 1, 8, 1, tzinfo=UTC),
            event="fault_ended",
            fault="blur",
            started_at=t0,
            ended_at=datetime(2024, 5, 1, 8, 0, 58, tzinfo=UTC),
            score=0.82,
            window_seconds=60.0,
            frames_sampled=60,
            scores=HealthScores(blur=0.31, dark=0.0, bright=0.05, low_contrast=0.1, colour_cast=0.05, noise=0.12,
                                freeze=0.0, no_signal=0.0, occlusion=0.0, scene_change=0.02, stripes=0.08),
            problems=(),
            verdict="ok",
            thumbnail_key="health/thumbnails/34020000001320000001/2024-05-01/blur-20240501T080012.000Z.jpg",
        )
