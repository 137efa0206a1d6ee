"""The API as a worker (``tubeline worker api``): the same lifecycle and health states as every worker.

Setup starts uvicorn (bound to ``api.host``:``api.port``, loopback by default) and reports running
once it accepts connections; the loop watches the server thread; teardown stops it and closes the
audit chain. It consumes no topic with a committing group: the live alerts feed follows the alerts
topic in a throw-away group per process (see :mod:`workers.api.alerts`), so replicas scale freely
behind a load balancer — users, sessions and the audit log all live in the object store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from typing import ClassVar

from pipeline.bus.base import Bus
from pipeline.config import TubelineConfig
from pipeline.runtime.worker import Worker
from pipeline.search.protocol import Search
from pipeline.store.base import ObjectStore
from workers.api.context import Companion
from workers.api.serve import ApiServer, start_api

log = logging.getLogger(__name__)


class ApiWorker(Worker):
    """REST API and web UI: search, live video and alerts, timeline, KPIs, admin, audit (on api.host:api.port).

    The first line of each worker class's docstring is its line in ``tubeline worker --help``.
    """

    name: ClassVar[str] = "api"

    def __init__(self, config: TubelineConfig, *, bus: Bus, store: ObjectStore, search: Search | None = None,
                 companions: Collection[Companion] = (), stop_event: threading.Event | None = None) -> None:
        super().__init__(config, bus=bus, store=store, stop_event=stop_event)
        self.search = search
        self.companions = companions
        self.server: ApiServer | None = None

    def setup(self) -> None:
        self.server = start_api(self.config, store=self.store, bus=self.bus, search=self.search, bootstrap=False,
                                 companions=self.companions)
        log.info("api: serving %s", self.server.url)

    def step(self) -> None:
        assert self.server is not None
        if not self.server.alive():
            msg = "the API server stopped unexpectedly"
            raise RuntimeError(msg)
        self.stop_event.wait(0.5)

    def teardown(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
