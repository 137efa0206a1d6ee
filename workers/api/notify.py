"""Outbound notifications: every matching alert POSTed to each configured webhook, signed, retried, dead-lettered.

Runs inside the API process (started with it when ``notify.webhooks`` is not empty). It follows the alerts
topic in the consumer group ``tubeline-notify`` and **commits** its offsets, so with several API replicas each
alert is delivered once (at least once: a replica that dies after a delivery and before its commit delivers
again; receivers de-duplicate by ``X-Tubeline-Delivery``). A batch is committed only when each of its
deliveries either succeeded (2xx) or was dead-lettered.

Request: ``POST <url>`` with the alert's JSON (the wire form of ``tubeline.alerts.v1``) and headers
``X-Tubeline-Event: alert``, ``X-Tubeline-Delivery: <webhook id>:<alert id>``, ``X-Tubeline-Timestamp: <unix
seconds>``, ``X-Tubeline-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``. A receiver checks
the signature with its copy of the secret and refuses timestamps more than a few minutes old (replays).

Retries: a connection error, a timeout, 408, 429 or 5xx is retried after ``backoff_initial_s × 2^n`` seconds
(capped at ``backoff_max_s``) up to ``max_attempts`` attempts; any other answer is final. What still failed is
written to ``notify/dead/{webhook}/{alert}.json`` (attempts, last status or error, the body) — the dead-letter
list ``GET /api/admin/notify/dead`` shows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from pipeline.bus.base import Bus
from pipeline.config.notify import NotifyConfig, WebhookSpec
from pipeline.runtime.background import BackgroundLoop
from pipeline.store.base import ObjectStore
from schemas.alerts import Alert
from schemas.topics import ALERTS

log = logging.getLogger(__name__)

GROUP = "tubeline-notify"
RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
RETRY_STATUS = frozenset({408, 429})


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def wants(hook: WebhookSpec, alert: Alert) -> bool:
    return ((not hook.types or alert.alert_type in hook.types) and (not hook.cameras or alert.camera_id in hook.cameras)
            and RANK[alert.severity] >= RANK[hook.min_severity])


@dataclass
class Outcome:
    delivered: bool
    attempts: int
    status: int | None
    error: str


class WebhookNotifier:
    """The API companion that delivers alerts to webhooks (see the module docstring)."""

    def __init__(self, settings: NotifyConfig, bus: Bus, store: ObjectStore, *,
                 client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.store = store
        self.client = client or httpx.Client(timeout=settings.timeout_s, follow_redirects=False)
        self._loop = BackgroundLoop("api-notify", self._follow, what="notifier", join_s=10.0)
        self._stop = self._loop.stop_event  # also ends a retry back-off early
        self.delivered = 0
        self.dead = 0

    def start(self) -> None:
        if self.settings.webhooks:
            self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _follow(self, stop: threading.Event) -> None:
        with self.bus.consumer([ALERTS.name], GROUP) as consumer:
            while not stop.is_set():
                batch = consumer.poll(timeout=0.5, max_records=100)
                for message in batch:
                    self.handle(message.value)
                if batch and not stop.is_set():
                    consumer.commit(batch)

    def handle(self, value: bytes) -> None:
        try:
            alert = Alert.from_json(value)
        except ValueError as exc:
            log.warning("notifier: skipping an invalid alert: %s", exc)
            return
        for hook in self.settings.webhooks:
            if wants(hook, alert):
                outcome = self.deliver(hook, alert)
                if outcome.delivered:
                    self.delivered += 1
                else:
                    self._dead_letter(hook, alert, outcome)

    def deliver(self, hook: WebhookSpec, alert: Alert) -> Outcome:
        body = alert.to_json()
        status: int | None = None
        error = ""
        delay = self.settings.backoff_initial_s
        for attempt in range(1, self.settings.max_attempts + 1):
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Tubeline-Event": "alert",
                       "X-Tubeline-Delivery": f"{hook.id}:{alert.alert_id}", "X-Tubeline-Timestamp": stamp,
                       "X-Tubeline-Signature": signature(hook.secret.get_secret_value(), stamp, body)}
            try:
                response = self.client.post(hook.url, content=body, headers=headers)
                status, error = response.status_code, ""
                if 200 <= status < 300:
                    return Outcome(True, attempt, status, "")
                if status < 500 and status not in RETRY_STATUS:
                    return Outcome(False, attempt, status, f"refused with {status}")
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"[:300]
            if attempt < self.settings.max_attempts and self._stop.wait(delay):
                return Outcome(False, attempt, status, "stopped")
            delay = min(delay * 2, self.settings.backoff_max_s)
        return Outcome(False, self.settings.max_attempts, status, error or f"answered {status}")

    def _dead_letter(self, hook: WebhookSpec, alert: Alert, outcome: Outcome) -> None:
        self.dead += 1
        record: dict[str, Any] = {"webhook": hook.id, "alert_id": alert.alert_id, "camera_id": alert.camera_id,
                                  "attempts": outcome.attempts, "status": outcome.status, "error": outcome.error,
                                  "failed_at": datetime.now(UTC).isoformat(), "alert": json.loads(alert.to_json())}
        key = f"{self.settings.dead_letter_prefix.strip('/')}/{hook.id}/{alert.alert_id}.json"
        try:
            self.store.put(key, json.dumps(record, indent=1).encode(), content_type="application/json")
        except Exception:
            log.error("could not store the dead letter %s", key, exc_info=True)
        log.warning("webhook %s: alert %s not delivered after %d attempts (%s)", hook.id, alert.alert_id,
                    outcome.attempts, outcome.error or outcome.status)
