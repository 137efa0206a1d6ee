"""Configuration of the REST API and web UI: where it listens, sessions, case references, face-search
gates, clip exports and the audit log.

The section is ``api`` in the configuration tree (``TUBELINE_API__PORT=8090``).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from pipeline.config.base import Section

DEFAULT_CASE_PATTERN = r"^[A-Z0-9]{2,16}(-[A-Z0-9]{1,16}){1,4}$"
"""A case reference: upper-case letters/digits in 2 to 5 dash-separated groups, e.g. ``CASE-2024-0042``
or ``510104-2024-000123`` (unit code, year, number)."""


class ApiConfig(Section):
    """The API worker (``tubeline api serve`` / ``tubeline worker api``)."""

    host: str = Field(
        "127.0.0.1",
        title="Listen address",
        description="Address to bind; loopback by default. Put a TLS-terminating proxy in front for other hosts.",
        min_length=1,
        max_length=255,
    )
    port: int = Field(8080, title="Port", description="TCP port of the API and web UI (0: any free port).",
                      ge=0, le=65535)
    session_ttl_s: int = Field(
        8 * 3600, title="Session lifetime", description="Seconds a UI login stays valid.", ge=60, le=7 * 86400
    )
    secure_cookies: bool = Field(
        False,
        title="Secure cookies",
        description="Mark the session cookie Secure (only sent over HTTPS). Turn on behind a TLS proxy.",
    )
    login_max_failures: int = Field(
        5,
        title="Login failures before lock-out",
        description="Failed logins of one user name from one client address within the lock-out window before "
        "further attempts of that pair are refused (other addresses and other users are not affected).",
        ge=1,
        le=1000,
    )
    login_max_failures_per_name: int = Field(
        50,
        title="Login failures per user name",
        description="Failed logins of one user name from all addresses together within the lock-out window "
        "before attempts from browsers without that user's device cookie are refused.",
        ge=1,
        le=100_000,
    )
    login_lockout_s: int = Field(
        900, title="Lock-out window", description="Seconds failed logins are counted and a lock-out lasts.",
        ge=1, le=86400,
    )
    device_cookie_days: int = Field(
        90,
        title="Device cookie lifetime",
        description="Days a browser that logged in stays trusted for its user when that user's name is under "
        "attack from many addresses.",
        ge=1,
        le=3650,
    )
    case_pattern: str = Field(
        DEFAULT_CASE_PATTERN,
        title="Case reference pattern",
        description="Regular expression a case reference must match in full (face search, trajectories, exports).",
        min_length=1,
        max_length=500,
    )
    face_min_quality: float = Field(
        0.3,
        title="Minimum query-face quality",
        description="Face search refuses a query face whose quality score (0..1) is below this.",
        ge=0.0,
        le=1.0,
    )
    face_max_k: int = Field(100, title="Maximum k", description="Upper bound of k in face search.", ge=1, le=10_000)
    max_results: int = Field(
        500, title="Maximum results", description="Upper bound of 'limit' in searches.", ge=1, le=100_000
    )
    max_upload_bytes: int = Field(
        10 * 1024 * 1024, title="Maximum upload", description="Largest accepted query image in bytes.",
        ge=1024, le=100 * 1024 * 1024,
    )
    max_image_pixels: int = Field(
        40_000_000,
        title="Maximum image pixels",
        description="Largest query image in pixels (width x height, read from its header before decoding).",
        ge=10_000,
        le=300_000_000,
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        title="Maximum request body",
        description="Largest request body of calls without an upload, in bytes (enforced while it streams in).",
        ge=1024,
        le=100 * 1024 * 1024,
    )
    clip_before_s: float = Field(
        5.0, title="Clip lead-in", description="Default seconds of recording before a sighting.", ge=0.0, le=600.0
    )
    clip_after_s: float = Field(
        5.0, title="Clip tail", description="Default seconds of recording after a sighting ends.", ge=0.0, le=600.0
    )
    clip_max_s: float = Field(
        300.0, title="Longest clip", description="Longest clip an export may cover, in seconds.", ge=1.0, le=7200.0
    )
    presign_media: bool = Field(
        False,
        title="Redirect media to presigned URLs",
        description="On the S3 store, answer crop and export downloads with a redirect to a short-lived presigned "
        "URL instead of streaming through the API (the browser must reach the S3 endpoint).",
    )
    media_url_ttl_s: int = Field(
        900, title="Media link lifetime", description="Seconds a signed thumbnail/crop link stays valid.",
        ge=10, le=86400,
    )
    refresh_s: float = Field(
        5.0, title="Catalog refresh", description="Seconds between refreshes of the search catalog.",
        ge=0.2, le=3600.0,
    )
    sse_keepalive_s: float = Field(
        15.0, title="SSE keep-alive", description="Seconds between keep-alive comments on the alerts stream.",
        ge=0.1, le=300.0,
    )
    stream_recheck_s: float = Field(
        2.0,
        title="Stream re-check interval",
        description="Seconds between checks of an open stream's credentials, role and camera scope; the stream "
        "closes when any of them changed.",
        ge=0.1,
        le=60.0,
    )
    audit_anchor_every: int = Field(
        100,
        title="Audit anchor interval",
        description="Entries between anchors (an anchor records the heads of every other writer's chain).",
        ge=1,
        le=1_000_000,
    )
    web_dir: str | None = Field(
        None,
        title="Web UI folder",
        description="Folder with the UI's static files; empty: the checkout's web/, else ./web.",
        max_length=500,
    )
    cache_dir: str = Field(
        "var/cache/api",
        title="Cache folder",
        description="Local folder for cut clips and synopses being served (relative to the working directory).",
        min_length=1,
        max_length=500,
    )
    cache_max_mb: int = Field(
        4096,
        title="Cache size",
        description="Upper bound of the cache folder in MB; the least recently served files go first.",
        ge=16,
        le=10_000_000,
    )
    synopsis_max_window_s: float = Field(
        86_400.0,
        title="Longest synopsis window",
        description="The longest source window one synopsis request may cover, in seconds.",
        ge=60.0,
        le=7 * 86_400.0,
    )
    synopsis_max_pending: int = Field(
        3,
        title="Synopsis builds pending per user",
        description="Synopsis builds one user may have queued or running at once.",
        ge=1,
        le=1000,
    )
    synopsis_max_per_hour: int = Field(
        20, title="Synopsis builds per hour", description="New synopsis builds one user may request per hour.",
        ge=1, le=100_000,
    )
    exports_max_per_hour: int = Field(
        60, title="Exports per hour", description="Clip exports one user may make per hour.", ge=1, le=100_000,
    )
    build_synopses: bool = Field(
        False,
        title="Build synopses in the API",
        description="Build requested synopses inside the API process (embedded deployments such as "
        "'tubeline up'); otherwise the synopsis worker ('tubeline worker synopsis') builds them.",
    )

    live_jpeg_max_fps: float = Field(
        12.0,
        title="Live JPEG rate",
        description="Most pictures per second of a live view the server transcodes to JPEG (codecs a browser "
        "cannot play through Media Source Extensions, e.g. MS-MPEG4).",
        gt=0.0,
        le=60.0,
    )
    live_recheck_s: float = Field(
        5.0,
        title="Live permission re-check",
        description="Seconds between re-checks of a live viewer's login, role and camera scope; a stream ends "
        "when any of them no longer allows it.",
        ge=0.5,
        le=300.0,
    )

    map_tile_url: str | None = Field(
        None,
        title="Map tile URL",
        description="Raster tiles for the camera map from the site's own tile server, e.g. "
        "https://tiles.example/{z}/{x}/{y}.png (its origin is added to the page's image sources); empty: the "
        "offline basemap of country boundaries only.",
        max_length=500,
        pattern=r"^https?://[^\s'\";]+$",
    )
    map_attribution: str = Field(
        "", title="Map attribution", description="Text shown under the map for the tiles' source.", max_length=200
    )

    @field_validator("map_tile_url")
    @classmethod
    def _tile_placeholders(cls, value: str | None) -> str | None:
        if value is not None and not all(p in value for p in ("{z}", "{x}", "{y}")):
            msg = "map_tile_url needs the {z}, {x} and {y} placeholders"
            raise ValueError(msg)
        return value

    @field_validator("case_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            msg = f"case_pattern is not a valid regular expression: {exc}"
            raise ValueError(msg) from None
        return value
