"""SUBSCRIBE dialogs the platform holds with devices (2016 9.11): catalog changes and alarms.

``subscribe`` sends ``SUBSCRIBE`` with ``Event: Catalog`` (body: a Catalog query) or ``Event: presence`` (body:
an Alarm query for every priority and method — the form in the standard's examples and wvp-GB28181-pro), keeps
the dialog (Call-ID, our tag, the device's tag from the 200) and the granted ``Expires``. ``refresh_due`` renews
each subscription in its dialog (CSeq + 1) when 80 % of its time has passed; a renewal the device refuses (481,
timeout) starts a new subscription. The device's NOTIFYs arrive in the dialog; :meth:`find` tells the platform
which subscription one belongs to. ``drop_device`` forgets a device's dialogs (it re-registered: new ones are
made), ``close`` unsubscribes (``Expires: 0``) on shutdown.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from workers.ingest.gb28181 import manscdp
from workers.ingest.gb28181.session import Signalling
from workers.ingest.gb28181.sip import SipMessage, ascii_int, parse_name_addr
from workers.ingest.gb28181.transport import Peer, SipTimeout

log = logging.getLogger(__name__)

KINDS = {"catalog": "Catalog", "alarm": "presence"}
REFRESH_AT = 0.8


@dataclass
class Subscription:
    device_id: str
    kind: str  # "catalog" or "alarm"
    call_id: str
    from_tag: str
    to_header: str
    target: str
    peer: Peer
    cseq: int
    expires: int
    since: float
    refreshes: int = 0
    busy: bool = False

    @property
    def due(self) -> bool:
        return not self.busy and time.monotonic() - self.since >= self.expires * REFRESH_AT


class SubscriptionError(RuntimeError):
    """The device refused the SUBSCRIBE or did not answer."""


class SubscriptionManager:
    def __init__(self, signalling: Signalling) -> None:
        self.signalling = signalling
        self.subscriptions: dict[str, Subscription] = {}  # by Call-ID
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sn = itertools.count(int(time.time()) % 100_000 + 50_000)

    # -- building --------------------------------------------------------------------------------------
    def _request(self, sub: Subscription | None, device_id: str, kind: str, peer: Peer, expires: int,
                 *, uri: str | None = None) -> SipMessage:
        sig = self.signalling
        cfg = sig.config
        if kind == "catalog":
            body = manscdp.catalog_query(next(self._sn), device_id)
        else:
            body = manscdp.document("Query", "Alarm", next(self._sn), device_id, [
                ("StartAlarmPriority", "0"), ("EndAlarmPriority", "0"), ("AlarmMethod", "0"), ("AlarmType", "0")])
        event = f"{KINDS[kind]};id={next(self._ids)}" if kind == "catalog" else KINDS[kind]
        extra = [("Event", event), ("Expires", str(expires)),
                 ("Contact", f"<sip:{cfg.server_id}@{sig.host}:{sig.port}>")]
        if sub is None:
            return sig.new_request("SUBSCRIBE", uri or "", peer, to=f"<sip:{device_id}@{cfg.domain}>", body=body,
                                   content_type="Application/MANSCDP+xml", extra=extra)
        sub.cseq += 1
        return sig.new_request("SUBSCRIBE", sub.target, peer, to=sub.to_header, call_id=sub.call_id,
                               from_tag=sub.from_tag, cseq=sub.cseq, body=body, content_type="Application/MANSCDP+xml",
                               extra=extra)

    def _send(self, req: SipMessage, peer: Peer) -> SipMessage:
        assert self.signalling.transport is not None
        try:
            resp = self.signalling.transport.request(req, peer, timeout=10.0)
        except (SipTimeout, OSError) as exc:
            msg = f"{req.summary()}: {exc}"
            raise SubscriptionError(msg) from None
        if resp.status is None or resp.status >= 300:
            msg = f"{req.summary()}: device answered {resp.status} {resp.reason}"
            raise SubscriptionError(msg)
        return resp

    # -- subscribe, refresh, drop -----------------------------------------------------------------------
    def subscribe(self, device_id: str, kind: str) -> Subscription:
        dev = self.signalling.devices.get(device_id)
        if dev is None or not dev.online:
            msg = f"device {device_id} is not registered and online"
            raise SubscriptionError(msg)
        expires = self.signalling.config.subscribe_expires_s
        uri = f"sip:{device_id}@{dev.peer.host}:{dev.peer.port}"
        req = self._request(None, device_id, kind, dev.peer, expires, uri=uri)
        resp = self._send(req, dev.peer)
        contact = resp.get("Contact")
        sub = Subscription(device_id, kind, req.call_id, req.from_.tag or "", resp.require("To"),
                           parse_name_addr(contact).raw_uri if contact else uri, dev.peer, req.cseq[0],
                           _granted(resp, expires), time.monotonic())
        with self._lock:
            self.subscriptions[sub.call_id] = sub
        log.info("subscribed to %s of %s for %d s", kind, device_id, sub.expires)
        return sub

    def refresh(self, sub: Subscription) -> None:
        """Renew in the dialog; a refused renewal is replaced by a new subscription."""
        try:
            resp = self._send(self._request(sub, sub.device_id, sub.kind, sub.peer, sub.expires), sub.peer)
            sub.expires, sub.since, sub.refreshes = _granted(resp, sub.expires), time.monotonic(), sub.refreshes + 1
            log.info("renewed the %s subscription of %s (%d)", sub.kind, sub.device_id, sub.refreshes)
        except SubscriptionError as exc:
            log.info("renewing the %s subscription of %s failed (%s): subscribing again", sub.kind, sub.device_id, exc)
            self.forget(sub)
            self.subscribe(sub.device_id, sub.kind)
        finally:
            sub.busy = False

    def refresh_due(self) -> None:
        with self._lock:
            due = [s for s in self.subscriptions.values() if s.due]
            for sub in due:
                sub.busy = True
        for sub in due:
            threading.Thread(target=self._safe, args=(self.refresh, sub), name=f"gb-resubscribe-{sub.device_id}",
                             daemon=True).start()

    def start(self, device_id: str, kinds: list[str]) -> None:
        """(Re)subscribe ``device_id`` to ``kinds`` in the background, replacing its old dialogs."""
        self.drop_device(device_id)
        for kind in kinds:
            threading.Thread(target=self._safe, args=(self.subscribe, device_id, kind),
                             name=f"gb-subscribe-{device_id}", daemon=True).start()

    @staticmethod
    def _safe(fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.warning("GB/T 28181 subscription %s%s failed: %s", fn.__name__, args[-1:], exc)

    def find(self, call_id: str) -> Subscription | None:
        with self._lock:
            return self.subscriptions.get(call_id)

    def forget(self, sub: Subscription) -> None:
        with self._lock:
            if self.subscriptions.get(sub.call_id) is sub:
                del self.subscriptions[sub.call_id]

    def drop_device(self, device_id: str) -> None:
        with self._lock:
            for call_id in [c for c, s in self.subscriptions.items() if s.device_id == device_id]:
                del self.subscriptions[call_id]

    def close(self) -> None:
        """Unsubscribe everything (``Expires: 0``), best effort: sent once, answers not awaited (shutdown)."""
        with self._lock:
            subs = list(self.subscriptions.values())
            self.subscriptions.clear()
        assert self.signalling.transport is not None
        for sub in subs:
            try:
                self.signalling.transport.send(self._request(sub, sub.device_id, sub.kind, sub.peer, 0), sub.peer)
            except OSError as exc:
                log.debug("unsubscribing %s of %s: %s", sub.kind, sub.device_id, exc)


def _granted(resp: SipMessage, asked: int) -> int:
    value = ascii_int(resp.get("Expires") or "")
    return max(1, value) if value is not None else asked


__all__ = ["KINDS", "Subscription", "SubscriptionError", "SubscriptionManager"]
