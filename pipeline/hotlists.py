"""Plate hotlists, the shared domain: the list format, reading lists from files, and the store-side repository.

A hotlist has a ``name`` (letters, digits, ``_.:-``; it names the alert rule ``hotlist:{name}``), a
``reason``, an ``owner``, a ``severity`` for its alerts, and entries (normalised plate text, a note and an
optional expiry after which the entry no longer matches). Lists saved through the API also carry ``version``
and ``updated_by``.

* **files** (``hotlists.files``): YAML (one list as a mapping, or ``lists: [...]``; entries as strings or
  ``{plate, note, expires_at}``), CSV (header row; columns ``plate`` and optionally ``note``, ``expires``,
  ``list``, ``reason``, ``owner``, ``severity``; without a ``list`` column the file's stem names the list) or JSON;
* the **object store**: ``{hotlists.store_prefix}/{name}.json``, one list per object
  (:class:`HotlistRepository`), written by ``tubeline hotlists`` and the API's admin routes.

Plates are normalised by the one shared rule, :func:`schemas.plates.plate_text`. The plate worker merges and
matches these lists (:mod:`workers.plate.hotlists`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.rulesdoc import VersionConflict
from pipeline.store.base import ObjectNotFound, ObjectStore, join_key
from schemas.plates import plate_text

LIST_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
Severity = Literal["info", "low", "medium", "high", "critical"]


class HotlistError(ValueError):
    """A hotlist file or object is malformed."""


def normalise_plate(text: str) -> str:
    """The shared plate normaliser (:func:`schemas.plates.plate_text`); ValueError if it is not plate text."""
    return plate_text(str(text).strip())


class HotlistEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plate: str = Field(title="Plate", description="Normalised plate text.")
    note: str = Field("", title="Note", description="Why this plate is listed (case number, ...).", max_length=500)
    expires_at: datetime | None = Field(None, title="Expires",
                                        description="UTC time after which the entry no longer matches (none: never).")

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            msg = "expires_at needs a time zone (e.g. 2027-01-31T00:00:00Z)"
            raise ValueError(msg)
        return None if value is None else value.astimezone(UTC)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @field_validator("plate", mode="before")
    @classmethod
    def _normalised(cls, value: object) -> str:
        return normalise_plate(str(value))


class Hotlist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(title="Name", description="Unique list name; the alert rule is hotlist:{name}.",
                      pattern=LIST_NAME_PATTERN)
    reason: str = Field("", title="Reason", description="Why plates are on this list.", max_length=500)
    owner: str = Field("", title="Owner", description="Who maintains the list.", max_length=200)
    severity: Severity = Field("high", title="Severity", description="Severity of this list's alerts.")
    entries: tuple[HotlistEntry, ...] = Field((), title="Entries", description="Listed plates.", max_length=5_000_000)
    updated_at: datetime | None = Field(None, title="Updated", description="UTC time of the last change.")
    updated_by: str = Field("", title="Updated by", description="Who saved the last change (CLI: empty).",
                            max_length=64)
    version: int = Field(0, ge=0, title="Version",
                         description="Counts the saves through the API (the edit check); 0 before the first.")

    @field_validator("entries", mode="before")
    @classmethod
    def _plain_plates(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return [_entry(item) if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _unique_plates(self) -> Hotlist:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.plate in seen:
                msg = f"hotlist {self.name!r}: plate {entry.plate} is listed twice"
                raise ValueError(msg)
            seen.add(entry.plate)
        return self

    def rule_id(self) -> str:
        return f"hotlist:{self.name}"

    def with_entries(self, entries: Sequence[HotlistEntry]) -> Hotlist:
        return self.model_copy(update={"entries": tuple(entries), "updated_at": datetime.now(UTC)})


# -- files -------------------------------------------------------------------------------------------
def _entry(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    return {"plate": str(item)}


def _from_mapping(data: Mapping[str, Any]) -> Hotlist:
    fields = dict(data)
    fields["entries"] = [_entry(e) for e in fields.get("entries") or []]
    if "name" in fields and not isinstance(fields["name"], str):
        fields["name"] = str(fields["name"])
    return Hotlist.model_validate(fields)


def parse_yaml(text: str) -> list[Hotlist]:
    data = yaml.safe_load(text)
    if isinstance(data, Mapping) and "lists" in data:
        data = data["lists"]
    if isinstance(data, Mapping):
        return [_from_mapping(data)]
    if isinstance(data, list) and all(isinstance(item, Mapping) for item in data):
        return [_from_mapping(item) for item in data]
    msg = "a hotlist YAML file holds one list (a mapping with name and entries) or `lists: [...]`"
    raise HotlistError(msg)


def parse_csv(text: str, default_name: str) -> list[Hotlist]:
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower() for c in reader.fieldnames or []}
    if "plate" not in columns:
        msg = "a hotlist CSV file needs a header row with a 'plate' column"
        raise HotlistError(msg)
    lists: dict[str, dict[str, Any]] = {}
    for row in reader:
        row = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        if not row.get("plate"):
            continue
        name = row.get("list") or default_name
        meta = lists.setdefault(name, {"name": name, "entries": []})
        for key in ("reason", "owner", "severity"):
            if row.get(key) and key not in meta:
                meta[key] = row[key]
        entry = {"plate": row["plate"], "note": row.get("note", "")}
        if row.get("expires"):
            entry["expires_at"] = row["expires"]
        meta["entries"].append(entry)
    return [Hotlist.model_validate(meta) for meta in lists.values()]


def list_name_from_path(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.:-]+", "-", path.stem).strip("-")
    return name[:64] or "hotlist"


def load_file(path: Path) -> list[Hotlist]:
    """The hotlists in a YAML, CSV or JSON file; raises HotlistError with the file name on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
        suffix = Path(path).suffix.lower()
        if suffix in (".yaml", ".yml"):
            return parse_yaml(text)
        if suffix == ".csv":
            return parse_csv(text, list_name_from_path(Path(path)))
        if suffix == ".json":
            return [Hotlist.model_validate_json(text)]
    except (OSError, yaml.YAMLError, ValidationError, ValueError) as exc:
        msg = f"{path}: {exc}"
        raise HotlistError(msg) from None
    msg = f"{path}: unknown hotlist format (use .yaml, .yml, .csv or .json)"
    raise HotlistError(msg)


# -- object store ------------------------------------------------------------------------------------
class HotlistRepository:
    """Hotlists in the object store, one JSON object per list at ``{prefix}/{name}.json``."""

    def __init__(self, store: ObjectStore, prefix: str = "hotlists") -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def key(self, name: str) -> str:
        if not re.fullmatch(LIST_NAME_PATTERN, name):
            msg = f"invalid hotlist name {name!r}: use 1-64 letters, digits and _.:-"
            raise ValueError(msg)
        return join_key(self.prefix, f"{name}.json")

    def fingerprint(self) -> tuple[tuple[str, str, int], ...]:
        return tuple((i.key, i.etag, i.size) for i in self.store.list(self.prefix + "/") if i.key.endswith(".json"))

    def names(self) -> list[str]:
        return [key.rsplit("/", 1)[-1][: -len(".json")] for key, _, _ in self.fingerprint()]

    def get(self, name: str) -> Hotlist:
        try:
            return Hotlist.model_validate_json(self.store.get(self.key(name)))
        except ValidationError as exc:
            msg = f"store object {self.key(name)}: {exc}"
            raise HotlistError(msg) from None

    def find(self, name: str) -> Hotlist | None:
        try:
            return self.get(name)
        except ObjectNotFound:
            return None

    def put(self, hotlist: Hotlist) -> None:
        if hotlist.updated_at is None:
            hotlist = hotlist.model_copy(update={"updated_at": datetime.now(UTC)})
        self.store.put(self.key(hotlist.name), hotlist.model_dump_json(indent=1).encode("utf-8"),
                       content_type="application/json")

    def save(self, hotlist: Hotlist, *, user: str, expect_version: int | None) -> Hotlist:
        """Store ``hotlist`` as the next version; VersionConflict when the stored list is no longer at
        ``expect_version`` (0: the list must not exist yet; None: no check)."""
        current = self.find(hotlist.name)
        have = current.version if current is not None else 0
        exists = current is not None
        if expect_version is not None and (expect_version != have or (expect_version == 0 and exists)):
            state = f"version {have}" if exists else "no such list"
            msg = f"hotlist {hotlist.name!r} changed since you opened it ({state}, you edited {expect_version}); reload"
            raise VersionConflict(msg)
        saved = hotlist.model_copy(update={"version": have + 1, "updated_by": user, "updated_at": datetime.now(UTC)})
        self.put(saved)
        return saved

    def delete(self, name: str) -> bool:
        if not self.store.exists(self.key(name)):
            return False
        self.store.delete(self.key(name))
        return True
