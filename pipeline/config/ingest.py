"""Configuration of ingest: the camera records (config and registry share one model) and the ingest worker.

``CameraSpec`` is both the shape of ``cameras.static`` entries in the config file and the JSON document
stored per camera in the registry (``registry/cameras/{id}.json``). Credentials are ``SecretStr``: they
print masked; :func:`camera_to_json` with ``reveal_secrets=True`` is the only way they are written out in
clear. The registry never stores them so: it seals the password first (:mod:`pipeline.cameras.registry`,
:mod:`pipeline.sealing`), and a ``CameraSpec`` refuses a password that is such a sealed value, so a record
read around the registry cannot pass its ciphertext off as the password.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_serializer, field_validator, model_validator
from pydantic_core.core_schema import SerializationInfo

from pipeline.config.base import Section
from pipeline.sealing import SealedSecret, is_sealed

CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
GB_ID_PATTERN = r"^[0-9]{20}$"
_GB_ID_RE = re.compile(GB_ID_PATTERN)


def _url_has_userinfo(url: str) -> bool:
    rest = url.split("://", 1)[-1]
    return "@" in rest.split("/", 1)[0]


class CameraSpec(Section):
    """One camera: identity, where it is, how to reach it."""

    id: str = Field(
        ..., title="Camera ID", description="Stable ID (the 20-digit GB/T 28181 ID where there is one).",
        pattern=CAMERA_ID_PATTERN,
    )
    name: str = Field("", title="Name", description="Human-readable name.", max_length=200)
    device_type: Literal["camera", "ipc", "dvr", "nvr", "encoder", "file", "other"] = Field(
        "camera", title="Device type", description="Kind of device the stream comes from."
    )
    point_class: Literal["I", "II", "III"] | None = Field(
        None, title="Point class", description="Surveillance point class I/II/III (importance of the location)."
    )
    latitude: float | None = Field(None, title="Latitude", description="WGS-84 latitude in degrees.", ge=-90, le=90)
    longitude: float | None = Field(None, title="Longitude", description="WGS-84 longitude in degrees.", ge=-180, le=180)
    admin_unit: str = Field(
        "", title="Administrative unit", description="Owning administrative unit (e.g. a GB/T 2260 code).", max_length=100
    )
    kind: Literal["file", "rtsp", "gb28181"] = Field(
        "rtsp", title="Source kind", description="'file' (anything FFmpeg reads), 'rtsp' or 'gb28181'."
    )
    url: str = Field(
        "", title="Source URL", description="File path or rtsp:// URL (without credentials).", max_length=2000
    )
    username: str | None = Field(None, title="User", description="User name for the source.", max_length=200)
    password: SecretStr | None = Field(None, title="Password", description="Password for the source (secret).")
    gb_device_id: str | None = Field(
        None, title="GB device ID", description="20-digit ID of the GB/T 28181 device that carries this channel.",
        pattern=GB_ID_PATTERN,
    )
    transport: Literal["auto", "tcp", "udp", "tcp_passive", "tcp_active"] = Field(
        "auto",
        title="Transport",
        description="RTSP: tcp/udp; GB/T 28181 media: udp/tcp_passive/tcp_active; auto = the ingest default.",
    )
    loop: bool = Field(False, title="Loop", description="Files: start again at the end.")
    realtime: bool = Field(True, title="Real-time pacing", description="Files: deliver at the file's own frame rate.")
    enabled: bool = Field(True, title="Enabled", description="Disabled cameras are kept but not ingested.")
    analysis_fps: float | None = Field(
        None, title="Analysis fps", description="Frames per second published for analysis (default: ingest.analysis_fps).",
        gt=0, le=60,
    )
    record: bool | None = Field(
        None, title="Record", description="Keep the original stream in recordings/ (default: ingest.recordings.enabled)."
    )
    tags: list[str] = Field(default_factory=list, title="Tags", description="Free labels.", max_length=50)

    @model_validator(mode="after")
    def _source_complete(self) -> CameraSpec:
        if self.kind in ("file", "rtsp") and not self.url:
            msg = f"camera {self.id}: kind {self.kind!r} needs a url"
            raise ValueError(msg)
        if self.kind == "rtsp" and not self.url.lower().startswith(("rtsp://", "rtsps://")):
            msg = f"camera {self.id}: an rtsp camera's url must start with rtsp:// or rtsps://"
            raise ValueError(msg)
        if self.kind == "rtsp" and _url_has_userinfo(self.url):
            msg = f"camera {self.id}: put credentials in username/password, not in the URL"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _gb_ids(self) -> CameraSpec:
        if self.kind == "gb28181":
            if not _GB_ID_RE.match(self.id):
                msg = f"camera {self.id}: a gb28181 camera's id must be its 20-digit channel ID"
                raise ValueError(msg)
            if self.gb_device_id is None:
                msg = f"camera {self.id}: a gb28181 camera needs gb_device_id"
                raise ValueError(msg)
        return self

    @field_validator("password")
    @classmethod
    def _password_not_sealed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or isinstance(value, SealedSecret):
            return value
        if is_sealed(value.get_secret_value()):
            msg = "is an encrypted registry value ('enc:...'); read camera records through the camera registry"
            raise ValueError(msg)
        return value

    @field_serializer("password", when_used="always")
    def _dump_password(self, value: SecretStr | None, info: SerializationInfo) -> Any:
        if value is None:
            return None
        ctx = info.context or {}
        if ctx.get("reveal_secrets"):
            return value.get_secret_value()
        return "**********" if info.mode == "json" else value


def camera_to_json(camera: CameraSpec, *, reveal_secrets: bool = False) -> dict[str, Any]:
    """The camera as a JSON-ready dict; the password in clear only with ``reveal_secrets``."""
    return camera.model_dump(mode="json", context={"reveal_secrets": reveal_secrets})


class CamerasConfig(Section):
    """Where camera records live, plus cameras declared in the config file itself."""

    registry_prefix: str = Field(
        "registry/cameras",
        title="Registry prefix",
        description="Object-store prefix holding one JSON object per camera.",
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        max_length=200,
    )
    static: list[CameraSpec] = Field(
        default_factory=list,
        title="Static cameras",
        description="Cameras defined in the config; a registry record with the same ID wins.",
        max_length=10_000,
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> CamerasConfig:
        seen: set[str] = set()
        for cam in self.static:
            if cam.id in seen:
                msg = f"duplicate camera id {cam.id!r} in cameras.static"
                raise ValueError(msg)
            seen.add(cam.id)
        return self


class ResizeConfig(Section):
    mode: Literal["none", "fit", "exact"] = Field(
        "fit", title="Mode", description="'fit' inside the box keeping aspect (never upscale), 'exact' to the box, 'none'."
    )
    max_width: int = Field(1280, title="Width", description="Box width in pixels.", ge=16, le=8192)
    max_height: int = Field(720, title="Height", description="Box height in pixels.", ge=16, le=8192)


class RtspConfig(Section):
    transport: Literal["tcp", "udp"] = Field("tcp", title="Transport", description="Default RTSP transport.")
    fallback: bool = Field(
        True, title="Transport fallback",
        description="Try the other transport when the server refuses this one (461, or 400 to SETUP) or UDP brings "
                    "no data in time; the one that worked is kept for reconnects.",
    )
    probe_s: float = Field(
        1.0, title="Probe duration", description="Seconds of stream read at most to learn its parameters when opening "
        "(FFmpeg's analyzeduration; its own default is 5).", gt=0, le=10,
    )
    open_timeout_s: float = Field(10.0, title="Open timeout", description="Seconds to connect and describe.", gt=0, le=300)
    read_timeout_s: float = Field(
        10.0, title="Read timeout", description="Seconds without a packet before the stream counts as lost.", gt=0, le=300
    )


class BackoffConfig(Section):
    initial_s: float = Field(1.0, title="First delay", description="Delay before the first reconnect.", gt=0, le=600)
    max_s: float = Field(30.0, title="Maximum delay", description="Cap of the exponential backoff.", gt=0, le=3600)
    reset_after_s: float = Field(
        30.0, title="Reset after", description="A source that delivered frames this long resets the backoff.", gt=0, le=86_400
    )

    @model_validator(mode="after")
    def _cap_above_initial(self) -> BackoffConfig:
        if self.max_s < self.initial_s:
            msg = "reconnect.max_s must be at least reconnect.initial_s"
            raise ValueError(msg)
        return self


class RecordingsConfig(Section):
    enabled: bool = Field(True, title="Enabled", description="Record the original streams (cameras may override).")
    segment_s: float = Field(
        60.0, title="Segment length", description="Target segment length in seconds (cut at the next keyframe).", ge=1, le=3600
    )
    prefix: str = Field(
        "recordings", title="Prefix", description="Object-store prefix of recordings.", pattern=r"^[A-Za-z0-9_.-]+$"
    )
    queue_size: int = Field(
        1024, title="Queue size", description="Packets buffered for the recorder before it drops to the next keyframe.",
        ge=16, le=100_000,
    )


class GbDeviceConfig(Section):
    password: SecretStr = Field(..., title="Password", description="Digest password of this device (secret).")
    name: str = Field("", title="Name", description="Label for logs and status.", max_length=200)


class SuperiorConfig(Section):
    """A superior platform Tubeline registers to (级联): it sees the cameras in this link's scope."""

    server_id: str = Field(..., title="Superior ID", description="20-digit SIP ID of the superior platform.",
                           pattern=GB_ID_PATTERN)
    domain: str = Field(..., title="Superior domain", description="Its 10-digit domain (the digest realm it uses).",
                        pattern=r"^[0-9]{10}$")
    host: str = Field(..., title="Host", description="Address of the superior's SIP server.", max_length=255)
    port: int = Field(5060, title="Port", description="Its SIP port.", ge=1, le=65535)
    transport: Literal["udp", "tcp"] = Field("udp", title="SIP transport", description="udp, or tcp (one connection kept).")
    local_id: str | None = Field(
        None, title="Our ID", description="Our 20-digit ID toward this superior (default: gb28181.server_id).",
        pattern=GB_ID_PATTERN,
    )
    password: SecretStr = Field(..., title="Password", description="Digest password the superior gave us (secret).")
    expires_s: int = Field(3600, title="Registration expiry", description="Expires asked for; re-registered at 80 %.",
                           ge=10, le=86_400)
    keepalive_s: float = Field(60.0, title="Keepalive interval", description="Seconds between keepalives.", gt=0,
                               le=3600)
    keepalive_misses: int = Field(3, title="Keepalive misses", description="Unanswered keepalives before registering "
                                  "again.", ge=1, le=100)
    retry_s: float = Field(60.0, title="Retry delay", description="Wait after a failed registration (2016: >= 60 s).",
                           gt=0, le=3600)
    camera_ids: list[str] = Field(default_factory=list, title="Cameras", description="Cameras shared (GB IDs).",
                                  max_length=100_000)
    admin_units: list[str] = Field(
        default_factory=list, title="Units", description="Also share every camera whose administrative unit (civil "
        "code) starts with one of these.", max_length=1000,
    )
    civil_code: str = Field("", title="Civil code", description="Our civil code in the catalog (default: the first "
                            "6 digits of our ID).", max_length=20)


class Gb28181Config(Section):
    enabled: bool = Field(False, title="Enabled", description="Run the GB/T 28181 SIP server in the ingest worker.")
    server_id: str = Field(
        "34020000002000000001", title="Server ID", description="20-digit SIP server ID (type 200).", pattern=GB_ID_PATTERN
    )
    domain: str = Field(
        "3402000000", title="Domain", description="10-digit SIP domain (first 10 digits of the server ID); the realm.",
        pattern=r"^[0-9]{10}$",
    )
    bind_host: str = Field("127.0.0.1", title="Bind address", description="SIP listen address.", max_length=255)
    sip_port: int = Field(5060, title="SIP port", description="UDP and TCP SIP port (0 = pick a free one).", ge=0, le=65535)
    advertised_host: str | None = Field(
        None, title="Advertised address", description="Address put in Contact/SDP (default: bind address).", max_length=255
    )
    default_password: SecretStr | None = Field(
        None, title="Default password", description="Password for devices not listed in 'devices'; none = refuse them."
    )
    devices: dict[str, GbDeviceConfig] = Field(
        default_factory=dict, title="Devices", description="Per-device passwords by 20-digit device ID.", max_length=100_000
    )
    keepalive_interval_s: float = Field(
        60.0, title="Keepalive interval", description="Expected keepalive period of devices.", gt=0, le=3600
    )
    keepalive_count: int = Field(3, title="Keepalive misses", description="Missed keepalives before offline.", ge=1, le=100)
    media_bind_host: str = Field("127.0.0.1", title="Media address", description="RTP listen address.", max_length=255)
    media_port_min: int = Field(30000, title="Media ports from", description="First RTP port.", ge=1024, le=65535)
    media_port_max: int = Field(30999, title="Media ports to", description="Last RTP port.", ge=1024, le=65535)
    media_transport: Literal["udp", "tcp_passive", "tcp_active"] = Field(
        "udp", title="Media transport", description="Default media transport for INVITE."
    )
    media_timeout_s: float = Field(
        15.0, title="Media timeout", description="Seconds without RTP before the session is released (BYE).", gt=0, le=600
    )
    invite_timeout_s: float = Field(10.0, title="INVITE timeout", description="Seconds to wait for 200 OK.", gt=0, le=120)
    catalog_timeout_s: float = Field(
        30.0, title="Catalog timeout", description="Seconds to collect all Catalog pages.", gt=0, le=600
    )
    catalog_on_register: bool = Field(True, title="Catalog on register", description="Query Catalog after REGISTER.")
    auto_enable_channels: bool = Field(
        True, title="Enable new channels", description="Catalog channels added to the registry start enabled."
    )
    reorder_window: int = Field(32, title="Reorder window", description="RTP packets held for reordering.", ge=1, le=4096)
    subscribe_catalog: bool = Field(
        True, title="Subscribe to catalogs", description="SUBSCRIBE to each device's catalog changes (NOTIFY)."
    )
    subscribe_alarm: bool = Field(
        True, title="Subscribe to alarms", description="SUBSCRIBE to each device's alarms; alarms become alerts."
    )
    subscribe_expires_s: int = Field(
        3600, title="Subscription expiry", description="Expires asked for in SUBSCRIBE; renewed at 80 % of it.",
        ge=10, le=86_400,
    )
    query_device_info: bool = Field(
        True, title="Query device info", description="Ask each device for DeviceInfo (maker, model, firmware) on register."
    )
    superiors: list[SuperiorConfig] = Field(
        default_factory=list, title="Superior platforms",
        description="Platforms Tubeline registers to and shares cameras with (cascade); several at once.",
        max_length=100,
    )
    time_zone: str | None = Field(
        None, title="Device time zone",
        description="IANA zone of the local times devices send and get (Date header, alarms, recordings); "
                    "default: this machine's zone.", max_length=64,
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ValueError, ZoneInfoNotFoundError):
                msg = f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)"
                raise ValueError(msg) from None
        return value

    @model_validator(mode="after")
    def _domain_matches(self) -> Gb28181Config:
        if self.server_id[:10] != self.domain:
            msg = "gb28181.domain must be the first 10 digits of gb28181.server_id"
            raise ValueError(msg)
        if self.media_port_max < self.media_port_min:
            msg = "gb28181.media_port_max must be >= media_port_min"
            raise ValueError(msg)
        for dev in self.devices:
            if not _GB_ID_RE.match(dev):
                msg = f"gb28181.devices: {dev!r} is not a 20-digit device ID"
                raise ValueError(msg)
        return self


class IngestConfig(Section):
    """The ingest worker: sampling, JPEG, queues, sources, recordings, GB/T 28181."""

    analysis_fps: float = Field(5.0, title="Analysis fps", description="Frames per second published per camera.", gt=0, le=60)
    resize: ResizeConfig = Field(default_factory=ResizeConfig, title="Resize", description="Resize policy of published frames.")
    jpeg_quality: int = Field(85, title="JPEG quality", description="OpenCV JPEG quality.", ge=10, le=100)
    frame_queue_size: int = Field(
        4, title="Frame queue", description="Sampled frames waiting for JPEG/produce per camera.", ge=1, le=1000
    )
    overflow: Literal["drop_oldest", "block"] = Field(
        "drop_oldest",
        title="Overflow policy",
        description="When the frame queue is full: drop the oldest waiting frame (counted) or block the reader.",
    )
    decoder_threads: int = Field(1, title="Decoder threads", description="FFmpeg threads per stream (0 = auto).", ge=0, le=64)
    stats_interval_s: float = Field(
        10.0, title="Stats interval", description="Seconds between stats events per camera.", gt=0, le=3600
    )
    live_topic: bool = Field(
        True,
        title="Publish live packets",
        description="Publish every camera's encoded packets on tubeline.live.v1 for live viewing through the API "
        "(the distributed deployment; 'tubeline up' hands them to its API in process instead).",
    )
    registry_refresh_s: float = Field(
        10.0, title="Registry refresh", description="Seconds between registry re-reads.", gt=0, le=3600
    )
    shard_index: int = Field(0, title="Shard", description="This worker's shard.", ge=0, le=9999)
    shard_count: int = Field(1, title="Shards", description="Number of ingest shards.", ge=1, le=10_000)
    camera_ids: list[str] = Field(
        default_factory=list, title="Cameras", description="Only these cameras (empty = all enabled).", max_length=100_000
    )
    rtsp: RtspConfig = Field(default_factory=RtspConfig, title="RTSP", description="RTSP client settings.")
    reconnect: BackoffConfig = Field(default_factory=BackoffConfig, title="Reconnect", description="Reconnect backoff.")
    recordings: RecordingsConfig = Field(
        default_factory=RecordingsConfig, title="Recordings", description="Original-stream recordings."
    )
    gb28181: Gb28181Config = Field(default_factory=Gb28181Config, title="GB/T 28181", description="GB/T 28181 platform.")

    @model_validator(mode="after")
    def _shard_in_range(self) -> IngestConfig:
        if self.shard_index >= self.shard_count:
            msg = "ingest.shard_index must be below ingest.shard_count"
            raise ValueError(msg)
        return self
