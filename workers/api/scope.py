"""Camera scopes: which camera IDs a user may see, from their listed cameras and administrative units.

A unit in a scope covers itself and every unit below it (:func:`pipeline.cameras.units.unit_covers`).

Cameras come from the camera registry (``registry/cameras/``) and the configuration's static cameras
(registry records win). A camera that has no record (hence no unit) is visible only to users whose
scope is every camera or lists its ID. The resolved list is what the API passes as ``cameras=`` on
every search call; an empty list means the user sees nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from pipeline.cameras.registry import CameraRegistry
from pipeline.cameras.units import unit_covers
from pipeline.config.ingest import CameraSpec
from pipeline.store.base import ObjectStore
from workers.api.users import Scope, User

log = logging.getLogger(__name__)


def cameras_in_scope(scope: Scope, cameras: Iterable[CameraSpec]) -> list[str] | None:
    """Camera IDs ``scope`` covers among ``cameras`` (plus its listed IDs); None for every camera."""
    if scope.all_cameras:
        return None
    allowed = set(scope.cameras)
    for cam in cameras:
        if any(unit_covers(u, cam.admin_unit) for u in scope.units):
            allowed.add(cam.id)
    return sorted(allowed)


class CameraDirectory:
    """The known cameras (registry + static config), cached for a few seconds."""

    def __init__(self, store: ObjectStore, registry_prefix: str, static: Iterable[CameraSpec] = (),
                 ttl_s: float = 10.0) -> None:
        self.registry = CameraRegistry(store, registry_prefix)
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
        return cameras_in_scope(user.scope, self.cameras().values())


def narrow(allowed: list[str] | None, requested: Iterable[str] | None) -> list[str] | None:
    """The user's scope narrowed to the cameras a request names (never widened)."""
    wanted = [c for c in (requested or []) if c]
    if not wanted:
        return allowed
    if allowed is None:
        return sorted(set(wanted))
    return sorted(set(wanted) & set(allowed))
