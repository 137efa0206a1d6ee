"""Camera facts for search results: names and positions from the registry, merged with status rows.

The registry (``registry/cameras/{id}.json``, :mod:`pipeline.cameras.registry`) is read on every
:meth:`CameraDirectory.refresh`; cameras declared in ``cameras.static`` fill in where the registry
has no record of the same ID. Credentials in the records are never copied into results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pipeline.cameras.registry import CameraRegistry
from pipeline.config.ingest import CameraSpec
from pipeline.search.hits import CameraState
from pipeline.store.base import ObjectStore, StoreError

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig

log = logging.getLogger(__name__)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


class CameraDirectory:
    """Camera ID → registry record, refreshed from the object store."""

    def __init__(self, store: ObjectStore, config: TubelineConfig) -> None:
        self.registry = CameraRegistry(store, config.cameras.registry_prefix)
        self.static: list[CameraSpec] = list(config.cameras.static)
        self.cameras: dict[str, CameraSpec] = {c.id: c for c in self.static}
        self.in_registry: set[str] = set()

    def refresh(self) -> None:
        try:
            records = self.registry.list()
        except StoreError as exc:
            log.warning("camera registry unreadable (%s); keeping the previous camera list", exc)
            return
        cameras = {c.id: c for c in self.static}
        cameras.update({c.id: c for c in records})
        self.cameras = cameras
        self.in_registry = {c.id for c in records} | {c.id for c in self.static}

    def get(self, camera_id: str) -> CameraSpec | None:
        return self.cameras.get(camera_id)

    def states(self, rows: Iterable[dict[str, Any]], scope: list[str] | None) -> list[CameraState]:
        """One state per camera known to the registry or to the status rows, within ``scope``, by ID."""
        by_id = {r["camera_id"]: r for r in rows}
        ids = set(by_id) | set(self.cameras)
        if scope is not None:
            ids &= set(scope)
        return [self._state(cid, by_id.get(cid)) for cid in sorted(ids)]

    def _state(self, camera_id: str, row: dict[str, Any] | None) -> CameraState:
        cam = self.cameras.get(camera_id)
        row = row or {}
        changed, stats_at = _utc(row.get("changed_at")), _utc(row.get("stats_at"))
        status: Literal["online", "offline", "reconnecting", "unknown"] = row.get("event") or "unknown"
        detail = row.get("detail") or ""
        if stats_at is not None and (changed is None or stats_at > changed):
            status, detail = "online", ""  # statistics only flow while the camera is connected
        seen = max((t for t in (changed, stats_at) if t is not None), default=None)
        return CameraState(
            camera_id=camera_id,
            name=cam.name if cam else "",
            latitude=cam.latitude if cam else None,
            longitude=cam.longitude if cam else None,
            admin_unit=cam.admin_unit if cam else "",
            point_class=cam.point_class if cam else None,
            kind=cam.kind if cam else None,
            enabled=cam.enabled if cam else None,
            status=status,
            reason=row.get("reason") if status != "online" else None,
            detail=detail,
            changed_at=changed,
            last_seen_at=seen,
            fps_in=row.get("fps_in"),
            fps_out=row.get("fps_out"),
            bitrate_kbps=row.get("bitrate_kbps"),
            in_registry=cam is not None,
        )
