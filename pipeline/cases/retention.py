"""Retention and legal hold: what is older than its kind's retention goes, unless an open case holds it.

Per kind (``cases.retention``, overridden per unit by ``cases.retention_units``; a camera's unit from the registry
or its GB/T 28181 ID):

=========== ====================================================================================================
faces       face rows of the catalog (by capture time), their aligned chips (``faces/``) and their vectors in the
            FAISS shards (rebuilt without them)
crops       object crops (``crops/{camera}/{date}/``) by date
plates      plate-read rows and their plate crops (``plates/``)
tracks      track rows (by start)
alerts      alert rows
recordings  recording segments (by end) and their entries in the day's index
synopses    built synopses (video, index, status) by when they were written
exports     clip exports and evidence packages by when they were made
audit       reported only: deleting audit chains would break the verification the log exists for
=========== ====================================================================================================

**Legal hold.** Everything an item of an *open* case refers to is kept whatever its age: the face, plate read,
track or alert, every row of the same track, its crop and media, the recording around it (its clip range, or
``hold_pad_s`` either side), the export. Closing a case releases the hold.

:meth:`Sweeper.plan` lists what would go (``tubeline retention plan``); :meth:`Sweeper.run` deletes it in batches
of ``cases.retention_batch``, each batch announced in the audit log before it is carried out (the ``audit`` sink)
with its kind, camera, cutoff and keys or IDs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.cameras.units import camera_unit, unit_covers
from pipeline.cases.records import CaseRegister
from pipeline.cases.rows import CatalogRows, DoomedRow
from pipeline.cases.workspace import CaseItem, Workspace
from pipeline.config.cases import CasesConfig, RetentionDays
from pipeline.config.ingest import CameraSpec
from pipeline.recordings import load_index, save_index
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

AuditSink = Callable[[dict[str, Any]], object]
_DATED = re.compile(r"^[^/]+/(?P<camera>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/")
_STAMPED = re.compile(r"(?P<stamp>\d{8}T\d{6})-[0-9a-f]{12}\.")


@dataclass
class Holds:
    """What open cases keep."""

    ids: set[str] = field(default_factory=set)
    tracks: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    ranges: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    exports: set[str] = field(default_factory=set)

    def row_held(self, row: Mapping[str, Any]) -> bool:
        return any(str(row.get(c, "")) in self.ids for c in ("face_id", "read_id", "alert_id")) or (
            str(row.get("track_id") or "") in self.tracks)

    def recording_held(self, camera_id: str, start: datetime, end: datetime) -> bool:
        return any(c == camera_id and s < end and e > start for c, s, e in self.ranges)


def collect_holds(register: CaseRegister, workspace: Workspace, pad_s: float = 10.0) -> Holds:
    holds = Holds()
    pad = timedelta(seconds=pad_s)
    for case in register.list():
        if case.is_open:
            for item in workspace.items(case.number):
                _hold(holds, item, pad)
    return holds


def _hold(holds: Holds, item: CaseItem, pad: timedelta) -> None:
    if item.ref:
        holds.ids.add(item.ref.split("/", 1)[0] if item.kind == "track" else item.ref)
    if item.track_id:
        holds.tracks.add(item.track_id)
    holds.keys.update(k for k in (item.crop_key, *item.media_keys, *item.details.get("keys", {}).values()) if k)
    if item.kind == "clip":
        holds.exports.add(item.ref)
    if item.camera_id and item.time is not None:
        start = _time(item.details.get("clip_start")) or item.time - pad
        end = _time(item.details.get("clip_end")) or (item.end or item.time) + pad
        holds.ranges.append((item.camera_id, start, end))


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


@dataclass
class Batch:
    kind: str
    camera_id: str
    cutoff: datetime
    rows: list[DoomedRow] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    segments: list[tuple[str, str]] = field(default_factory=list)
    """Recordings: (day index key, segment key) pairs."""

    @property
    def count(self) -> int:
        return len(self.rows) + len(self.keys)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "camera_id": self.camera_id, "cutoff": self.cutoff.isoformat(),
                "rows": len(self.rows), "objects": len(self.keys),
                "ids": [r.ident for r in self.rows][:500], "keys": self.keys[:500]}


class Sweeper:
    """Plans and carries out deletions by retention, with legal hold."""

    def __init__(self, store: ObjectStore, settings: CasesConfig, rows: CatalogRows, *,
                 cameras: Mapping[str, CameraSpec], register: CaseRegister, workspace: Workspace,
                 recordings_prefix: str = "recordings", synopsis_prefix: str = "synopsis",
                 exports_prefix: str = "exports", now: datetime | None = None) -> None:
        self.store = store
        self.settings = settings
        self.rows = rows
        self.cameras = cameras
        self.register = register
        self.workspace = workspace
        self.prefixes = {"recordings": recordings_prefix, "synopses": synopsis_prefix, "exports": exports_prefix}
        self.now = now or datetime.now(UTC)

    def days(self, camera_id: str) -> RetentionDays:
        spec = self.cameras.get(camera_id)
        unit = camera_unit(spec.admin_unit if spec else "", camera_id, spec.gb_device_id if spec else None)
        for override in self.settings.retention_units:
            if unit and unit_covers(override.unit, unit):
                return override.days
        return self.settings.retention

    def cutoff(self, kind: str, camera_id: str) -> datetime | None:
        days = getattr(self.days(camera_id), kind)
        return self.now - timedelta(days=days) if days else None

    def _loosest(self, kind: str) -> datetime | None:
        """The latest cutoff over every unit (only rows before it can go anywhere)."""
        all_days = [getattr(self.settings.retention, kind)] + [getattr(o.days, kind)
                                                               for o in self.settings.retention_units]
        kept = [d for d in all_days if d]
        return self.now - timedelta(days=min(kept)) if kept else None

    # -- planning -------------------------------------------------------------------------------
    def plan(self) -> list[Batch]:
        holds = collect_holds(self.register, self.workspace)
        batches: list[Batch] = []
        for kind in ("faces", "plates", "tracks", "alerts"):
            batches += self._row_batches(kind, holds)
        batches += self._dated_objects("crops", "crops", holds)
        batches += self._recordings(holds)
        batches += self._written_objects("synopses", holds)
        batches += self._written_objects("exports", holds)
        return [b for b in batches if b.count]

    def _row_batches(self, kind: str, holds: Holds) -> list[Batch]:
        loosest = self._loosest(kind)
        if loosest is None:
            return []

        def matches(row: dict[str, Any]) -> bool:
            cut = self.cutoff(kind, row["camera_id"])
            t = row[{"tracks": "started_at", "alerts": "occurred_at"}.get(kind, "captured_at")]
            return cut is not None and t < cut and not holds.row_held(row)

        by_camera: dict[str, Batch] = {}
        for row in self.rows.doomed(kind, loosest, matches):
            batch = by_camera.setdefault(row.camera_id, Batch(kind, row.camera_id, self.cutoff(kind, row.camera_id)
                                                              or loosest))
            batch.rows.append(row)
            if row.media_key and row.media_key not in holds.keys and kind in ("faces", "plates", "tracks"):
                batch.keys.append(row.media_key)
        return list(by_camera.values())

    def _dated_objects(self, kind: str, prefix: str, holds: Holds) -> list[Batch]:
        by_camera: dict[str, Batch] = {}
        for info in self.store.list(f"{prefix}/"):
            m = _DATED.match(info.key)
            parts = info.key.split("/")
            if m is None or info.key in holds.keys or (len(parts) > 4 and parts[3] in holds.tracks):
                continue
            cut = self.cutoff(kind, m["camera"])
            day_end = datetime.fromisoformat(m["date"]).replace(tzinfo=UTC) + timedelta(days=1)
            if cut is not None and day_end <= cut:
                by_camera.setdefault(m["camera"], Batch(kind, m["camera"], cut)).keys.append(info.key)
        return list(by_camera.values())

    def _recordings(self, holds: Holds) -> list[Batch]:
        prefix = self.prefixes["recordings"]
        days: set[tuple[str, str]] = set()
        for info in self.store.list(f"{prefix}/"):
            m = _DATED.match(info.key)
            if m is not None:
                days.add((m["camera"], m["date"]))
        batches = []
        for camera, day in sorted(days):
            cut = self.cutoff("recordings", camera)
            if cut is None or datetime.fromisoformat(day).replace(tzinfo=UTC) >= cut:
                continue
            batch = Batch("recordings", camera, cut)
            for entry in load_index(self.store, prefix, camera, day):
                if entry.end_dt <= cut and not holds.recording_held(camera, entry.start_dt, entry.end_dt):
                    batch.keys.append(entry.key)
                    batch.segments.append((day, entry.key))
            batches.append(batch)
        return batches

    def _written_objects(self, kind: str, holds: Holds) -> list[Batch]:
        """Synopses and exports by when they were written (exports: the time in their ID)."""
        cut = self._loosest(kind)
        if cut is None:
            return []
        batch = Batch(kind, "", cut)
        prefix = self.prefixes[kind]
        for info in self.store.list(f"{prefix}/"):
            stamp = _STAMPED.search(info.key)
            when = datetime.strptime(stamp["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC) if stamp else \
                info.last_modified
            export_id = info.key.rsplit("/", 1)[-1].split(".", 1)[0]
            held = info.key in holds.keys or export_id in holds.exports
            if when is not None and when < cut and not held:
                batch.keys.append(info.key)
        return [batch]

    # -- deleting -------------------------------------------------------------------------------
    def run(self, audit: AuditSink, batches: Iterable[Batch] | None = None) -> dict[str, int]:
        """Delete what :meth:`plan` found, batch by batch, each announced to ``audit`` first."""
        done: dict[str, int] = {}
        size = self.settings.retention_batch
        for batch in batches if batches is not None else self.plan():
            for part in _split(batch, size):
                audit({"action": "retention.delete", "params": part.describe()})
                if part.rows:
                    self.rows.delete(part.rows)
                self._delete_objects(part)
                done[part.kind] = done.get(part.kind, 0) + part.count
        return done

    def _delete_objects(self, batch: Batch) -> None:
        for key in batch.keys:
            try:
                self.store.delete(key)
            except ObjectNotFound:
                pass
        if batch.kind == "recordings":
            prefix = self.prefixes["recordings"]
            for day in sorted({d for d, _ in batch.segments}):
                gone = {k for d, k in batch.segments if d == day}
                kept = [e for e in load_index(self.store, prefix, batch.camera_id, day) if e.key not in gone]
                save_index(self.store, prefix, batch.camera_id, day, kept)


def _split(batch: Batch, size: int) -> Iterable[Batch]:
    for i in range(0, len(batch.rows), size):
        yield Batch(batch.kind, batch.camera_id, batch.cutoff, rows=batch.rows[i:i + size])
    for i in range(0, len(batch.keys), size):
        keys = batch.keys[i:i + size]
        chosen = set(keys)
        yield Batch(batch.kind, batch.camera_id, batch.cutoff, keys=keys,
                    segments=[s for s in batch.segments if s[1] in chosen])
