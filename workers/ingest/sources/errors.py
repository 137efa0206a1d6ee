"""FFmpeg/PyAV and socket errors → typed :class:`~workers.ingest.sources.base.SourceError`s with readable text.

FFmpeg reports RTSP and HTTP statuses as "tag" error codes (``AVERROR_HTTP_BAD_REQUEST`` is ``-MKTAG(0xF8,
'4','0','0')``, which Python shows as ``[Errno 808465656]``) and a refused transport (RTSP 461) as
``EPROTONOSUPPORT``. Each is mapped to a reason (auth, not_found, network, protocol, timeout, codec) and a
sentence an operator can act on; the message never includes the URL (PyAV appends it, credentials included,
to ``str(exc)``), only ``what`` (already redacted by the caller) and FFmpeg's own text.
"""

from __future__ import annotations

import errno

import av.error

from workers.ingest.sources.base import (
    SourceAuthError,
    SourceCodecError,
    SourceError,
    SourceNotFound,
    SourceProtocolError,
    SourceTimeout,
    SourceUnreachable,
)

_NETWORK = {errno.ECONNREFUSED: "connection refused", errno.ECONNRESET: "connection reset by the server",
            errno.EHOSTUNREACH: "host unreachable", errno.ENETUNREACH: "network unreachable",
            errno.EPIPE: "connection closed by the server", errno.ECONNABORTED: "connection aborted",
            errno.EADDRNOTAVAIL: "address not available", errno.ENOTCONN: "not connected"}


class TransportRefused(SourceProtocolError):
    """The RTSP server does not offer the requested transport (461 Unsupported Transport, or 400 to SETUP)."""


def ffmpeg_tag(code: int) -> str | None:
    """The four characters of an FFmpeg tag error (``808465656`` → ``'\\xf8400'``), or None for a plain errno."""
    value = abs(code)
    if value < 1 << 24:
        return None
    return bytes((value >> shift) & 0xFF for shift in (0, 8, 16, 24)).decode("latin-1")


def describe(exc: BaseException) -> str:
    """FFmpeg's or the OS's text for ``exc`` without the ``[Errno N]`` prefix and without the file name/URL."""
    text = getattr(exc, "strerror", None) or ""
    if not text:
        text = str(exc.args[0]) if exc.args else type(exc).__name__
    code = getattr(exc, "errno", None)
    tag = ffmpeg_tag(code) if isinstance(code, int) else None
    if tag is not None and not text.strip():
        text = f"FFmpeg error {tag!r}"
    return text.strip()


def classify_av_error(exc: BaseException, what: str) -> SourceError:
    """Map a PyAV/OS exception to a typed :class:`SourceError` whose message says what happened."""
    if isinstance(exc, SourceError):
        return exc
    text = describe(exc)
    code = getattr(exc, "errno", None)
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError | av.error.PermissionError):
        return SourceAuthError(f"{what}: authentication failed ({text}): check the user name and password")
    if isinstance(exc, av.error.HTTPNotFoundError | av.error.FileNotFoundError | FileNotFoundError):
        return SourceNotFound(f"{what}: not found ({text})")
    if isinstance(exc, av.error.HTTPBadRequestError):
        return TransportRefused(f"{what}: the server answered 400 Bad Request (some servers answer so to a "
                                "transport they do not offer)")
    if code == errno.EPROTONOSUPPORT:
        return TransportRefused(f"{what}: the server does not offer this transport (RTSP 461 Unsupported Transport)")
    if isinstance(exc, av.error.HTTPClientError):
        return SourceProtocolError(f"{what}: the server refused the request ({text})")
    if isinstance(exc, av.error.HTTPServerError):
        return SourceProtocolError(f"{what}: the server failed ({text}); it may be overloaded or out of streams")
    if isinstance(exc, av.error.ExitError | av.error.TimeoutError | TimeoutError) or code == errno.ETIMEDOUT:
        return SourceTimeout(f"{what}: timed out ({text})")
    if code in _NETWORK:
        return SourceUnreachable(f"{what}: {_NETWORK[code]}")
    if isinstance(exc, ConnectionError):
        return SourceUnreachable(f"{what}: {text}")
    if isinstance(exc, av.error.DecoderNotFoundError | av.error.DemuxerNotFoundError):
        return SourceCodecError(f"{what}: unsupported ({text})")
    if isinstance(exc, av.error.InvalidDataError):
        return SourceProtocolError(f"{what}: invalid data ({text})")
    if isinstance(exc, av.error.EOFError):
        return SourceUnreachable(f"{what}: the connection ended ({text})")
    if code == errno.EACCES:
        return SourceAuthError(f"{what}: permission denied ({text})")
    tag = ffmpeg_tag(code) if isinstance(code, int) else None
    return SourceError(f"{what}: {text}" + (f" (FFmpeg error {tag!r})" if tag else f" (errno {code})" if code else ""))
