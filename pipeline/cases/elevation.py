"""Time-boxed elevated access: a user asks for more cameras or units for a while, with a reason; an admin (not the
user) approves it; it ends by itself at its expiry (or earlier when revoked). Every step is audited by the caller.

Records live with the users, ``auth/elevations/{user}/{id}.json``, so resolving a user's scope lists one small
prefix. A grant counts only while it is approved and ``now < expires_at``; nothing has to run for it to expire.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from pipeline.documents import DocumentRefused, read_document
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

VERSION = 1
PREFIX = "auth/elevations"
ELEVATION_ID = r"^[0-9a-f]{12}$"
UNIT = r"^[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}$"
CAMERA = r"^[A-Za-z0-9_.:-]{1,64}$"
Status = Literal["requested", "approved", "rejected", "revoked"]


class Elevation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = VERSION
    id: Annotated[str, StringConstraints(pattern=ELEVATION_ID)]
    user: str
    units: tuple[Annotated[str, StringConstraints(pattern=UNIT)], ...] = ()
    cameras: tuple[Annotated[str, StringConstraints(pattern=CAMERA)], ...] = ()
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    case: str | None = None
    hours: float = Field(gt=0, le=720)
    status: Status = "requested"
    requested_at: datetime
    decided_by: str = ""
    decided_at: datetime | None = None
    expires_at: datetime | None = None

    def active(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.status == "approved" and self.expires_at is not None and now < self.expires_at


_ELEVATION = TypeAdapter(Elevation)


class ElevationError(ValueError):
    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Elevations:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def key(user: str, elevation_id: str) -> str:
        return f"{PREFIX}/{user}/{elevation_id}.json"

    def _put(self, e: Elevation) -> Elevation:
        self.store.put(self.key(e.user, e.id), json.dumps(e.model_dump(mode="json")).encode(),
                       content_type="application/json")
        return e

    def get(self, user: str, elevation_id: str) -> Elevation | None:
        if not re.fullmatch(ELEVATION_ID, elevation_id or "") or not re.fullmatch(r"[a-z][a-z0-9_.-]{1,31}", user):
            return None
        try:
            return read_document(self.store.get(self.key(user, elevation_id), length=65537), _ELEVATION,
                                 max_bytes=65536, version=VERSION)
        except ObjectNotFound:
            return None
        except DocumentRefused as exc:
            log.warning("elevation %s/%s refused: %s", user, elevation_id, exc)
            return None

    def of(self, user: str) -> list[Elevation]:
        found = []
        for info in self.store.list(f"{PREFIX}/{user}/"):
            e = self.get(user, info.key.rsplit("/", 1)[-1].removesuffix(".json"))
            if e is not None:
                found.append(e)
        return sorted(found, key=lambda e: e.requested_at, reverse=True)

    def all(self) -> list[Elevation]:
        users = {info.key.split("/")[2] for info in self.store.list(f"{PREFIX}/") if info.key.count("/") == 3}
        return sorted((e for u in users for e in self.of(u)), key=lambda e: e.requested_at, reverse=True)

    def active(self, user: str) -> list[Elevation]:
        now = datetime.now(UTC)
        return [e for e in self.of(user) if e.active(now)]

    def request(self, user: str, *, units: list[str], cameras: list[str], reason: str, hours: float,
                case: str | None = None) -> Elevation:
        if not units and not cameras:
            msg = "name the units or cameras wanted"
            raise ElevationError(msg, 422)
        return self._put(Elevation(id=secrets.token_hex(6), user=user, units=tuple(units), cameras=tuple(cameras),
                                   reason=reason, hours=hours, case=case, requested_at=datetime.now(UTC)))

    def decide(self, user: str, elevation_id: str, status: Status, *, by: str, max_hours: float) -> Elevation:
        e = self.get(user, elevation_id)
        if e is None:
            msg = f"no elevation {elevation_id} of {user}"
            raise ElevationError(msg, 404)
        if status in ("approved", "rejected") and e.status != "requested":
            msg = f"elevation {elevation_id} is already {e.status}"
            raise ElevationError(msg)
        if status == "revoked" and e.status != "approved":
            msg = f"elevation {elevation_id} is {e.status}, not approved"
            raise ElevationError(msg)
        if by == user:
            msg = "an elevation is decided by another admin, never by the user who asked"
            raise ElevationError(msg, 403)
        now = datetime.now(UTC)
        expires = now + timedelta(hours=min(e.hours, max_hours)) if status == "approved" else e.expires_at
        if status == "revoked":
            expires = now
        return self._put(e.model_copy(update={"status": status, "decided_by": by, "decided_at": now,
                                              "expires_at": expires}))
