"""SDP offers and answers for GB/T 28181 INVITE (Annex F 2016 / G 2022): live and playback, UDP and TCP.

The offer always lists PS (96), MPEG-4 (97), H.264 (98) and H.265 (99) as receivable; ``y=`` carries the
10-digit SSRC (``0`` live / ``1`` playback, domain digits 4-8, a 4-digit counter). The answer's ``y=``
wins: devices may change the SSRC. ``tcp`` in the media protocol (2011-era ``m=video 6000 tcp 96``) is
accepted as TCP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workers.ingest.gb28181.sip import ascii_int

MODES = ("udp", "tcp_passive", "tcp_active")


class SdpError(ValueError):
    """An SDP answer we cannot use."""


def make_ssrc(playback: bool, domain: str, counter: int) -> str:
    return f"{1 if playback else 0}{domain[3:8]}{counter % 10000:04d}"


def build_offer(*, channel_id: str, media_host: str, media_port: int, ssrc: str, mode: str,
                playback: tuple[datetime, datetime] | None = None, download_speed: int | None = None) -> bytes:
    """The INVITE's SDP: live (``s=Play``), playback (``s=Playback``, ``u=``, ``t=`` epoch seconds) or, with
    ``download_speed``, download (``s=Download`` + ``a=downloadspeed:N``, 2016 9.9)."""
    if mode not in MODES:
        msg = f"unknown media mode {mode!r}"
        raise ValueError(msg)
    if download_speed is not None and playback is None:
        msg = "a download needs a time range"
        raise ValueError(msg)
    proto = "RTP/AVP" if mode == "udp" else "TCP/RTP/AVP"
    name = "Download" if download_speed is not None else "Playback" if playback else "Play"
    lines = ["v=0", f"o={channel_id} 0 0 IN IP4 {media_host}", f"s={name}"]
    if playback:
        lines.append(f"u={channel_id}:0")
    lines.append(f"c=IN IP4 {media_host}")
    start, end = (int(playback[0].timestamp()), int(playback[1].timestamp())) if playback else (0, 0)
    lines += [f"t={start} {end}", f"m=video {media_port} {proto} 96 97 98 99", "a=recvonly",
              "a=rtpmap:96 PS/90000", "a=rtpmap:97 MPEG4/90000", "a=rtpmap:98 H264/90000", "a=rtpmap:99 H265/90000"]
    if mode != "udp":
        lines += [f"a=setup:{'passive' if mode == 'tcp_passive' else 'active'}", "a=connection:new"]
    if download_speed is not None:
        lines.append(f"a=downloadspeed:{download_speed}")
    lines.append(f"y={ssrc}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@dataclass(frozen=True)
class Answer:
    host: str
    port: int
    transport: str  # "udp" or "tcp"
    setup: str | None
    ssrc: int | None
    payload_types: dict[int, str]
    direction: str | None


MAX_SDP = 16 * 1024


def parse_answer(body: bytes) -> Answer:
    """The media address, transport, setup role, SSRC and payload types of an SDP answer (or offer)."""
    if len(body) > MAX_SDP:
        msg = f"SDP of {len(body)} bytes is larger than {MAX_SDP}"
        raise SdpError(msg)
    text = body.decode("utf-8", errors="replace")
    host = media_host = None
    port = None
    transport = "udp"
    setup = direction = None
    ssrc = None
    pts: dict[int, str] = {}
    in_video = False
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "c":
            parts = value.split()
            if len(parts) >= 3:
                if in_video:
                    media_host = parts[2]
                else:
                    host = parts[2]
        elif kind == "m":
            parts = value.split()
            in_video = bool(parts) and parts[0] == "video"
            if in_video and len(parts) >= 3:
                port = ascii_int(parts[1].split("/")[0], 5)
                if port is None or port > 65535:
                    msg = f"bad media port in m={value[:80]!r}"
                    raise SdpError(msg)
                transport = "tcp" if "tcp" in parts[2].lower() else "udp"
        elif kind == "a" and in_video:
            attr, _, arg = value.partition(":")
            if attr == "setup":
                setup = arg.strip().lower()
            elif attr == "rtpmap":
                num, _, name = arg.partition(" ")
                number = ascii_int(num, 3)
                if number is not None and number <= 127:
                    pts[number] = name.split("/")[0].upper()
            elif attr in ("sendonly", "recvonly", "sendrecv", "inactive"):
                direction = attr
        elif kind == "y":
            ssrc = ascii_int(value, 10)
            if ssrc is None or ssrc > 0xFFFFFFFF:
                msg = f"bad y= SSRC {value[:40]!r}"
                raise SdpError(msg)
    host = media_host or host
    if host is None or port is None:
        msg = "answer has no c= address or no m=video port"
        raise SdpError(msg)
    return Answer(host, port, transport, setup, ssrc, pts, direction)
