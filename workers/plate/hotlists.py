"""Plate hotlists: user-defined lists of plates (stolen, wanted, expired ...) with a reason and an owner.

A hotlist has a ``name`` (letters, digits, ``_.:-``; it names the alert rule ``hotlist:{name}``), a
``reason``, an ``owner``, a ``severity`` for its alerts, and entries (normalised plate text + a note).

Sources, merged by :class:`HotlistBook`:

* **files** named in ``hotlists.files``: YAML (one list as a mapping, or ``lists: [...]``; entries as
  strings or ``{plate, note}``) or CSV (header row; columns ``plate`` and optionally ``note``, ``list``,
  ``reason``, ``owner``, ``severity``; without a ``list`` column the file's stem names the list);
* the **object store**: ``{hotlists.store_prefix}/{name}.json``, one list per object, written by
  ``tubeline hotlists add|import|rm`` (and later by the API). On equal names the store wins.

The book re-reads its sources every ``hotlists.refresh_s`` and rebuilds the match index only when a file's
size/mtime or an object's etag changed; a source that fails to load keeps its last good version.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config.enrich import HotlistsConfig
from pipeline.lookalikes import LookAlikes
from pipeline.store.base import ObjectNotFound, ObjectStore, join_key
from schemas.plates import plate_text
from workers.plate.matching import Candidate, Match, PlateIndex

log = logging.getLogger(__name__)

LIST_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
Severity = Literal["info", "low", "medium", "high", "critical"]


class HotlistError(ValueError):
    """A hotlist file or object is malformed."""


class HotlistEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plate: str = Field(title="Plate", description="Normalised plate text.")
    note: str = Field("", title="Note", description="Why this plate is listed (case number, ...).", max_length=500)

    @field_validator("plate", mode="before")
    @classmethod
    def _normalised(cls, value: object) -> str:
        return plate_text(str(value))


class Hotlist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(title="Name", description="Unique list name; the alert rule is hotlist:{name}.",
                      pattern=LIST_NAME_PATTERN)
    reason: str = Field("", title="Reason", description="Why plates are on this list.", max_length=500)
    owner: str = Field("", title="Owner", description="Who maintains the list.", max_length=200)
    severity: Severity = Field("high", title="Severity", description="Severity of this list's alerts.")
    entries: tuple[HotlistEntry, ...] = Field((), title="Entries", description="Listed plates.", max_length=5_000_000)
    updated_at: datetime | None = Field(None, title="Updated", description="UTC time of the last change.")

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
        meta["entries"].append({"plate": row["plate"], "note": row.get("note", "")})
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

    def delete(self, name: str) -> bool:
        if not self.store.exists(self.key(name)):
            return False
        self.store.delete(self.key(name))
        return True


# -- the merged book ---------------------------------------------------------------------------------
class HotlistBook:
    """Every hotlist from files and the store, with a match index; ``refresh()`` reloads what changed."""

    def __init__(self, config: HotlistsConfig, store: ObjectStore | None = None,
                 extra: Iterable[Hotlist] = ()) -> None:
        self.config = config
        self.repository = HotlistRepository(store, config.store_prefix) if store is not None else None
        self.table = (LookAlikes.shipped(config.confusions, config.confusion_cost) if config.measured_costs
                      else LookAlikes(config.confusions, config.confusion_cost))
        self.extra = tuple(extra)
        self.lists: dict[str, Hotlist] = {}
        self.index = PlateIndex([], self.table, config.max_cost)
        self._files: dict[Path, tuple[tuple[float, int], list[Hotlist]]] = {}
        self._stored: tuple[tuple[tuple[str, str, int], ...], list[Hotlist]] = ((), [])
        self._next_refresh = 0.0

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read changed sources when due (or ``force``); True when the index was rebuilt."""
        now = time.monotonic()
        if not force and now < self._next_refresh:
            return False
        self._next_refresh = now + self.config.refresh_s
        changed = self._refresh_files() | self._refresh_store()
        if changed or force:
            self._rebuild()
        return changed

    def _refresh_files(self) -> bool:
        changed = False
        for path in self.config.files:
            try:
                stat = Path(path).stat()
                mark = (stat.st_mtime, stat.st_size)
            except OSError as exc:
                log.warning("hotlists: cannot read %s (%s); keeping its last loaded version", path, exc)
                continue
            if path in self._files and self._files[path][0] == mark:
                continue
            try:
                self._files[path] = (mark, load_file(path))
                changed = True
            except HotlistError as exc:
                log.warning("hotlists: %s; keeping the last loaded version", exc)
        return changed

    def _refresh_store(self) -> bool:
        if self.repository is None:
            return False
        try:
            mark = self.repository.fingerprint()
        except Exception as exc:  # the store may be briefly unreachable; matching goes on with what we have
            log.warning("hotlists: cannot list the store (%s); keeping the loaded lists", exc)
            return False
        if mark == self._stored[0]:
            return False
        loaded = []
        for name in self.repository.names():
            try:
                loaded.append(self.repository.get(name))
            except (HotlistError, ObjectNotFound) as exc:
                log.warning("hotlists: skipping %s: %s", name, exc)
        self._stored = (mark, loaded)
        return True

    def _rebuild(self) -> None:
        lists: dict[str, Hotlist] = {h.name: h for h in self.extra}
        for _, loaded in self._files.values():
            for hotlist in loaded:
                if hotlist.name in lists:
                    log.warning("hotlists: list %r is defined twice in files; the last one wins", hotlist.name)
                lists[hotlist.name] = hotlist
        for hotlist in self._stored[1]:
            lists[hotlist.name] = hotlist  # the store (managed by CLI/API) wins over files
        candidates = [Candidate(h.name, e.plate, e) for h in lists.values() for e in h.entries]
        self.lists = lists
        self.index = PlateIndex(candidates, self.table, self.config.max_cost)
        log.info("hotlists: %d list(s), %d plate(s)", len(lists), len(candidates))

    def match(self, plate: str) -> list[tuple[Hotlist, HotlistEntry, Match]]:
        """The best entry of every list that ``plate`` matches, cheapest first."""
        out = []
        for found in self.index.match(plate):
            hotlist = self.lists[found.candidate.list_name]
            entry = found.candidate.payload
            assert isinstance(entry, HotlistEntry)
            out.append((hotlist, entry, found))
        return out

