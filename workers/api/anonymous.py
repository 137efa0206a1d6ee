"""Refusals to callers who are not authenticated, in the audit log without letting a scanner flood it.

A request without valid credentials (401) — or one refused before its credentials were looked at — is audited
as an anonymous refusal with the client address, the method and the path: at most one entry per client
address every ``ANONYMOUS_WINDOW_S`` seconds, the next entry counting the refusals in between (``repeats``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import HTTPException, Request

from workers.api.audit import AuditLog

log = logging.getLogger(__name__)

ANONYMOUS_WINDOW_S = 10.0


class Refused(HTTPException):
    """An HTTP refusal whose audit entry is already written (the application's error handler audits others)."""


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def route_name(request: Request) -> str:
    """The matched route's name (``search.plates``), else the path."""
    route = request.scope.get("route")
    return getattr(route, "name", None) or request.url.path


class AnonymousRefusals:
    """Audit entries of refusals to callers without valid credentials, coalesced per client address."""

    def __init__(self, window_s: float = ANONYMOUS_WINDOW_S) -> None:
        self.window_s = window_s
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def _due(self, client: str) -> int | None:
        """The refusals skipped since this client's last entry when one is due now, else None (counted)."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(client)
            if last is not None and now - last[0] < self.window_s:
                self._last[client] = (last[0], last[1] + 1)
                return None
            if len(self._last) > 100_000:
                self._last.clear()
            self._last[client] = (now, 0)
            return last[1] if last is not None else 0

    def record(self, audit: AuditLog, request: Request, status: int, reason: str, *, user: str | None = None) -> None:
        client = client_address(request)
        repeats = self._due(client)
        if repeats is None:
            return
        entry: dict[str, Any] = {"action": route_name(request), "user": user, "role": None, "via": None, "client": client,
                 "outcome": "refused", "status": status, "reason": reason, "case": None,
                 "params": {"method": request.method, "path": request.url.path[:300]}, "result_count": None,
                 "result_ids": [], "exported_keys": [], "repeats": repeats}
        try:
            audit.append(entry)
        except Exception as exc:
            log.error("audit log write failed for an anonymous refusal: %s", exc)
            raise HTTPException(503, "the audit log cannot be written") from None
