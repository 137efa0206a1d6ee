"""Per-user quotas, kept in the object store (``auth/quota/{user}.json``) so every API replica shares them.

They bound what one user can make the deployment build: at most ``api.synopsis_max_pending`` of their
synopsis builds queued or running at once, ``api.synopsis_max_per_hour`` new builds and
``api.exports_max_per_hour`` clip exports per hour. Past a quota the call gets 429 with ``Retry-After``;
asking for a synopsis that already exists costs nothing. (Login throttling is :mod:`workers.api.throttle`.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.config.api import ApiConfig
from pipeline.store.base import ObjectStore
from workers.api.throttle import Refusal, load_doc, retry_after, save_doc

QUOTA_PREFIX = "auth/quota"
HOUR_S = 3600.0


class Quotas:
    """Per-user limits on synopsis builds and clip exports."""

    def __init__(self, store: ObjectStore, api: ApiConfig) -> None:
        self.store = store
        self.api = api
        self._lock = threading.Lock()

    @staticmethod
    def key(user: str) -> str:
        return f"{QUOTA_PREFIX}/{user}.json"

    def _doc(self, user: str, now: float) -> dict[str, Any]:
        doc = load_doc(self.store, self.key(user))
        for kind in ("synopses", "exports"):
            doc[kind] = [float(t) for t in doc.get(kind, []) if isinstance(t, int | float) and now - t < HOUR_S]
        doc["pending"] = [p for p in doc.get("pending", []) if isinstance(p, list) and len(p) == 2]
        return doc

    def synopsis_refusal(self, user: str, still_pending: Callable[[str, str], bool]) -> Refusal | None:
        """A refusal when ``user`` may not queue another synopsis build now. ``still_pending(camera, id)`` says
        whether one of their earlier builds is still queued or running."""
        now = time.time()
        with self._lock:
            doc = self._doc(user, now)
            pending = [p for p in doc["pending"] if still_pending(str(p[0]), str(p[1]))]
            if len(pending) != len(doc["pending"]):
                doc["pending"] = pending
                save_doc(self.store, self.key(user), doc)
        if len(pending) >= self.api.synopsis_max_pending:
            return Refusal(f"you have {len(pending)} synopses queued or building (at most "
                           f"{self.api.synopsis_max_pending}); wait for one to finish", 30)
        wait = retry_after(doc["synopses"], self.api.synopsis_max_per_hour, HOUR_S, now)
        if wait is not None:
            return Refusal(f"at most {self.api.synopsis_max_per_hour} synopsis builds per hour", wait)
        return None

    def synopsis_queued(self, user: str, camera_id: str, synopsis_id: str) -> None:
        now = time.time()
        with self._lock:
            doc = self._doc(user, now)
            doc["synopses"].append(round(now, 3))
            doc["pending"] = [*doc["pending"], [camera_id, synopsis_id]][-100:]
            save_doc(self.store, self.key(user), doc)

    def export_refusal(self, user: str) -> Refusal | None:
        now = time.time()
        wait = retry_after(self._doc(user, now)["exports"], self.api.exports_max_per_hour, HOUR_S, now)
        if wait is not None:
            return Refusal(f"at most {self.api.exports_max_per_hour} clip exports per hour", wait)
        return None

    def export_made(self, user: str) -> None:
        now = time.time()
        with self._lock:
            doc = self._doc(user, now)
            doc["exports"].append(round(now, 3))
            save_doc(self.store, self.key(user), doc)
