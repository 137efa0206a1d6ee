"""Camera-health housekeeping: recording-gap alerts (the quality worker, every ``quality.housekeeping_interval_s``)
and the scheduled daily reports (:class:`DailyReports`, beside the API: it may read the camera registry for
the units, which the quality worker's store identity may not — camera records hold encrypted passwords).

- **Recording gaps**: for every known camera, the recordings' day indexes of yesterday and today are read
  and each hole longer than ``quality.gap_min_s`` in the recording of a time the camera was online, after
  which recording resumed, raises one
  ``recording_gap`` alert with ``alert_id = stable_id("recording_gap", camera, gap start)``: the same gap
  gives the same alert on every run and every replica (the indexer and the live feed de-duplicate by ID),
  and this process sends each ID once. A camera that stopped recording because it was offline gets its
  ``camera_offline`` alert from the rules worker instead; a recording that has not resumed yet is not
  alerted until it does (its gap has no end yet).
- **Daily report**: after ``quality.report_hour_utc`` the report of yesterday is made for every camera
  ("all") and for each unit, unless it is already in the store (:mod:`pipeline.health.report`); every API
  replica may try, the first one writes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.config.quality import QualityConfig
from pipeline.health.history import day_window
from pipeline.health.service import HealthService, make_daily_reports
from pipeline.store.base import StoreError
from schemas.alerts import Alert
from schemas.ids import stable_id

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)

MAX_SENT_IDS = 100_000


class Housekeeping:
    def __init__(self, config: TubelineConfig, store: ObjectStore, settings: QualityConfig,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.store = store
        self.settings = settings
        self.monotonic = monotonic
        self._service: HealthService | None = None
        self._next = monotonic() + min(settings.housekeeping_interval_s, 30.0)
        self.sent: set[str] = set()
        self.runs = 0

    @property
    def service(self) -> HealthService:
        if self._service is None:
            self._service = HealthService(self.store, self.config, registry=False)
        return self._service

    def maybe_run(self, send_alert: Callable[[Alert], None]) -> int:
        interval = self.settings.housekeeping_interval_s
        if interval <= 0 or self.monotonic() < self._next:
            return 0
        self._next = self.monotonic() + interval
        try:
            return self.run(send_alert, datetime.now(UTC))
        except StoreError as exc:
            log.warning("quality housekeeping skipped: the object store failed (%s)", exc)
            return 0

    def run(self, send_alert: Callable[[Alert], None], now: datetime) -> int:
        """One round of gap alerts; returns how many were sent."""
        self.service.refresh()
        sent = self.gap_alerts(send_alert, now)
        self.runs += 1
        return sent

    def gap_alerts(self, send_alert: Callable[[Alert], None], now: datetime) -> int:
        sent = 0
        service = self.service
        cams = [c.id for c in service.cameras()]
        for day in ((now - timedelta(days=1)).date().isoformat(), now.date().isoformat()):
            start, end = day_window(day, now)
            spans = service.history.intervals(cams, start, end) if cams else {}
            for cam in cams:
                for gap in service.history.resumed_gaps(cam, day, spans.get(cam, []), self.settings.gap_min_s, now):
                    alert_id = stable_id("recording_gap", cam, gap.start.isoformat())
                    if alert_id in self.sent:
                        continue
                    send_alert(Alert(
                        alert_id=alert_id, alert_type="recording_gap", camera_id=cam, occurred_at=gap.start,
                        severity="medium", rule_id="recording-gap",
                        message=f"camera {cam}: {gap.seconds:.0f} s missing from the recording while online "
                                f"({gap.start:%H:%M:%S}–{gap.end:%H:%M:%S} UTC)",
                        details={"gap_seconds": round(gap.seconds, 1), "resumed_at": gap.end.isoformat()},
                    ))
                    self.sent.add(alert_id)
                    sent += 1
        if len(self.sent) > MAX_SENT_IDS:
            self.sent.clear()
        return sent


class DailyReports:
    """Makes yesterday's daily reports (every camera and each unit) once they are due, in a thread beside the
    API (:func:`workers.runner.companions.api_companions`), every ``quality.housekeeping_interval_s``."""

    def __init__(self, config: TubelineConfig, store: ObjectStore) -> None:
        self.config = config
        self.settings = config.quality
        self.service = HealthService(store, config)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.made: list[str] = []

    def run_once(self, now: datetime) -> list[str]:
        if now.hour < self.settings.report_hour_utc:
            return []
        self.service.refresh()
        yesterday = (now - timedelta(days=1)).date().isoformat()
        written = make_daily_reports(self.service, yesterday, now, every_unit=True, overwrite=False)
        self.made += written
        return written

    def _loop(self) -> None:
        while not self._stop.wait(min(self.settings.housekeeping_interval_s, 60.0) if not self.made else
                                  self.settings.housekeeping_interval_s):
            try:
                self.run_once(datetime.now(UTC))
            except Exception:
                log.warning("daily reports: a round failed; trying again later", exc_info=True)

    def start(self) -> None:
        if self._thread is None and self.settings.housekeeping_interval_s > 0:
            self._thread = threading.Thread(target=self._loop, name="api-daily-reports", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
