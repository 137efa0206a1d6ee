"""Camera scopes: which camera IDs a user may see, from their listed cameras and administrative units.

A unit in a scope covers itself and every unit below it (:func:`pipeline.cameras.units.unit_covers`).

Cameras come from the camera registry (``registry/cameras/``) and the configuration's static cameras
(registry records win). A camera without a unit in its record takes the unit its 20-digit GB/T 28181 ID
encodes (:mod:`pipeline.cameras.units`); one with neither is visible only to users whose scope is every
camera or lists its ID. Approved, unexpired elevations (:mod:`pipeline.cases.elevation`) add their units and
cameras for their time. The resolved list is what the API passes as ``cameras=`` on
every search call; an empty list means the user sees nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from pipeline.cameras.registry import CameraRegistry
from pipeline.cameras.units import camera_unit, unit_covers
from pipeline.cases.elevation import Elevation, Elevations
from pipeline.config.ingest import CameraSpec
from pipeline.store.base import ObjectStore
from workers.api.users import Scope, User

log = logging.getLogger(__name__)


def cameras_in_scope(scope: Scope, cameras: Iterable[CameraSpec], grants: Iterable[Elevation] = ()
                     ) -> list[str] | None:
    """Camera IDs ``scope`` (and the active elevations ``grants``) cover among ``cameras``, plus the listed IDs;
    None for every camera. A camera's unit is its registry unit, else the one its GB/T 28181 ID encodes."""
    if scope.all_cameras:
        return None
    grants = list(grants)
    units = [*scope.units, *(u for g in grants for u in g.units)]
    allowed = set(scope.cameras) | {c for g in grants for c in g.cameras}
    for cam in cameras:
        unit = camera_unit(cam.admin_unit, cam.id, cam.gb_device_id)
        if any(unit_covers(u, unit) for u in units):
            allowed.add(cam.id)
    return sorted(allowed)


class CameraDirectory:
    """The known cameras (registry + static config), cached for a few seconds."""

    def __init__(self, store: ObjectStore, registry_prefix: str, static: Iterable[CameraSpec] = (),
                 ttl_s: float = 10.0) -> None:
        self.registry = CameraRegistry(store, registry_prefix)
        self._elevations = Elevations(store)
        self.static = list(static)
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, CameraSpec]] | None = None

    def cameras(self) -> dict[str, CameraSpec]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self.ttl_s:
                found = {cam.id: cam for cam in self.static}
                found.update({cam.id: cam for cam in self.registry.list()})
                self._cached = (now, found)
            return self._cached[1]

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def allowed(self, user: User) -> list[str] | None:
        return cameras_in_scope(user.scope, self.cameras().values(), self.elevations(user))

    def elevations(self, user: User) -> list[Elevation]:
        """The user's active, approved elevations (read from the store on every call: they expire by time)."""
        if user.scope.all_cameras:
            return []
        return self._elevations.active(user.name)


def narrow(allowed: list[str] | None, requested: Iterable[str] | None) -> list[str] | None:
    """The user's scope narrowed to the cameras a request names (never widened)."""
    wanted = [c for c in (requested or []) if c]
    if not wanted:
        return allowed
    if allowed is None:
        return sorted(set(wanted))
    return sorted(set(wanted) & set(allowed))
