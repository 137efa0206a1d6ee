"""What investigators save into a case: hits, clips, synopsis moments, enhanced frames and notes.

One object per item, ``{prefix}/items/{number}/{item_id}.json``. An item names what it refers to (a plate read,
a track, a face, an alert, an export, a synopsis moment, an enhanced frame, or nothing for a note) with the
camera, the time (and end), the keys of its pictures and a short text, as the API resolved it from the
catalog when it was saved — never as the client described it. ``audit_id`` is the audit entry of the save
(``{writer}:{seq}``), so an evidence manifest can name it.

Removing an item marks its record removed (nothing saved as evidence is deleted). Items of an open case are on
legal hold (:mod:`pipeline.cases.retention` keeps what they reference).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from pipeline.documents import DocumentRefused, read_document
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

VERSION = 1
MAX_ITEM_BYTES = 256 * 1024
ItemKind = Literal["plate", "track", "face", "alert", "clip", "moment", "frame", "note"]
ITEM_ID = r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$"


class CaseItem(BaseModel):
    """One thing saved into a case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = VERSION
    item_id: Annotated[str, StringConstraints(pattern=ITEM_ID)]
    case: str
    kind: ItemKind
    ref: str = Field("", max_length=200, description="Sighting ID, alert ID, export ID, synopsis ID or frame key.")
    camera_id: str = ""
    time: datetime | None = None
    end: datetime | None = None
    track_id: str = ""
    text: str = Field("", max_length=200, description="Plate text, alert message, class and colour …")
    note: str = Field("", max_length=4000)
    crop_key: str = ""
    media_keys: tuple[str, ...] = ()
    sha256: str = ""
    lat: float | None = None
    lon: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    added_by: str
    added_at: datetime
    audit_id: str = ""
    removed_at: datetime | None = None
    removed_by: str = ""

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"version"})

    def haystack(self) -> str:
        """The text a case search matches against (lower case)."""
        parts = [self.kind, self.ref, self.camera_id, self.track_id, self.text, self.note,
                 str(self.details.get("camera_name", ""))]
        return " ".join(p for p in parts if p).lower()


_ITEM = TypeAdapter(CaseItem)


def new_item_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


class Workspace:
    """Items of cases in the object store."""

    def __init__(self, store: ObjectStore, prefix: str = "cases") -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def key(self, number: str, item_id: str) -> str:
        return f"{self.prefix}/items/{number}/{item_id}.json"

    def put(self, item: CaseItem) -> CaseItem:
        data = json.dumps(item.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
        self.store.put(self.key(item.case, item.item_id), data, content_type="application/json")
        return item

    def get(self, number: str, item_id: str) -> CaseItem | None:
        if not re.fullmatch(ITEM_ID, item_id or ""):
            return None
        try:
            data = self.store.get(self.key(number, item_id), length=MAX_ITEM_BYTES + 1)
            return read_document(data, _ITEM, max_bytes=MAX_ITEM_BYTES, version=VERSION)
        except ObjectNotFound:
            return None
        except DocumentRefused as exc:
            log.warning("case item %s/%s refused: %s", number, item_id, exc)
            return None

    def items(self, number: str, *, removed: bool = False) -> list[CaseItem]:
        """Every item of the case, in time order (items without a time last, by when they were added); removed
        items only with ``removed``."""
        found = []
        for info in self.store.list(f"{self.prefix}/items/{number}/"):
            item_id = info.key.rsplit("/", 1)[-1].removesuffix(".json")
            item = self.get(number, item_id)
            if item is not None and (removed or item.removed_at is None):
                found.append(item)
        return timeline(found)

    def remove(self, number: str, item_id: str, *, by: str) -> CaseItem | None:
        """Take an item out of the case. Its record stays (marked removed, who and when): nothing saved as
        evidence is deleted, and retention no longer holds what it referenced."""
        item = self.get(number, item_id)
        if item is None or item.removed_at is not None:
            return None
        return self.put(item.model_copy(update={"removed_at": datetime.now(UTC), "removed_by": by}))


def timeline(items: Iterable[CaseItem]) -> list[CaseItem]:
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(items, key=lambda i: (i.time or far, i.added_at, i.item_id))


def search_items(items: Iterable[CaseItem], query: str) -> list[CaseItem]:
    """Items whose kind, reference, camera, track, text or note contains every word of ``query``."""
    words = [w for w in query.lower().split() if w]
    return [i for i in items if all(w in i.haystack() for w in words)]
