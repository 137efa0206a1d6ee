"""The alert desk: what operators did about an alert — acknowledged, assigned, notes — kept and shared live.

One record per alert in the object store (``alert-desk/{camera}/{alert_id}.json``): its state (``new``,
``acknowledged``), who it is assigned to, the notes, and the history of every action with who and when. Each
change is written before it is announced (``on_change``: the API's alert hub sends it to every connected
operator as an ``update`` event). Concurrent changes to one alert are serialised per process; across API
replicas the last write wins per field, and every action stays in the history.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

PREFIX = "alert-desk"
ALERT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
MAX_NOTE = 2000
MAX_HISTORY = 500


@dataclass
class DeskRecord:
    alert_id: str
    camera_id: str
    state: str = "new"
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    assigned_to: str | None = None
    notes: list[dict[str, str]] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    version: int = 0

    def public(self) -> dict[str, object]:
        return asdict(self)


class AlertDesk:
    def __init__(self, store: ObjectStore, on_change: Callable[[DeskRecord], None] | None = None) -> None:
        self.store = store
        self.on_change = on_change
        self._lock = threading.Lock()

    @staticmethod
    def key(camera_id: str, alert_id: str) -> str:
        return f"{PREFIX}/{camera_id}/{alert_id}.json"

    def get(self, camera_id: str, alert_id: str) -> DeskRecord:
        try:
            doc = json.loads(self.store.get(self.key(camera_id, alert_id)))
        except ObjectNotFound:
            return DeskRecord(alert_id, camera_id)
        return DeskRecord(**doc)

    def act(self, camera_id: str, alert_id: str, user: str, action: str, value: str = "") -> DeskRecord:
        """Apply ``action`` (``ack``, ``assign`` with a user name, ``note`` with text) and store it."""
        now = datetime.now(UTC).isoformat()
        with self._lock:
            rec = self.get(camera_id, alert_id)
            if action == "ack":
                rec.state, rec.acknowledged_by, rec.acknowledged_at = "acknowledged", user, now
                if value:
                    rec.notes.append({"by": user, "at": now, "text": value[:MAX_NOTE]})
            elif action == "assign":
                rec.assigned_to = value or None
            elif action == "note":
                rec.notes.append({"by": user, "at": now, "text": value[:MAX_NOTE]})
            else:
                msg = f"unknown desk action {action!r}"
                raise ValueError(msg)
            rec.history.append({"action": action, "by": user, "at": now, "value": value[:200]})
            rec.history = rec.history[-MAX_HISTORY:]
            rec.version += 1
            self.store.put(self.key(camera_id, alert_id), json.dumps(asdict(rec), indent=1).encode(),
                           content_type="application/json")
        if self.on_change is not None:
            try:
                self.on_change(rec)
            except Exception:
                log.warning("announcing an alert-desk change failed", exc_info=True)
        return rec
