"""A tiny HTTP endpoint for liveness/readiness probes (Kubernetes, compose healthchecks) and Prometheus.

``GET /healthz`` answers 200 unless a worker failed; ``GET /readyz`` answers 200 only
when every worker is running — not while one is starting, stopping or ``degraded`` (its
store or bus is failing: it stays up and retries, and is ready again once they answer).
Both return a JSON map of worker name to state, and the reasons of degraded workers.
``GET /metrics`` is the Prometheus text exposition of the process's metrics (:mod:`pipeline.metrics`).
The port is meant for the cluster network (probes, the Prometheus scraper), not for users.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline.metrics import exposition
from pipeline.runtime.worker import Health

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        states: Callable[[], Mapping[str, Health]],
        reasons: Callable[[], Mapping[str, list[str]]] | None = None,
    ) -> None:
        self._states = states
        self._reasons = reasons or (lambda: {})
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, content_type = exposition()
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                states = {k: v.value for k, v in outer._states().items()}
                if self.path == "/healthz":
                    ok = all(v != Health.FAILED.value for v in states.values())
                elif self.path == "/readyz":
                    ok = bool(states) and all(v == Health.RUNNING.value for v in states.values())
                else:
                    self.send_error(404)
                    return
                doc: dict[str, object] = {"ok": ok, "workers": states}
                degraded = {k: v for k, v in outer._reasons().items() if v}
                if degraded:
                    doc["degraded"] = degraded
                body = json.dumps(doc).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("health: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics endpoint on http://%s:%d/healthz and /metrics", *self._server.server_address[:2])
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
