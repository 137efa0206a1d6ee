"""FFmpeg/PyAV errors become typed source errors with readable text (no raw tag numbers, no URL)."""

from __future__ import annotations

import errno

import av.error
import pytest

from workers.ingest.sources.errors import TransportRefused, classify_av_error, ffmpeg_tag
from workers.ingest.sources.rtsp import _try_other_transport


def ffmpeg_error(code: int) -> Exception:
    try:
        av.error.err_check(-code, filename="rtsp://admin:secret@10.0.0.1/s")
    except Exception as exc:  # noqa: BLE001 - whatever PyAV raises for this code
        return exc
    raise AssertionError(code)


def tag(a: int, b: str, c: str, d: str) -> int:
    return a | ord(b) << 8 | ord(c) << 16 | ord(d) << 24


@pytest.mark.parametrize(("code", "reason", "text"), [
    (tag(0xF8, "4", "0", "0"), "protocol", "400 Bad Request"),            # shown as 'Errno 808465656' before
    (errno.EPROTONOSUPPORT, "protocol", "461 Unsupported Transport"),
    (tag(0xF8, "4", "0", "1"), "auth", "authentication failed"),
    (tag(0xF8, "4", "0", "3"), "auth", "authentication failed"),
    (tag(0xF8, "4", "0", "4"), "not_found", "not found"),
    (tag(0xF8, "4", "X", "X"), "protocol", "refused the request"),
    (tag(0xF8, "5", "X", "X"), "protocol", "the server failed"),
    (errno.ECONNREFUSED, "unreachable", "connection refused"),
    (errno.EHOSTUNREACH, "unreachable", "host unreachable"),
    (errno.ECONNRESET, "unreachable", "connection reset"),
    (errno.ETIMEDOUT, "timeout", "timed out"),
    (tag(ord("E"), "X", "I", "T"), "timeout", "timed out"),
    (tag(ord("I"), "N", "D", "A"), "protocol", "invalid data"),
])
def test_ffmpeg_errors_are_mapped_to_reasons_and_readable_text(code: int, reason: str, text: str) -> None:
    error = classify_av_error(ffmpeg_error(code), "RTSP rtsp://10.0.0.1/s over TCP")
    assert error.reason == reason
    assert text in str(error)
    assert "Errno" not in str(error) and "secret" not in str(error) and str(code) not in str(error)


def test_transport_refusals_and_udp_silence_trigger_the_other_transport() -> None:
    refused = classify_av_error(ffmpeg_error(errno.EPROTONOSUPPORT), "x")
    bad_request = classify_av_error(ffmpeg_error(tag(0xF8, "4", "0", "0")), "x")
    assert isinstance(refused, TransportRefused) and isinstance(bad_request, TransportRefused)
    assert _try_other_transport(refused, "tcp") and _try_other_transport(bad_request, "udp")
    silent = classify_av_error(ffmpeg_error(errno.ETIMEDOUT), "x")
    assert _try_other_transport(silent, "udp") and not _try_other_transport(silent, "tcp")
    assert not _try_other_transport(classify_av_error(ffmpeg_error(errno.ECONNREFUSED), "x"), "tcp")


def test_unknown_ffmpeg_tags_are_spelled_out() -> None:
    assert ffmpeg_tag(808465656) == "\xf8400" and ffmpeg_tag(errno.EIO) is None
    error = classify_av_error(OSError(tag(ord("Q"), "Q", "Q", "Q"), ""), "x")
    assert "FFmpeg error 'QQQQ'" in str(error)
