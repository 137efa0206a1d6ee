"""Outbound webhooks against a real HTTP receiver on loopback: signed (HMAC-SHA256 over timestamp and body),
retried with backoff on 5xx, filtered by type/severity, dead-lettered after the last attempt, one delivery per
alert across notifier replicas (a committed consumer group), and the dead-letter list for admins."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.api import ApiConfig
from pipeline.config.notify import NotifyConfig
from pipeline.store.local import LocalStore
from schemas.alerts import Alert
from schemas.topics import ALERTS
from tests.unit.test_api_support import T0, FakeAnalyzer, add_users, login, sample_search
from workers.api.app import create_app
from workers.api.context import build_context
from workers.api.notify import WebhookNotifier

SECRET = "s3cret-s3cret-s3cret"


class Receiver:
    """Answers 500 to the first ``fail_first`` requests of each path, then 204; records what arrived."""

    def __init__(self, fail_first: int = 1) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        seen: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                seen[self.path] = seen.get(self.path, 0) + 1
                broken = self.path == "/broken" or seen[self.path] <= fail_first
                self.send_response(500 if broken else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def alert(i: int, severity: str = "high", kind: str = "zone_intrusion") -> Alert:
    return Alert(alert_id=f"a-{i}", alert_type=kind, camera_id="cam-a", occurred_at=T0 + timedelta(seconds=i),
                 severity=severity, rule_id="r1", message=f"alert {i}")


def settings(url: str) -> NotifyConfig:
    return NotifyConfig.model_validate({
        "max_attempts": 3, "backoff_initial_s": 0.05, "backoff_max_s": 0.1, "timeout_s": 2,
        "webhooks": [{"id": "ops", "url": f"{url}/ops", "secret": SECRET, "min_severity": "medium"},
                     {"id": "dead", "url": f"{url}/broken", "secret": SECRET, "types": ["zone_intrusion"]}]})


def test_signed_retried_filtered_and_dead_lettered(receiver: Receiver, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    notifier = WebhookNotifier(settings(receiver.url), MemoryBus(), store)
    notifier.handle(alert(1).to_json())
    notifier.handle(alert(2, severity="low", kind="line_crossing").to_json())  # below ops' minimum, not 'dead's type
    ops = [r for r in receiver.requests if r[0] == "/ops"]
    assert len(ops) == 2  # one 500, then delivered
    _, headers, body = ops[-1]
    stamp = headers["X-Tubeline-Timestamp"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Tubeline-Signature"] == f"sha256={expected}"
    assert headers["X-Tubeline-Delivery"] == "ops:a-1" and json.loads(body)["alert_id"] == "a-1"
    assert len([r for r in receiver.requests if r[0] == "/broken"]) == 3  # max_attempts
    dead = json.loads(store.get("notify/dead/dead/a-1.json"))
    assert dead["attempts"] == 3 and dead["status"] == 500 and dead["alert"]["alert_id"] == "a-1"
    assert (notifier.delivered, notifier.dead) == (1, 1)


def test_one_delivery_per_alert_across_replicas(receiver: Receiver, tmp_path: Path) -> None:
    bus = MemoryBus(default_partitions=2)
    cfg = settings(receiver.url).model_copy(update={"webhooks": settings(receiver.url).webhooks[:1]})
    replicas = [WebhookNotifier(cfg, bus, LocalStore(tmp_path)) for _ in range(2)]
    for r in replicas:
        r.start()
    time.sleep(0.5)  # both joined the group (a rebalance mid-batch redelivers: at least once)
    with bus.producer() as producer:
        for i in range(6):
            producer.send(ALERTS.name, alert(i).to_json(), key=f"cam-{i}")
    deadline = time.monotonic() + 20
    while sum(r.delivered for r in replicas) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    for r in replicas:
        r.stop()
    delivered = sorted(h["X-Tubeline-Delivery"] for p, h, _ in receiver.requests if p == "/ops" and h)
    assert sum(r.delivered for r in replicas) == 6
    assert sorted(set(delivered)) == [f"ops:a-{i}" for i in range(6)]


def test_admins_read_the_dead_letter_list(receiver: Receiver, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    add_users(store)
    config = with_overrides(TubelineConfig(), {})
    WebhookNotifier(settings(receiver.url), MemoryBus(), store).handle(alert(7).to_json())
    ctx = build_context(config, store=store, search=sample_search(), face_analyzer_factory=FakeAnalyzer,
                        audit_writer="test", api=ApiConfig(cache_dir=str(tmp_path / "cache")))
    with TestClient(create_app(ctx, start_background=False)) as c:
        login(c, "boss")
        body = c.get("/api/admin/notify/dead").json()
        assert body["count"] == 1 and body["dead_letters"][0]["webhook"] == "dead"
        login(c, "otto")
        assert c.get("/api/admin/notify/dead").status_code == 403
