"""Cascade (级联): Tubeline as a lower platform under one or more superior platforms.

Per configured superior (:class:`pipeline.config.ingest.SuperiorConfig`) a :class:`SuperiorLink`:

* registers (``REGISTER`` with digest: the 401 challenge answered with MD5, ``qop=auth`` when offered), renews
  at 80 % of the granted expiry, sends keepalives and registers again after ``keepalive_misses`` unanswered ones
  or a refused renewal (retrying every ``retry_s``);
* answers the superior's Catalog query with the cameras in this link's scope (``camera_ids`` and cameras whose
  administrative unit starts with one of ``admin_units``; only 20-digit GB IDs, kept as they are, with their
  civil codes), paged 20 items a time with ``SumNum``, and DeviceInfo/DeviceStatus queries;
* serves its INVITEs for those cameras by forwarding the camera's live stream as PS over RTP (UDP, TCP to it or
  from it, the SSRC it offered) from the running camera's original packets (:mod:`workers.ingest.gb28181.forward`),
  and ends the stream on its BYE (or ours when Tubeline stops);
* forwards device alarms of cameras in scope (``Notify Alarm``).

Requests from a superior arrive on the platform's own SIP port; the platform hands them here by the ``From``
user (the superior's ID).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipeline.config.ingest import CameraSpec, SuperiorConfig
from workers.ingest.gb28181 import gbtime, manscdp
from workers.ingest.gb28181.digest import authorization
from workers.ingest.gb28181.forward import Forwarder
from workers.ingest.gb28181.sdp import SdpError, parse_answer
from workers.ingest.gb28181.session import Signalling
from workers.ingest.gb28181.sip import (
    SipMessage,
    ascii_int,
    new_tag,
    parse_name_addr,
    response_to,
)
from workers.ingest.gb28181.transport import Peer, SipTimeout

log = logging.getLogger(__name__)

PAGE = 20
TapProvider = Callable[[str], Callable[..., Any] | None]  # camera ID -> its runner's add_tap, or None if not running


class SuperiorLink:
    def __init__(self, signalling: Signalling, cfg: SuperiorConfig, *, cameras: Callable[[], list[CameraSpec]],
                 taps: TapProvider) -> None:
        self.sig, self.cfg = signalling, cfg
        self.local_id = cfg.local_id or signalling.config.server_id
        self.cameras, self.taps = cameras, taps
        self.registered = False
        self.registrations = 0
        self.clock_skew_s: float | None = None
        self.sig_tz = gbtime.zone(signalling.config.time_zone)
        self.catalog_answers = 0
        self.streams: dict[str, tuple[Forwarder, SipMessage, str]] = {}  # by Call-ID: forwarder, INVITE, our tag
        self._call_id = f"{secrets.token_hex(10)}@{signalling.host}"  # the registration's, kept across renewals
        self._tag = new_tag()
        self._cseq = itertools.count(1)
        self._sn = itertools.count(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gb-superior-{cfg.server_id}", daemon=True)

    # -- registration and keepalive ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for call_id in list(self.streams):
            self._end_stream(call_id, send_bye=True)
        if self.registered:
            try:
                self._register(0)
            except (OSError, SipTimeout, RuntimeError) as exc:
                log.debug("unregistering from %s: %s", self.cfg.server_id, exc)
        if self._thread.is_alive():
            self._thread.join(5)

    def peer(self) -> Peer:
        assert self.sig.transport is not None
        if self.cfg.transport == "tcp":
            return self.sig.transport.connect(self.cfg.host, self.cfg.port)
        return Peer("UDP", self.cfg.host, self.cfg.port)

    def _request(self, method: str, uri: str, *, to: str, call_id: str | None = None, body: bytes = b"",
                 content_type: str | None = None, extra: list[tuple[str, str]] | None = None,
                 from_tag: str | None = None) -> SipMessage:
        via = Peer("TCP" if self.cfg.transport == "tcp" else "UDP", self.cfg.host, self.cfg.port)
        return self.sig.new_request(method, uri, via, to=to, call_id=call_id, from_tag=from_tag or self._tag,
                                    cseq=next(self._cseq), body=body, content_type=content_type, extra=extra,
                                    from_id=self.local_id)

    def _send(self, req: SipMessage, timeout: float = 10.0) -> SipMessage:
        assert self.sig.transport is not None
        return self.sig.transport.request(req, self.peer(), timeout=timeout)

    def _register(self, expires: int) -> int:
        """One registration (with the digest round); the granted expiry."""
        uri = f"sip:{self.cfg.server_id}@{self.cfg.domain}"
        me = f"<sip:{self.local_id}@{self.local_id[:10]}>"
        extra = [("Contact", f"<sip:{self.local_id}@{self.sig.host}:{self.sig.port}>"), ("Expires", str(expires)),
                 ("X-GB-Ver", "2.0")]  # 2016 semantics (2022 platforms use it to negotiate; 3.0 is 2022)
        resp = self._send(self._request("REGISTER", uri, to=me, call_id=self._call_id, extra=extra))
        if resp.status in (401, 407):
            header = resp.get("WWW-Authenticate") or resp.get("Proxy-Authenticate") or ""
            auth = authorization(header, method="REGISTER", uri=uri, username=self.local_id,
                                 password=self.cfg.password.get_secret_value())
            name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
            resp = self._send(self._request("REGISTER", uri, to=me, call_id=self._call_id, extra=[*extra, (name, auth)]))
        if resp.status != 200:
            msg = f"superior {self.cfg.server_id} answered REGISTER with {resp.status} {resp.reason}"
            raise RuntimeError(msg)
        self._clock_skew(resp.get("Date"))
        granted = ascii_int(resp.get("Expires") or "")
        return expires if granted is None else granted

    def _clock_skew(self, date: str | None) -> None:
        """The superior's ``Date`` (9.10: a lower platform may set its clock from it): we only measure the skew
        and warn above 2 s — Tubeline's clock belongs to the host's NTP, not to a peer."""
        when = gbtime.parse((date or "")[:19], self.sig_tz) if date else None
        if when is None:
            return
        self.clock_skew_s = (when - datetime.now(UTC)).total_seconds()
        if abs(self.clock_skew_s) > 2.0:
            log.warning("superior %s's clock is %.1f s off ours (Date: %s)", self.cfg.server_id, self.clock_skew_s,
                        date)

    def _keepalive(self) -> bool:
        body = manscdp.document("Notify", "Keepalive", next(self._sn), self.local_id, [("Status", "OK")])
        try:
            resp = self._send(self._request("MESSAGE", f"sip:{self.cfg.server_id}@{self.cfg.domain}",
                                            to=f"<sip:{self.cfg.server_id}@{self.cfg.domain}>", body=body,
                                            content_type="Application/MANSCDP+xml"), timeout=5.0)
        except (OSError, SipTimeout):
            return False
        return resp.status == 200

    def _run(self) -> None:
        cfg = self.cfg
        renew_at = next_keepalive = 0.0
        misses = 0
        while not self._stop.is_set():
            now = time.monotonic()
            if not self.registered or now >= renew_at:
                try:
                    granted = self._register(cfg.expires_s)
                    self.registered, misses = True, 0
                    self.registrations += 1
                    renew_at, next_keepalive = now + granted * 0.8, now + cfg.keepalive_s
                    log.info("registered to superior %s at %s:%d (expires %d s)", cfg.server_id, cfg.host, cfg.port,
                             granted)
                except (OSError, SipTimeout, RuntimeError, ValueError) as exc:
                    self.registered = False
                    log.warning("registering to superior %s failed: %s; retrying in %.0f s", cfg.server_id, exc,
                                cfg.retry_s)
                    self._stop.wait(cfg.retry_s)
                    continue
            if now >= next_keepalive:
                next_keepalive = now + cfg.keepalive_s
                misses = 0 if self._keepalive() else misses + 1
                if misses >= cfg.keepalive_misses:
                    log.warning("superior %s missed %d keepalives: registering again", cfg.server_id, misses)
                    self.registered = False
                    continue
            self._stop.wait(min(0.5, max(0.05, min(renew_at, next_keepalive) - time.monotonic())))

    # -- scope and catalog ---------------------------------------------------------------------------------
    def in_scope(self, camera: CameraSpec) -> bool:
        if len(camera.id) != 20 or not camera.id.isdigit():
            return False
        return camera.id in self.cfg.camera_ids or any(camera.admin_unit.startswith(u) for u in self.cfg.admin_units
                                                       if u)

    def shared(self) -> list[CameraSpec]:
        return sorted((c for c in self.cameras() if self.in_scope(c)), key=lambda c: c.id)

    def _catalog(self, query: manscdp.Document) -> None:
        cams = self.shared()
        civil = self.cfg.civil_code or self.local_id[:6]
        items = [manscdp.item_xml({
            "DeviceID": c.id, "Name": c.name or c.id, "Manufacturer": "Tubeline", "Model": c.device_type,
            "Owner": "Owner", "CivilCode": c.admin_unit or civil, "Address": c.name or "", "Parental": "0",
            "ParentID": self.local_id, "SafetyWay": "0", "RegisterWay": "1", "Secrecy": "0",
            "Status": "ON" if c.enabled else "OFF",
            **({"Longitude": f"{c.longitude:.6f}", "Latitude": f"{c.latitude:.6f}"}
               if c.longitude is not None and c.latitude is not None else {}),
        }) for c in cams]
        pages = [items[i:i + PAGE] for i in range(0, len(items), PAGE)] or [[]]
        for page in pages:
            body = manscdp.document(
                "Response", "Catalog", query.sn, self.local_id, [("SumNum", str(len(items)))],
                xml_fragments=f'<DeviceList Num="{len(page)}">\r\n' + "".join(page) + "</DeviceList>\r\n")
            self._tell(body)
        self.catalog_answers += 1
        log.info("answered superior %s's catalog query: %d cameras in %d pages", self.cfg.server_id, len(items),
                 len(pages))

    def _tell(self, body: bytes) -> None:
        req = self._request("MESSAGE", f"sip:{self.cfg.server_id}@{self.cfg.domain}",
                            to=f"<sip:{self.cfg.server_id}@{self.cfg.domain}>", body=body,
                            content_type="Application/MANSCDP+xml")
        try:
            resp = self._send(req)
            if resp.status != 200:
                log.info("superior %s answered %s to our MESSAGE", self.cfg.server_id, resp.status)
        except (OSError, SipTimeout) as exc:
            log.info("MESSAGE to superior %s: %s", self.cfg.server_id, exc)

    def _answer_query(self, doc: manscdp.Document) -> None:
        if doc.cmd_type == "catalog":
            self._catalog(doc)
        elif doc.cmd_type == "deviceinfo":
            self._tell(manscdp.document("Response", "DeviceInfo", doc.sn, self.local_id, [
                ("Result", "OK"), ("DeviceName", "Tubeline"), ("Manufacturer", "Tubeline"), ("Model", "platform"),
                ("Firmware", "1"), ("Channel", str(len(self.shared())))]))
        elif doc.cmd_type == "devicestatus":
            self._tell(manscdp.document("Response", "DeviceStatus", doc.sn, doc.device_id or self.local_id, [
                ("Result", "OK"), ("Online", "ONLINE"), ("Status", "OK")]))

    def forward_alarm(self, doc: manscdp.Document, camera_id: str) -> None:
        """A device alarm of a camera in scope, passed up (9.4 through the cascade)."""
        if not self.registered or not any(c.id == camera_id for c in self.shared()):
            return
        fields = [(k, doc.fields[k.lower()]) for k in ("AlarmPriority", "AlarmMethod", "AlarmTime", "AlarmDescription",
                                                      "Longitude", "Latitude") if doc.fields.get(k.lower())]
        info = {child.tag: (child.text or "") for node in doc.element.findall("info") for child in node}
        extra = f"<Info>\r\n<AlarmType>{info['alarmtype']}</AlarmType>\r\n</Info>\r\n" if info.get("alarmtype", "").isdigit() else ""
        body = manscdp.document("Notify", "Alarm", next(self._sn), camera_id, fields, xml_fragments=extra)
        threading.Thread(target=self._tell, args=(body,), name="gb-alarm-up", daemon=True).start()

    # -- requests from the superior -----------------------------------------------------------------------
    def on_request(self, req: SipMessage, peer: Peer) -> None:
        method = req.method
        if method == "MESSAGE":
            self._respond(req, peer, 200)
            try:
                doc = manscdp.parse(req.body)
            except manscdp.ManscdpError as exc:
                log.info("superior %s sent a bad MANSCDP body: %s", self.cfg.server_id, exc)
                return
            if doc.root == "query":
                threading.Thread(target=self._answer_query, args=(doc,), daemon=True,
                                 name=f"gb-superior-{doc.cmd_type}").start()
        elif method == "INVITE":
            self._invite(req, peer)
        elif method == "ACK":
            self._ack(req)
        elif method == "BYE":
            self._respond(req, peer, 200 if req.call_id in self.streams else 481)
            self._end_stream(req.call_id, send_bye=False)
        elif method in ("INFO", "OPTIONS", "NOTIFY"):
            self._respond(req, peer, 200)
        elif method != "CANCEL":
            self._respond(req, peer, 501)

    def _respond(self, req: SipMessage, peer: Peer, status: int, *, to_tag: str | None = None,
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> None:
        assert self.sig.transport is not None
        self.sig.transport.respond(req, response_to(req, status, to_tag=to_tag or new_tag(), headers=headers,
                                                    body=body), peer)

    def _invite(self, req: SipMessage, peer: Peer) -> None:
        channel = req.to.uri.user or (req.uri or "").split(":")[-1].split("@")[0]
        camera = next((c for c in self.shared() if c.id == channel), None)
        add_tap = self.taps(channel) if camera is not None else None
        if camera is None or add_tap is None:
            status = 404 if camera is None else 480
            log.info("superior %s INVITE for %s: %d", self.cfg.server_id, channel, status)
            self._respond(req, peer, status)
            return
        try:
            offer = parse_answer(req.body)
        except SdpError as exc:
            self._respond(req, peer, 488)
            log.info("superior %s INVITE for %s: bad SDP: %s", self.cfg.server_id, channel, exc)
            return
        mode = "udp" if offer.transport == "udp" else "tcp_listen" if offer.setup == "active" else "tcp_connect"
        cfg = self.sig.config
        ssrc = offer.ssrc if offer.ssrc is not None else 0
        forwarder = Forwarder(channel, ssrc=ssrc, mode=mode, host=offer.host, port=offer.port, ports=self.sig.ports,
                              bind_host=cfg.media_bind_host)
        proto = "RTP/AVP" if mode == "udp" else "TCP/RTP/AVP"
        lines = ["v=0", f"o={channel} 0 0 IN IP4 {self.sig.media_host}", "s=Play", f"c=IN IP4 {self.sig.media_host}",
                 "t=0 0", f"m=video {forwarder.port} {proto} 96", "a=sendonly", "a=rtpmap:96 PS/90000"]
        if mode != "udp":
            lines += [f"a=setup:{'passive' if mode == 'tcp_listen' else 'active'}", "a=connection:new"]
        lines.append(f"y={ssrc:010d}")
        tag = new_tag()
        self.streams[req.call_id] = (forwarder, req, tag)
        self._respond(req, peer, 200, to_tag=tag, body=("\r\n".join(lines) + "\r\n").encode("ascii"),
                      headers=[("Contact", f"<sip:{channel}@{self.sig.host}:{self.sig.port}>"),
                               ("Content-Type", "APPLICATION/SDP")])
        log.info("superior %s INVITE for %s: %s to %s:%d, SSRC %d", self.cfg.server_id, channel, mode, offer.host,
                 offer.port, ssrc)

    def _ack(self, req: SipMessage) -> None:
        entry = self.streams.get(req.call_id)
        if entry is None:
            return
        forwarder = entry[0]
        add_tap = self.taps(forwarder.camera_id)
        if add_tap is None:
            self._end_stream(req.call_id, send_bye=True)
            return
        if not forwarder.started:
            forwarder.start(add_tap)

    def _end_stream(self, call_id: str, *, send_bye: bool) -> None:
        entry = self.streams.pop(call_id, None)
        if entry is None:
            return
        forwarder, invite, tag = entry
        forwarder.close()
        if send_bye:
            contact = invite.get("Contact")
            target = parse_name_addr(contact).raw_uri if contact else f"sip:{self.cfg.server_id}@{self.cfg.domain}"
            bye = self._request("BYE", target, to=invite.require("From"), call_id=call_id, from_tag=tag)
            try:
                self._send(bye, timeout=3.0)
            except (OSError, SipTimeout) as exc:
                log.debug("BYE to superior %s: %s", self.cfg.server_id, exc)
