"""INVITE dialogs for GB/T 28181 media: live and playback, UDP / TCP passive / TCP active, BYE both ways.

``SessionManager.invite`` sends the INVITE with our SDP offer, takes the SSRC from the device's answer
(devices may change it), ACKs the 200, connects (TCP active, with retries: devices only listen after
the ACK) and starts the media receiver. A device BYE is answered 200 and ends the session; our BYE goes
in the dialog (Call-ID, our From tag, the device's To tag, CSeq + 1) to the Contact of the 200.

The manager works for a :class:`Signalling` side (the platform in :mod:`workers.ingest.gb28181.platform`):
the few things it needs of it are named there, so this module does not depend on the platform.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pipeline.config.ingest import Gb28181Config
from workers.ingest.gb28181.media import MediaReceiver, PortAllocator
from workers.ingest.gb28181.ps import AccessUnit
from workers.ingest.gb28181.sdp import SdpError, build_offer, make_ssrc, parse_answer
from workers.ingest.gb28181.sip import (
    NameAddr,
    SipMessage,
    SipParseError,
    new_tag,
    parse_name_addr,
    response_to,
)
from workers.ingest.gb28181.transport import Peer, SipTimeout, SipTransport
from workers.ingest.sources.base import (
    SourceAuthError,
    SourceCodecError,
    SourceError,
    SourceNotFound,
    SourceProtocolError,
    SourceTimeout,
    SourceUnreachable,
)

log = logging.getLogger(__name__)


class RegisteredDevice(Protocol):
    """A device as the platform knows it: where it answers and whether it is online."""

    @property
    def peer(self) -> Peer: ...

    @property
    def online(self) -> bool: ...


class Signalling(Protocol):
    """What INVITE dialogs need of the SIP server they run on."""

    @property
    def config(self) -> Gb28181Config: ...

    @property
    def devices(self) -> Mapping[str, RegisteredDevice]: ...

    @property
    def ports(self) -> PortAllocator: ...

    @property
    def transport(self) -> SipTransport | None: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def media_host(self) -> str: ...

    def new_request(self, method: str, uri: str, peer: Peer, *, to: str, call_id: str | None = None,
                    from_tag: str | None = None, cseq: int = 1, body: bytes = b"",
                    content_type: str | None = None, extra: list[tuple[str, str]] | None = None,
                    from_id: str | None = None) -> SipMessage: ...


@dataclass
class MediaSession:
    """One media dialog and its receiver."""

    manager: SessionManager
    device_id: str
    channel_id: str
    call_id: str
    from_tag: str
    to_header: str
    target: str
    peer: Peer
    cseq: int
    receiver: MediaReceiver
    ssrc: int
    playback: bool
    ack: SipMessage | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    rtsp_cseq: int = 0
    end_reason: str = ""
    end_kind: str = "eof"  # the source reason the channel reports: eof (BYE, end of file), timeout, network, stopped

    def read(self, timeout: float) -> AccessUnit | None:
        return self.receiver.read(timeout)

    def next_cseq(self) -> int:
        """The CSeq of our next request in this dialog (INFO, BYE)."""
        self.cseq += 1
        return self.cseq

    def control(self, verb: str, *, npt: float | None = None, scale: float | None = None) -> int:
        """Playback control (2016 Annex B, MANSRTSP over INFO): ``PLAY`` (resume, or seek with ``npt``: seconds
        from the start of the recording), ``PLAY`` with ``scale`` (speed; negative = reverse in 2022),
        ``PAUSE``, ``TEARDOWN``. Returns the device's status code (raises on no answer)."""
        self.rtsp_cseq += 1
        lines = [f"{verb} RTSP/1.0", f"CSeq: {self.rtsp_cseq}"]
        if verb == "PLAY":
            lines.append(f"Range: npt={npt:g}-" if npt is not None else "Range: npt=now-")
            if scale is not None:
                lines.append(f"Scale: {scale:g}")
        elif verb == "PAUSE":
            lines.append("PauseTime: now")
        body = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        return self.manager.send_info(self, body)

    def idle_s(self) -> float:
        """Seconds since the last RTP packet (or since the session started, if none came)."""
        return time.monotonic() - self.receiver.last_packet

    def end(self, reason: str, kind: str = "eof") -> None:
        if not self.ended.is_set():
            self.end_reason, self.end_kind = reason, kind
            self.ended.set()
            self.receiver.close()

    def close(self) -> None:
        """Send BYE (unless the device already ended the dialog) and release the media port."""
        if not self.ended.is_set():
            self.end("closed by the platform")
            self.manager.send_bye(self)
        self.receiver.close()
        self.manager.forget(self)


class SessionManager:
    """The media dialogs of one platform, by Call-ID."""

    def __init__(self, platform: Signalling) -> None:
        self.platform = platform
        self.sessions: dict[str, MediaSession] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    # -- INVITE ---------------------------------------------------------------------------------------
    def invite(self, device_id: str, channel_id: str, *, mode: str | None = None,
               playback: tuple[datetime, datetime] | None = None, download_speed: int | None = None) -> MediaSession:
        platform = self.platform
        cfg = platform.config
        dev = platform.devices.get(device_id)
        if dev is None:
            msg = f"GB/T 28181 device {device_id} (channel {channel_id}) is not registered"
            raise SourceNotFound(msg)
        if not dev.online:
            msg = f"GB/T 28181 device {device_id} is offline (no keepalive)"
            raise SourceTimeout(msg)
        mode = mode or cfg.media_transport
        receiver = MediaReceiver(mode, cfg.media_bind_host, platform.ports, reorder_window=cfg.reorder_window)
        offered = make_ssrc(playback is not None, cfg.domain, next(self._counter))
        body = build_offer(channel_id=channel_id, media_host=platform.media_host,
                           media_port=receiver.port if mode != "tcp_active" else 9, ssrc=offered, mode=mode,
                           playback=playback, download_speed=download_speed)
        from_tag = new_tag()
        req = platform.new_request(
            "INVITE", f"sip:{channel_id}@{dev.peer.host}:{dev.peer.port}", dev.peer,
            to=f"<sip:{channel_id}@{cfg.domain}>", from_tag=from_tag, body=body, content_type="APPLICATION/SDP",
            extra=[("Contact", f"<sip:{cfg.server_id}@{platform.host}:{platform.port}>"),
                   ("Subject", f"{channel_id}:{offered},{cfg.server_id}:0")],
        )
        try:
            return self._complete(req, receiver, dev.peer, device_id, channel_id, offered, mode, playback)
        except BaseException:
            receiver.close()
            raise

    def _complete(self, req: SipMessage, receiver: MediaReceiver, peer: Peer, device_id: str, channel_id: str,
                  offered: str, mode: str, playback: tuple[datetime, datetime] | None) -> MediaSession:
        assert self.platform.transport is not None
        what = f"INVITE {'playback' if playback else 'live'} {channel_id} on {device_id} ({mode})"
        try:
            resp = self.platform.transport.request(req, peer, timeout=self.platform.config.invite_timeout_s)
        except SipTimeout as exc:
            msg = f"{what}: {exc}"
            raise SourceTimeout(msg) from None
        except OSError as exc:
            msg = f"{what}: {exc}"
            raise SourceUnreachable(msg) from None
        if resp.status is None or resp.status >= 300:
            raise _invite_error(what, resp)
        to_header = resp.require("To")
        contact = resp.get("Contact")
        target = parse_name_addr(contact).raw_uri if contact else req.uri or ""
        session = MediaSession(self, device_id, channel_id, req.call_id, parse_name_addr(req.require("From")).tag or "",
                               to_header, target, peer, req.cseq[0], receiver, int(offered), playback is not None)
        session.ack = self._ack(session, req)
        self._send(session.ack, peer)
        try:
            answer = parse_answer(resp.body)
        except SdpError as exc:
            self.send_bye(session)
            msg = f"{what}: unusable SDP answer: {exc}"
            raise SourceProtocolError(msg) from None
        session.ssrc = answer.ssrc if answer.ssrc is not None else int(offered)
        if mode == "tcp_active":
            try:
                receiver.connect(answer.host, answer.port, attempts=5, interval_s=1.0)
            except ConnectionError as exc:
                self.send_bye(session)
                msg = f"{what}: {exc}"
                raise SourceUnreachable(msg) from None
        receiver.start(session.ssrc)
        with self._lock:
            self.sessions[session.call_id] = session
        log.info("%s: session up, SSRC %d (offered %s), media port %d", what, session.ssrc, offered, receiver.port)
        return session

    def _ack(self, session: MediaSession, invite: SipMessage) -> SipMessage:
        return self.platform.new_request(
            "ACK", session.target, session.peer, to=session.to_header, call_id=session.call_id,
            from_tag=session.from_tag, cseq=session.cseq,
            extra=[("Contact", f"<sip:{self.platform.config.server_id}@{self.platform.host}:{self.platform.port}>")],
        )

    def _send(self, message: SipMessage, peer: Peer) -> None:
        assert self.platform.transport is not None
        try:
            self.platform.transport.send(message, peer)
        except OSError as exc:
            log.info("could not send %s to %s: %s", message.summary(), peer, exc)

    # -- BYE --------------------------------------------------------------------------------------------
    def send_info(self, session: MediaSession, body: bytes) -> int:
        """INFO in the dialog carrying MANSRTSP; the device's final status (raises SourceError without one)."""
        info = self.platform.new_request("INFO", session.target, session.peer, to=session.to_header,
                                         call_id=session.call_id, from_tag=session.from_tag, cseq=session.next_cseq(),
                                         body=body, content_type="Application/MANSRTSP")
        assert self.platform.transport is not None
        try:
            resp = self.platform.transport.request(info, session.peer, timeout=5.0)
        except (OSError, SipTimeout) as exc:
            msg = f"playback control of {session.channel_id}: {exc}"
            raise SourceTimeout(msg) from None
        log.info("%s on %s: %s", body.split(b"\r\n", 1)[0].decode(), session.channel_id, resp.status)
        return resp.status or 0

    def send_bye(self, session: MediaSession) -> None:
        """BYE in the dialog; waits briefly for the 200 (never fails the caller)."""
        bye = self.platform.new_request("BYE", session.target, session.peer, to=session.to_header,
                                        call_id=session.call_id, from_tag=session.from_tag, cseq=session.next_cseq())
        assert self.platform.transport is not None
        try:
            resp = self.platform.transport.request(bye, session.peer, timeout=4.0)
            log.info("BYE %s on %s: %s", session.channel_id, session.device_id, resp.status)
        except (OSError, SipTimeout) as exc:
            log.info("BYE %s on %s got no answer: %s", session.channel_id, session.device_id, exc)

    def on_bye(self, req: SipMessage, peer: Peer) -> None:
        with self._lock:
            session = self.sessions.get(req.call_id)
        assert self.platform.transport is not None
        if session is None:
            self.platform.transport.respond(req, response_to(req, 481), peer)
            return
        self.platform.transport.respond(req, response_to(req, 200), peer)
        log.info("device %s ended the session of %s (BYE)", session.device_id, session.channel_id)
        session.end("BYE from the device")
        self.forget(session)

    def on_media_end(self, call_id: str) -> None:
        """MediaStatus 121 (end of file during playback): release with our BYE."""
        with self._lock:
            session = self.sessions.get(call_id)
        if session is not None:
            session.end("end of recording (MediaStatus 121)")
            self.send_bye(session)
            self.forget(session)

    def on_stray_response(self, resp: SipMessage, peer: Peer) -> None:
        """A retransmitted 200 to an INVITE we already ACKed: ACK it again."""
        try:
            number, method = resp.cseq
            call_id = resp.call_id
        except SipParseError:
            return
        with self._lock:
            session = self.sessions.get(call_id)
        if (session is not None and method == "INVITE" and resp.status == 200 and session.ack is not None
                and number == session.ack.cseq[0]):
            self._send(session.ack, peer)

    # -- bookkeeping ----------------------------------------------------------------------------------
    def forget(self, session: MediaSession) -> None:
        with self._lock:
            if self.sessions.get(session.call_id) is session:
                del self.sessions[session.call_id]

    def close_device(self, device_id: str, reason: str = "device unregistered", kind: str = "stopped", *,
                     stalled_s: float | None = None, bye: bool = False) -> int:
        """End the device's sessions (only those without RTP for ``stalled_s`` seconds, when given); the
        channels report ``kind``. With ``bye`` each gets our BYE (a device that restarted may still know it)."""
        with self._lock:
            sessions = [s for s in self.sessions.values() if s.device_id == device_id
                        and (stalled_s is None or s.idle_s() >= stalled_s)]
        for session in sessions:
            session.end(reason, kind)
            if bye:
                threading.Thread(target=self.send_bye, args=(session,), daemon=True).start()
            self.forget(session)
        return len(sessions)

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self.sessions.values())
        for session in sessions:
            session.close()


def _invite_error(what: str, resp: SipMessage) -> SourceError:
    status = resp.status or 0
    text = f"{what}: device answered {status} {resp.reason}"
    if status in (401, 403, 407):
        return SourceAuthError(text)
    if status in (404, 410, 480, 484, 604):
        return SourceNotFound(text)
    if status in (415, 488, 606):
        return SourceCodecError(text)
    return SourceError(text, reason="protocol" if 400 <= status < 500 else "error")


__all__ = ["MediaSession", "NameAddr", "RegisteredDevice", "SessionManager", "Signalling"]
