"""Work that runs beside the API in one process: the synopsis worker's request loop (``api.build_synopses``)
and the scheduled daily inspection reports (``quality.housekeeping_interval_s`` > 0).

The API package never imports another worker; when the configuration asks the API process to build
synopses too (the embedded ``tubeline up``), the runner composes the two here.
"""

from __future__ import annotations

import logging
import threading

from pipeline.bus.base import Bus
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.store.base import ObjectStore
from workers.api.context import Companion
from workers.quality.housekeeping import DailyReports
from workers.synopsis.catalog import CatalogTrackSource
from workers.synopsis.worker import SynopsisWorker

log = logging.getLogger(__name__)


class SynopsisBuilder:
    """The synopsis worker's request loop in a thread, tracks read from the Parquet catalog."""

    def __init__(self, config: TubelineConfig, store: ObjectStore, bus: Bus | None = None) -> None:
        self._stop = threading.Event()
        self.settings = config.synopsis
        self.worker = SynopsisWorker(config, bus=bus or MemoryBus(), store=store, stop_event=self._stop,
                                     source=CatalogTrackSource(store, config.index.catalog_prefix),
                                     settings=self.settings)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="api-synopsis-builder", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self.worker.poll_requests()
            except Exception:
                log.warning("synopsis builder: polling the requests failed", exc_info=True)
            if self._stop.wait(self.settings.worker.poll_s):
                return

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def api_companions(config: TubelineConfig, store: ObjectStore, *, bus: Bus | None = None,
                   api: ApiConfig | None = None, report_store: ObjectStore | None = None) -> list[Companion]:
    """What runs beside the API in this process, by the ``api`` section (``api`` overrides it)."""
    api = api or config.api
    companions: list[Companion] = [SynopsisBuilder(config, store, bus)] if api.build_synopses else []
    if config.quality.housekeeping_interval_s > 0:
        # the scheduled daily inspection reports, under the API's own store identity (``report_store``)
        companions.append(DailyReports(config, report_store or store))
    return companions
