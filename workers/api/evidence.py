"""Evidence snapshots for alerts that carry none: the camera's picture at the alert's moment, from the live cache.

Rule alerts (zone intrusion, line crossing, loitering, crowding) are raised from detections and name no picture.
When such an alert reaches the API's alert follower, the picture captured at ``occurred_at`` is decoded from the
live hub's recent groups of pictures (a few seconds are kept), stored once at
``alert-evidence/{camera}/{alert_id}.jpg`` (a stable key: another replica writes the same object) and added to the
alert's evidence. Alerts from before the API ran, or from cameras without live packets, keep no snapshot; the
console then shows the recording at that moment instead.
"""

from __future__ import annotations

import logging

from pipeline.live.hub import LiveHub
from pipeline.live.remux import snapshot
from pipeline.store.base import ObjectStore
from schemas.alerts import Alert

log = logging.getLogger(__name__)

PREFIX = "alert-evidence"


def evidence_key(camera_id: str, alert_id: str) -> str:
    return f"{PREFIX}/{camera_id}/{alert_id}.jpg"


class AlertSnapshots:
    def __init__(self, store: ObjectStore, live: LiveHub) -> None:
        self.store = store
        self.live = live
        self.taken = 0

    def __call__(self, alert: Alert) -> Alert:
        if alert.evidence_keys:
            return alert
        try:
            shot = snapshot(self.live.gop_at(alert.camera_id, alert.occurred_at))
            if shot is None:
                return alert
            key = evidence_key(alert.camera_id, alert.alert_id)
            self.store.put(key, shot[1], content_type="image/jpeg",
                           metadata={"camera-id": alert.camera_id, "captured-at": shot[0].captured_at.isoformat()})
        except Exception:
            log.warning("no snapshot for alert %s", alert.alert_id, exc_info=True)
            return alert
        self.taken += 1
        return alert.model_copy(update={"evidence_keys": [key]})

    def stored(self, camera_id: str, alert_id: str) -> str | None:
        """The snapshot key of an alert read from the catalog, when one was taken."""
        key = evidence_key(camera_id, alert_id)
        try:
            return key if self.store.exists(key) else None
        except Exception:
            return None
