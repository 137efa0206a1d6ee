"""The camera-health queries the API, the CLI and the quality worker's housekeeping share.

:class:`HealthService` puts together the catalog cache (the same :class:`pipeline.search.catalog.CatalogCache`
the search service reads; pass it to share one), the camera directory (registry + static cameras) and
:class:`pipeline.health.history.HealthHistory`. Cameras that reported status but have no registry record
(a file played by ``tubeline up``, a device not yet filed) are included as bare records: they count in the
KPIs, and against archive completeness.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pipeline.cameras.units import unit_covers
from pipeline.config.ingest import CameraSpec
from pipeline.health.history import HealthHistory
from pipeline.health.kpi import CameraDay, Kpis, camera_days, compute
from pipeline.health.report import build_report, report_keys, store_report
from pipeline.search.catalog import CatalogCache
from pipeline.search.registry import CameraDirectory

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)


class HealthService:
    def __init__(self, store: ObjectStore, config: TubelineConfig, catalog: CatalogCache | None = None, *,
                 registry: bool = True) -> None:
        """``registry=False``: cameras only as the catalog knows them (for a service whose store identity may
        not read camera records, which hold the encrypted camera passwords)."""
        self.store = store
        self.use_registry = registry
        self.config = config
        self.settings = config.quality
        self.catalog = catalog if catalog is not None else CatalogCache(store, config.index)
        self.directory = CameraDirectory(store, config)
        self.history = HealthHistory(self.catalog.cursor, store, config.ingest.recordings.prefix)

    def refresh(self) -> None:
        self.catalog.refresh()
        if self.use_registry:
            self.directory.refresh()

    def _seen_ids(self) -> set[str]:
        cur = self.catalog.cursor()
        try:
            cur.execute("SELECT DISTINCT camera_id FROM camera_status UNION SELECT DISTINCT camera_id FROM camera_health")
            return {row[0] for row in cur.fetchall()}
        finally:
            cur.close()

    def cameras(self, scope: Collection[str] | None = None, unit: str | None = None) -> list[CameraSpec]:
        """Known cameras in ``scope`` (None: all), optionally only those of ``unit`` and the units below it."""
        known = dict(self.directory.cameras)
        for cid in self._seen_ids() - set(known):
            known[cid] = CameraSpec(id=cid, kind="file", url="(not in the registry)", enabled=True)
        cams = [c for cid, c in sorted(known.items()) if scope is None or cid in scope]
        if unit:
            cams = [c for c in cams if unit_covers(unit, c.admin_unit)]
        return cams

    def days(self, day: str, scope: Collection[str] | None = None, unit: str | None = None,
             now: datetime | None = None) -> list[CameraDay]:
        return camera_days(self.history, self.cameras(scope, unit), day, now=now or datetime.now(UTC),
                           target=self.settings.online_target, gap_min_s=self.settings.gap_min_s,
                           records=self.config.ingest.recordings.enabled)

    def kpis(self, day: str, scope: Collection[str] | None = None, unit: str | None = None,
             now: datetime | None = None) -> tuple[Kpis, list[CameraDay]]:
        rows = self.days(day, scope, unit, now)
        return compute(rows, self.settings.online_target), rows


def make_daily_reports(service: HealthService, day: str, now: datetime, *, unit: str | None = None,
                       every_unit: bool = False, overwrite: bool = True) -> list[str]:
    """Build and store the report of ``day`` for ``unit`` (None: every camera) and, with ``every_unit``,
    for each unit too; returns the HTML keys written."""
    s = service.settings
    units: list[str | None] = [unit]
    if every_unit and unit is None:
        units += sorted({c.admin_unit for c in service.cameras() if c.admin_unit})
    written = []
    for u in units:
        html_key, _ = report_keys(s.report_prefix, day, u)
        if not overwrite and service.store.exists(html_key):
            continue
        kpis, rows = service.kpis(day, unit=u, now=now)
        report = build_report(rows, kpis, day, u, service.store, service.config.ingest.recordings.prefix, now)
        written.append(store_report(service.store, s.report_prefix, report)[0])
        log.info("daily report %s written (%d of %d cameras need attention)", html_key, report.faulty, len(rows))
    return written
