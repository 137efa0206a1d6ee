"""The GB/T 28181 platform (SIP server side): device registration, keepalive, Catalog, and media sessions.

* REGISTER: digest challenge (401), per-device passwords (``gb28181.devices``) or a default password;
  a wrong password gets 403 and an ``offline``/``auth`` status event for the device; a device with no
  password configured gets 403 and ``offline``/``not_found``. ``Expires: 0`` unregisters. ``X-GB-Ver``
  is echoed.
* Keepalive MESSAGEs refresh the device (and its UDP address, for NAT rebinding); no keepalive for
  ``min(expires, interval × count)`` marks it offline (``timeout``). A closed SIP TCP connection marks
  its devices offline (``network``), as the 2022 edition says.
* Catalog: queried after registration; pages with the same SN are merged, items deduplicated, until
  ``SumNum``; video channels are upserted into the camera registry.
* INVITE/ACK/BYE for live and playback (:mod:`workers.ingest.gb28181.session`).

Device-level status events use the 20-digit device ID as the camera ID on the status topic.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.bus.base import Producer
from pipeline.cameras.registry import CameraRegistry
from pipeline.config.ingest import CameraSpec, Gb28181Config
from schemas.alerts import Alert
from schemas.topics import ALERTS
from workers.ingest.gb28181 import gbtime, manscdp
from workers.ingest.gb28181.alarms import alarm_alert, alarm_response
from workers.ingest.gb28181.cascade import SuperiorLink, TapProvider
from workers.ingest.gb28181.catalog import CatalogCollector
from workers.ingest.gb28181.digest import DigestAuth
from workers.ingest.gb28181.media import PortAllocator
from workers.ingest.gb28181.queries import QueryBroker, QueryError
from workers.ingest.gb28181.session import SessionManager
from workers.ingest.gb28181.sip import (
    SipMessage,
    SipParseError,
    ascii_int,
    new_branch,
    new_call_id,
    new_tag,
    response_to,
)
from workers.ingest.gb28181.source import GbSource
from workers.ingest.gb28181.subscriptions import SubscriptionManager
from workers.ingest.gb28181.transport import Peer, SipTransport
from workers.ingest.status import StatusReporter

log = logging.getLogger(__name__)

_GB_ID = re.compile(r"^[0-9]{20}$")
_EVENT_MIN_GAP_S = 10.0


@dataclass
class Device:
    device_id: str
    peer: Peer
    expires: int
    registered_at: float
    last_seen: float
    online: bool = True
    gb_version: str | None = None
    catalogued: bool = False
    call_id: str = ""  # of the REGISTER: a device that restarted registers with a new one (RFC 3261 10.2)
    info: dict[str, str] = field(default_factory=dict)  # DeviceInfo answer (manufacturer, model, firmware, …)
    status: dict[str, str] = field(default_factory=dict)  # DeviceStatus answer (online, status, encode, record, …)


def _alarm_forwarder(link: SuperiorLink) -> Callable[[str, manscdp.Document, Alert], None]:
    """An alarm listener that passes a device's alarm up to one superior platform (cascade)."""
    return lambda _device, doc, alert: link.forward_alarm(doc, alert.camera_id)


class GbPlatform:
    """One SIP server (UDP + TCP on one port) and everything it knows about devices and sessions."""

    def __init__(
        self,
        config: Gb28181Config,
        *,
        registry: CameraRegistry | None = None,
        producer: Producer | None = None,
        on_channels: Callable[[list[CameraSpec]], None] | None = None,
        on_device_back: Callable[[str], None] | None = None,
        taps: TapProvider | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.producer = producer
        self.on_channels = on_channels
        self.on_device_back = on_device_back
        self.alarm_listeners: list[Callable[[str, manscdp.Document, Alert], None]] = []  # cascade: forward upward
        self.superiors = [SuperiorLink(self, sup, cameras=self._cameras, taps=taps or (lambda _c: None))
                          for sup in config.superiors]
        self.alarm_listeners.extend(_alarm_forwarder(link) for link in self.superiors)
        self.auth = DigestAuth(config.domain)
        self.tz = gbtime.zone(config.time_zone)
        self.devices: dict[str, Device] = {}
        self.ports = PortAllocator(config.media_port_min, config.media_port_max)
        self.transport: SipTransport | None = None
        self.sessions = SessionManager(self)
        self.queries = QueryBroker(self)
        self.subscriptions = SubscriptionManager(self)
        self.counters = {"register_ok": 0, "register_denied": 0, "unknown_device": 0, "malformed": 0,
                         "catalog_items": 0, "catalog_duplicates": 0, "catalog_queries": 0, "registrations": 0,
                         "catalog_notifications": 0, "alarms": 0}
        self._lock = threading.RLock()
        self.catalog = CatalogCollector(self, registry=registry, counters=self.counters, on_channels=on_channels,
                                        next_sn=self.queries.next_sn, on_catalogued=self._catalogued)
        self._reporters: dict[str, StatusReporter] = {}
        self._last_event: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._house = threading.Thread(target=self._housekeeping, name="gb-housekeeping", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        self.transport = SipTransport(cfg.bind_host, cfg.sip_port, on_request=self._on_request,
                                      on_malformed=self._on_malformed, on_tcp_closed=self._on_tcp_closed,
                                      on_response=self.sessions.on_stray_response)
        self.transport.start()
        self._house.start()
        for link in self.superiors:
            link.start()
        log.info("GB/T 28181 platform %s listening on %s:%d (UDP and TCP)", cfg.server_id, cfg.bind_host, self.port)

    def stop(self) -> None:
        self._stop.set()
        for link in self.superiors:
            link.stop()
        self.sessions.close_all()
        self.subscriptions.close()
        if self.transport is not None:
            self.transport.close()
        if self._house.is_alive():
            self._house.join(3)
        self.catalog.close()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.port

    @property
    def host(self) -> str:
        return self.config.advertised_host or self.config.bind_host

    @property
    def media_host(self) -> str:
        return self.config.advertised_host or self.config.media_bind_host

    def source(self, camera: CameraSpec, *, stop_event: threading.Event, decoder_threads: int = 1) -> GbSource:
        """A live :class:`GbSource` for a registry camera (used by the ingest worker's source factory)."""
        mode = camera.transport if camera.transport in ("udp", "tcp_passive", "tcp_active") else None
        return GbSource(self, camera.id, camera.gb_device_id or "", mode=mode, decoder_threads=decoder_threads,
                        stop_event=stop_event)

    # -- status events ------------------------------------------------------------------------------
    def report(self, device_id: str, event: str, reason: str | None, detail: str, *, limit: bool = False) -> None:
        if self.producer is None or not _GB_ID.match(device_id):
            return
        key = (device_id, f"{event}:{reason}")
        now = time.monotonic()
        if limit and now - self._last_event.get(key, -1e9) < _EVENT_MIN_GAP_S:
            return
        self._last_event[key] = now
        reporter = self._reporters.get(device_id)
        if reporter is None:
            reporter = self._reporters[device_id] = StatusReporter(device_id, self.producer)
        reporter.event(event, reason, detail)

    # -- requests -----------------------------------------------------------------------------------
    def _cameras(self) -> list[CameraSpec]:
        return self.registry.list() if self.registry is not None else []

    def _on_request(self, req: SipMessage, peer: Peer) -> None:
        sender = req.from_.uri.user or ""
        for link in self.superiors:
            if link.cfg.server_id == sender:
                link.on_request(req, peer)
                return
        handlers = {"REGISTER": self._register, "MESSAGE": self._message, "BYE": self.sessions.on_bye,
                    "OPTIONS": self._ok, "NOTIFY": self._message, "INFO": self._ok}
        if req.method == "ACK":
            return
        handler = handlers.get(req.method or "")
        if handler is None:
            self._answer(req, peer, 501 if req.method not in ("CANCEL",) else 481)
            return
        handler(req, peer)

    def _answer(self, req: SipMessage, peer: Peer, status: int, reason: str | None = None,
                headers: list[tuple[str, str]] | None = None) -> None:
        assert self.transport is not None
        extra = list(headers or [])
        if req.get("X-GB-Ver"):
            extra.append(("X-GB-Ver", req.get("X-GB-Ver") or ""))
        self.transport.respond(req, response_to(req, status, reason, to_tag=new_tag(), headers=extra), peer)

    def _ok(self, req: SipMessage, peer: Peer) -> None:
        self._answer(req, peer, 200)

    def _password(self, device_id: str) -> str | None:
        dev = self.config.devices.get(device_id)
        if dev is not None:
            return dev.password.get_secret_value()
        if self.config.default_password is not None:
            return self.config.default_password.get_secret_value()
        return None

    def _register(self, req: SipMessage, peer: Peer) -> None:
        device_id = req.from_.uri.user or ""
        if not _GB_ID.match(device_id):
            self._answer(req, peer, 400, "Bad Request: From user is not a 20-digit device ID")
            return
        expires = _expires(req)
        if expires is None:
            self._answer(req, peer, 400, "Bad Request: missing Expires")
            return
        password = self._password(device_id)
        if password is None:
            self.counters["unknown_device"] += 1
            log.warning("REGISTER from unknown device %s at %s refused", device_id, peer)
            self._answer(req, peer, 403, "Forbidden: unknown device")
            self.report(device_id, "offline", "not_found",
                        f"unknown device {device_id} tried to register from {peer.host}:{peer.port}", limit=True)
            return
        header = req.get("Authorization")
        if not header:
            self._answer(req, peer, 401, headers=[("WWW-Authenticate", self.auth.challenge())])
            return
        verdict = self.auth.verify(header, method="REGISTER", username=device_id, password=password)
        if not verdict.ok:
            if verdict.stale:
                self._answer(req, peer, 401, headers=[("WWW-Authenticate", self.auth.challenge(stale=True))])
                return
            self.counters["register_denied"] += 1
            log.warning("REGISTER of device %s from %s denied: %s", device_id, peer, verdict.problem)
            self._answer(req, peer, 403, "Forbidden")
            self.report(device_id, "offline", "auth", f"registration refused: {verdict.problem}", limit=True)
            return
        self._registered(req, peer, device_id, expires)

    def _registered(self, req: SipMessage, peer: Peer, device_id: str, expires: int) -> None:
        now = time.monotonic()
        contact = req.get("Contact") or f"<sip:{device_id}@{peer.host}:{peer.port}>"
        headers = [("Contact", contact), ("Expires", str(expires)), ("Date", gbtime.date_header(datetime.now(UTC), self.tz))]
        with self._lock:
            old = self.devices.get(device_id)
            fresh = old is None or not old.online
            restarted = old is not None and old.online and bool(old.call_id) and old.call_id != req.call_id
            dev = old
            if expires == 0:
                self.devices.pop(device_id, None)
            elif fresh or restarted:
                dev = self.devices[device_id] = Device(device_id, peer, expires, now, now,
                                                       gb_version=req.get("X-GB-Ver"),
                                                       catalogued=old.catalogued if old else False,
                                                       call_id=req.call_id)
            elif dev is not None:
                dev.peer, dev.expires, dev.registered_at, dev.last_seen = peer, expires, now, now
        self.counters["register_ok"] += 1
        self._answer(req, peer, 200, headers=headers)
        if expires == 0:
            log.info("device %s unregistered", device_id)
            self.sessions.close_device(device_id)
            self.report(device_id, "offline", "stopped", "device unregistered (Expires: 0)")
            return
        if (fresh or restarted) and dev is not None:
            self._device_back(dev, restarted)

    def _device_back(self, dev: Device, restarted: bool) -> None:
        """A device registered anew (first time, after an outage, or after restarting): its channels are
        re-INVITEd at once with their backoff reset, and its catalog is queried again."""
        log.info("device %s registered from %s (expires %d s%s)", dev.device_id, dev.peer, dev.expires,
                 ", restarted: new Call-ID" if restarted else "")
        if restarted:
            # Sessions the restarted device no longer feeds end now instead of after the media timeout;
            # a session whose RTP still flows is kept.
            stale = self.sessions.close_device(dev.device_id, "the device restarted (registered with a new Call-ID) "
                                               "and its media had stopped", "timeout", stalled_s=1.0, bye=True)
            if stale:
                log.info("device %s restarted: ended %d stalled session(s)", dev.device_id, stale)
        else:
            self.report(dev.device_id, "online", None, f"registered from {dev.peer}")
        self.counters["registrations"] += 1
        if self.on_device_back is not None:
            try:
                self.on_device_back(dev.device_id)
            except Exception:
                log.exception("on_device_back(%s) failed", dev.device_id)
        if self.config.catalog_on_register:
            self.catalog.refresh(dev.device_id)
        kinds = [k for k, on in (("catalog", self.config.subscribe_catalog), ("alarm", self.config.subscribe_alarm))
                 if on]
        self.subscriptions.start(dev.device_id, kinds)
        if self.config.query_device_info:
            threading.Thread(target=self._device_info, args=(dev,), name=f"gb-info-{dev.device_id}",
                             daemon=True).start()

    def _device_info(self, dev: Device) -> None:
        """DeviceInfo, then DeviceStatus (A.2.4): kept with the device and logged."""
        for cmd, target in (("DeviceInfo", "info"), ("DeviceStatus", "status")):
            try:
                answer = self.queries.ask(dev.device_id, cmd, timeout=10.0)
            except QueryError as exc:
                log.info("%s of %s: %s", cmd, dev.device_id, exc)
                continue
            setattr(dev, target, {k: v[:200] for k, v in answer.fields.items() if k not in ("cmdtype", "sn")})
        log.info("device %s: %s %s firmware %s, %s channel(s); status %s/%s, recording %s", dev.device_id,
                 dev.info.get("manufacturer", "?"), dev.info.get("model", "?"), dev.info.get("firmware", "?"),
                 dev.info.get("channel", "?"), dev.status.get("online", "?"), dev.status.get("status", "?"),
                 dev.status.get("record", "?"))

    def _catalogued(self, device_id: str) -> None:
        with self._lock:
            dev = self.devices.get(device_id)
            if dev is not None:
                dev.catalogued = True

    def _message(self, req: SipMessage, peer: Peer) -> None:
        device_id = req.from_.uri.user or ""
        try:
            doc = manscdp.parse(req.body)
        except manscdp.ManscdpError as exc:
            log.warning("bad MANSCDP body from %s (%s): %s", device_id, peer, exc)
            self._answer(req, peer, 400, f"Bad Request: {exc}"[:120])
            return
        with self._lock:
            dev = self.devices.get(device_id) or self.devices.get(doc.device_id)
        if dev is None:
            log.info("%s from unregistered device %s at %s refused", doc.cmd_type, device_id, peer)
            self._answer(req, peer, 403, "Forbidden: not registered")
            return
        self._seen(dev, peer)
        self._answer(req, peer, 200)
        if doc.root == "response" and doc.cmd_type == "catalog":
            self.catalog.page(dev.device_id, doc)
        elif doc.root == "response" and self.queries.on_response(dev.device_id, doc):
            pass
        elif doc.cmd_type == "catalog" and req.method == "NOTIFY":
            self.catalog.changes(dev.device_id, doc)
            self.catalog.refresh(dev.device_id)
        elif doc.cmd_type == "alarm" and doc.root == "notify":
            self._alarm(dev, doc)
        elif doc.cmd_type == "mediastatus" and doc.fields.get("notifytype") == "121":
            self.sessions.on_media_end(req.call_id)

    def _alarm(self, dev: Device, doc: manscdp.Document) -> None:
        """A device alarm: an alert on the alert topic, and the alarm response to the device (9.4.2)."""
        self.counters["alarms"] += 1
        try:
            alert = alarm_alert(doc, device_id=dev.device_id, tz=self.tz, received=datetime.now(UTC))
        except ValueError as exc:
            log.warning("alarm from %s not usable: %s", dev.device_id, exc)
            return
        log.info("alarm from %s: %s (%s)", dev.device_id, alert.message, alert.severity)
        if self.producer is not None:
            try:
                self.producer.send(ALERTS.name, alert.to_json(), key=alert.camera_id)
            except Exception as exc:
                log.warning("could not publish the alarm of %s: %s", dev.device_id, exc)
        for listener in list(self.alarm_listeners):
            listener(dev.device_id, doc, alert)
        threading.Thread(target=self._send_quietly, args=(dev.device_id, alarm_response(doc)),
                         name=f"gb-alarm-ack-{dev.device_id}", daemon=True).start()

    def _send_quietly(self, device_id: str, body: bytes) -> None:
        try:
            self.queries.send(device_id, body)
        except QueryError as exc:
            log.info("alarm response to %s: %s", device_id, exc)

    def _seen(self, dev: Device, peer: Peer) -> None:
        dev.last_seen = time.monotonic()
        if peer.transport == "UDP" and dev.peer.transport == "UDP":
            dev.peer = peer  # NAT rebinding: answer where the device is now
        if not dev.online:
            dev.online = True
            self.report(dev.device_id, "online", None, "keepalive resumed")
            if self.on_device_back is not None:
                self.on_device_back(dev.device_id)

    # -- malformed input, dropped connections, timeouts ---------------------------------------------
    def _on_malformed(self, data: bytes, peer: Peer, problem: str) -> None:
        self.counters["malformed"] += 1
        m = re.search(rb"(?im)^(?:from|f)\s*:[^\r\n]*?sip:([0-9]{20})@", data[:4096])
        device_id = m.group(1).decode() if m else ""
        with self._lock:
            dev = self.devices.get(device_id)
        if device_id and (dev is None or not dev.online):
            self.report(device_id, "offline", "protocol", f"malformed SIP from {peer}: {problem}", limit=True)

    def _on_tcp_closed(self, peer: Peer) -> None:
        with self._lock:
            gone = [d for d in self.devices.values() if d.peer.conn is not None and d.peer.conn is peer.conn]
        for dev in gone:
            if dev.online:
                self._went_offline(dev, "network", "SIP TCP connection closed")

    def _went_offline(self, dev: Device, reason: str, detail: str) -> None:
        """Mark the device offline and end its sessions whose media stopped too (channels report ``reason``
        now rather than after the media timeout); sessions still receiving RTP carry on."""
        dev.online = False
        self.report(dev.device_id, "offline", reason, detail)
        self.sessions.close_device(dev.device_id, f"device {dev.device_id} offline: {detail}", reason, stalled_s=1.0)

    def _housekeeping(self) -> None:
        while not self._stop.wait(0.5):
            try:
                if self.transport is not None:
                    self.transport.expire_cache()
                self._check_devices()
                self.catalog.check()
                self.subscriptions.refresh_due()
            except Exception:
                log.exception("GB/T 28181 housekeeping failed")

    def _check_devices(self) -> None:
        now = time.monotonic()
        limit = self.config.keepalive_interval_s * self.config.keepalive_count
        with self._lock:
            devices = list(self.devices.values())
        for dev in devices:
            if not dev.online:
                continue
            if now - dev.registered_at > dev.expires:
                self._went_offline(dev, "timeout", f"registration expired after {dev.expires} s")
            elif now - dev.last_seen > min(float(dev.expires), limit):
                self._went_offline(dev, "timeout", f"no keepalive for {now - dev.last_seen:.0f} s "
                                   f"(limit {min(float(dev.expires), limit):.0f} s)")

    # -- catalog ------------------------------------------------------------------------------------
    # -- building requests --------------------------------------------------------------------------
    def new_request(self, method: str, uri: str, peer: Peer, *, to: str, call_id: str | None = None,
                    from_tag: str | None = None, cseq: int = 1, body: bytes = b"",
                    content_type: str | None = None, extra: list[tuple[str, str]] | None = None,
                    from_id: str | None = None) -> SipMessage:
        """A request from us (``from_id``: the ID we use toward this peer, default the server ID)."""
        cfg = self.config
        me = from_id or cfg.server_id
        msg = SipMessage(method=method, uri=uri)
        msg.add("Via", f"SIP/2.0/{peer.transport} {self.host}:{self.port};rport;branch={new_branch()}")
        msg.add("From", f"<sip:{me}@{me[:10]}>;tag={from_tag or new_tag()}")
        msg.add("To", to)
        msg.add("Call-ID", call_id or new_call_id(self.host))
        msg.add("CSeq", f"{cseq} {method}")
        msg.add("Max-Forwards", "70")
        msg.add("User-Agent", "Tubeline")
        for name, value in extra or []:
            msg.add(name, value)
        if content_type:
            msg.add("Content-Type", content_type)
        msg.body = body
        return msg


def _expires(req: SipMessage) -> int | None:
    value = req.get("Expires")
    if value is None:
        m = re.search(r";\s*expires=([0-9]+)", req.get("Contact") or "")
        value = m.group(1) if m else None
    return None if value is None else ascii_int(value)


__all__ = ["Device", "GbPlatform", "SipParseError"]
