"""MANSCDP queries the platform asks a device (DeviceInfo, DeviceStatus, RecordInfo, …) and their answers.

``ask`` sends ``MESSAGE <Query><CmdType>X</CmdType><SN>n</SN>…`` and waits for the device's answer MESSAGE(s),
matched by device and SN: one ``<Response>`` for plain queries, or — with ``list_tag`` — pages of ``<Item>``s
with the same SN until ``SumNum`` distinct items arrived (2016 Annex N multi-response; retransmitted pages
are dropped as duplicates). A query that times out returns what arrived, marked incomplete, or raises
:class:`QueryError` when nothing came at all.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from workers.ingest.gb28181 import manscdp
from workers.ingest.gb28181.session import Signalling
from workers.ingest.gb28181.transport import SipTimeout

log = logging.getLogger(__name__)


class QueryError(RuntimeError):
    """The device refused the query or did not answer in time."""


@dataclass
class Answer:
    device_id: str
    cmd_type: str
    sn: str
    fields: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, str]] = field(default_factory=list)
    sum_num: int | None = None
    pages: int = 0
    duplicates: int = 0
    complete: bool = False


@dataclass
class _Pending:
    answer: Answer
    list_tag: str | None
    seen: set[tuple[tuple[str, str], ...]] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)


class QueryBroker:
    """Queries in flight, by (device, SN)."""

    def __init__(self, signalling: Signalling, *, first_sn: int | None = None) -> None:
        self.signalling = signalling
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._lock = threading.Lock()
        self._sn = itertools.count(first_sn if first_sn is not None else int(time.time() * 10) % 1_000_000)

    def next_sn(self) -> int:
        return next(self._sn)

    def send(self, device_id: str, body: bytes, *, timeout: float = 10.0) -> None:
        """Send one MANSCDP MESSAGE to a registered device and wait for its 200 (no answer document)."""
        sig = self.signalling
        dev = sig.devices.get(device_id)
        if dev is None or not dev.online:
            msg = f"device {device_id} is not registered and online"
            raise QueryError(msg)
        req = sig.new_request("MESSAGE", f"sip:{device_id}@{dev.peer.host}:{dev.peer.port}", dev.peer,
                              to=f"<sip:{device_id}@{sig.config.domain}>", body=body,
                              content_type="Application/MANSCDP+xml")
        assert sig.transport is not None
        try:
            resp = sig.transport.request(req, dev.peer, timeout=timeout)
        except (SipTimeout, OSError) as exc:
            msg = f"device {device_id} did not take the MESSAGE: {exc}"
            raise QueryError(msg) from None
        if resp.status is None or resp.status >= 300:
            msg = f"device {device_id} answered {resp.status} {resp.reason}"
            raise QueryError(msg)

    def ask(self, device_id: str, cmd_type: str, fields: Sequence[tuple[str, str]] = (), *, target: str | None = None,
            list_tag: str | None = None, timeout: float = 10.0) -> Answer:
        """Query ``target`` (a channel, default the device itself) on ``device_id`` and wait for the answer."""
        sn = str(self.next_sn())
        pending = _Pending(Answer(device_id, cmd_type.lower(), sn), list_tag)
        with self._lock:
            self._pending[(device_id, sn)] = pending
        try:
            body = manscdp.document("Query", cmd_type, sn, target or device_id, fields)
            self.send(device_id, body, timeout=min(timeout, 32.0))
            pending.done.wait(timeout)
        finally:
            with self._lock:
                self._pending.pop((device_id, sn), None)
        answer = pending.answer
        if not answer.pages:
            msg = f"device {device_id} did not answer the {cmd_type} query (SN {sn}) within {timeout:.0f} s"
            raise QueryError(msg)
        if not answer.complete:
            log.warning("%s of %s incomplete after %.0f s: %d of %s items", cmd_type, device_id, timeout,
                        len(answer.items), answer.sum_num)
        return answer

    def on_response(self, device_id: str, doc: manscdp.Document) -> bool:
        """A Response MESSAGE arrived; True if it answered a query of ours."""
        with self._lock:
            pending = self._pending.get((device_id, doc.sn))
        if pending is None or pending.answer.cmd_type != doc.cmd_type:
            return False
        answer = pending.answer
        with self._lock:
            answer.pages += 1
            if pending.list_tag is None:
                answer.fields, answer.complete = dict(doc.fields), True
            else:
                self._page(pending, doc)
        if answer.complete:
            pending.done.set()
        return True

    @staticmethod
    def _page(pending: _Pending, doc: manscdp.Document) -> None:
        answer = pending.answer
        try:
            answer.sum_num = manscdp.sum_num(doc)
        except manscdp.ManscdpError as exc:
            log.warning("%s page from %s: %s", doc.cmd_type, answer.device_id, exc)
            return
        answer.fields.update(doc.fields)
        for values in manscdp.list_items(doc, pending.list_tag or ""):
            key = tuple(sorted(values.items()))
            if key in pending.seen:
                answer.duplicates += 1
                continue
            pending.seen.add(key)
            answer.items.append(values)
        answer.complete = len(answer.items) >= answer.sum_num
