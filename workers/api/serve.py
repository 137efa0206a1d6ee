"""Serving the API + UI: uvicorn in a thread, the first-admin bootstrap, and the entry points for
``tubeline api serve`` and ``tubeline up``.

For the embedded main job (``tubeline up``), after the pipeline has run::

    from workers.api.serve import serve_until_interrupted
    serve_until_interrupted(config, echo=click.echo)   # prints the URL and, on first run, the admin password

or, to keep control::

    server = start_api(config)                     # opens its own store; bootstraps the first admin
    for line in server.banner(): click.echo(line)  # URL + (first run only) the admin password, once
    server.wait()                                  # until Ctrl-C / SIGTERM, then server.stop()

The password is returned to the caller and printed to the console only: it is never logged.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from pipeline.bus.base import Bus
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.live.hub import LiveHub
from pipeline.store.base import ObjectStore
from workers.api.app import create_app
from workers.api.context import ApiContext, Companion, build_context
from workers.api.users import bootstrap_admin

log = logging.getLogger(__name__)


@dataclass
class ApiServer:
    """A running API: its URL, the first-run admin password (or None), and how to stop it."""

    ctx: ApiContext
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int
    admin_password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
        return f"http://{shown}:{self.port}/"

    def banner(self) -> list[str]:
        """Lines for the console: where the UI is, and on first run how to log in (shown once)."""
        lines = [f"Tubeline API and web UI: {self.url}  (OpenAPI: {self.url}api/openapi.json, docs: {self.url}api/docs)"]
        if self.admin_password:
            lines += [
                "First login: user 'admin', password " + self.admin_password,
                "  (shown once, never stored in clear; change it with 'tubeline users passwd admin',",
                "   add users with 'tubeline users add NAME --role investigator --unit 510104')",
            ]
        else:
            lines.append("Log in with your Tubeline user ('tubeline users add' creates one).")
        return lines

    def alive(self) -> bool:
        return self.thread.is_alive()

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until ``stop`` is set (default: SIGINT/SIGTERM in the main thread) or the server ends; then stop it."""
        own = stop is None
        stop = stop or threading.Event()
        previous = _on_signals(stop) if own else {}
        try:
            while not stop.wait(0.5) and self.alive():
                pass
        finally:
            _restore(previous)
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)


def start_api(
    config: TubelineConfig,
    *,
    store: ObjectStore | None = None,
    bus: Bus | None = None,
    search: Any = None,
    host: str | None = None,
    port: int | None = None,
    bootstrap: bool = True,
    face_analyzer_factory: Any = None,
    api: ApiConfig | None = None,
    ready_timeout_s: float = 30.0,
    companions: Collection[Companion] = (),
    live: LiveHub | None = None,
) -> ApiServer:
    """Start the API + UI in a background thread and return once it accepts connections.

    ``api`` overrides the configuration's ``api`` section. ``store`` and ``bus`` default to the configured ones (a bus is needed only for live alerts).
    With ``bootstrap`` and no user yet, an ``admin`` with a random password is created; the password
    is in ``ApiServer.admin_password`` (and in ``banner()``), nowhere else.
    """
    from pipeline.store import open_store

    api = api or config.api
    store = store or open_store(config)
    password = bootstrap_admin(store) if bootstrap else None
    ctx = build_context(config, store=store, search=search, bus=bus, face_analyzer_factory=face_analyzer_factory,
                        api=api, companions=companions, live=live)
    app = create_app(ctx)
    host = host or api.host
    uv_config = uvicorn.Config(app, host=host, port=api.port if port is None else port, log_level="warning",
                               access_log=False, proxy_headers=False, server_header=False, lifespan="on")
    server = uvicorn.Server(uv_config)
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            msg = f"the API did not start on {host}:{uv_config.port} (port in use?)"
            raise RuntimeError(msg)
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else uv_config.port
    log.info("API listening on %s:%s", host, bound)
    return ApiServer(ctx, server, thread, host, int(bound), password)


def serve_until_interrupted(
    config: TubelineConfig,
    *,
    echo: Callable[[str], None],
    store: ObjectStore | None = None,
    bus: Bus | None = None,
    host: str | None = None,
    port: int | None = None,
    bootstrap: bool = True,
    api: ApiConfig | None = None,
    companions: Collection[Companion] = (),
) -> None:
    """Start the API + UI, print the banner through ``echo`` (the console, never a log), serve until
    SIGINT/SIGTERM. ``api`` overrides the configuration's ``api`` section. Raises RuntimeError when it
    cannot listen."""
    stop = threading.Event()
    previous = _on_signals(stop)  # before the banner: a signal right after it must still stop cleanly
    try:
        server = start_api(config, store=store, bus=bus, host=host, port=port, bootstrap=bootstrap, api=api,
                           companions=companions)
        for line in server.banner():
            echo(line)
        server.wait(stop)
    finally:
        _restore(previous)


def _on_signals(stop: threading.Event) -> dict[int, Any]:
    """Make SIGINT and SIGTERM set ``stop`` (main thread only); returns the previous handlers."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
