"""Scheduled upkeep of the catalog's Delta tables: compact each closed day once, index its plates, vacuum.

The indexer appends a few small files per flush all day. Once a UTC day has closed (plus a grace period for
late messages: ``closed_after_hours``), :func:`maintain` rewrites each of its partitions deduplicated and
sorted (:meth:`TableCatalog.compact`; plates: one text-sorted range partition, then its day index and the
vocabulary merge, :func:`pipeline.catalog.plate_index.compact_and_index`). A day already in that shape is left
alone, so a run is idempotent and a day is rewritten once, not every hour; a plates day that is compacted but
has no usable index (a crash between the two, or an index deleted to rebuild it) is only indexed. A plates day
still open (today) is indexed over its files so far once ``open_day_files`` of them are not covered, and the
vocabulary merged: an hourly run leaves at most an hour of appends to be scanned by a query (the rest of the
day's files are looked up through that index; its older indexes of the day drop out as the day is compacted). Files the
log no longer lists are vacuumed once they are older than ``vacuum_retain_hours`` (readers still planning on
an older version keep theirs meanwhile).

Two maintainers at once are safe: each compaction is one Delta commit that replaces the day's files, and the
loser of a race fails its commit (reported, retried by the next run). A row the indexer appends to a closed
day during its compaction lands in a new file after it: the day is compacted again on the next run.

Run by ``tubeline catalog maintain`` — hourly as a Kubernetes CronJob (``deploy/k8s``), or ``--every`` in a
long-running container (compose) — under the indexer's store identity (it alone may write ``tables/``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline.catalog.format import KINDS, PLATE_KIND
from pipeline.catalog.plate_index import PlateIndex, compact_and_index
from pipeline.catalog.table import RANGE_BUCKET, FileEntry, TableCatalog

log = logging.getLogger(__name__)


@dataclass
class MaintenanceReport:
    compacted: dict[str, list[str]] = field(default_factory=dict)
    """Per kind, the dates rewritten."""
    indexed: list[str] = field(default_factory=list)
    """Plates dates indexed without a rewrite (compacted with their index missing, or still open)."""
    vacuumed: dict[str, int] = field(default_factory=dict)
    """Per kind, files removed."""
    failed: dict[str, str] = field(default_factory=dict)
    """``kind/date`` (or ``kind`` for a vacuum) → why it failed; the next run tries again."""
    rows_before: int = 0
    rows_after: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def closed_dates(dates: Iterable[str], now: datetime, closed_after_hours: float) -> list[str]:
    """The dates whose UTC day ended at least ``closed_after_hours`` before ``now``."""
    cutoff = now.astimezone(UTC) - timedelta(hours=closed_after_hours)
    return sorted(d for d in set(dates)
                  if datetime.fromisoformat(d).replace(tzinfo=UTC) + timedelta(days=1) <= cutoff)


def needs_compaction(kind_name: str, files: list[FileEntry]) -> bool:
    """Whether a day's files are not yet in compacted shape: plates all in the range partition, every other
    kind one file per bucket."""
    if kind_name == PLATE_KIND.name:
        return any(f.bucket != RANGE_BUCKET for f in files)
    return any(n > 1 for n in Counter(f.bucket for f in files).values())


def maintain(tables: TableCatalog, *, now: datetime | None = None, closed_after_hours: float = 2.0,
             vacuum_retain_hours: int = 168, open_day_files: int = 8, kinds: Iterable[str] | None = None,
             progress: Callable[[str], None] | None = None) -> MaintenanceReport:
    """One round of upkeep over every kind's table (module docstring); never raises for one day's failure."""
    now = now or datetime.now(UTC)
    say = progress or log.info
    report = MaintenanceReport()
    for kind_name in kinds or [k.name for k in KINDS]:
        files = tables.files(kind_name)
        if not files:
            continue
        by_date: dict[str, list[FileEntry]] = {}
        for f in files:
            by_date.setdefault(f.date, []).append(f)
        closed = closed_dates(by_date, now, closed_after_hours)
        touched = False
        for date in closed:
            if not needs_compaction(kind_name, by_date[date]):
                continue
            say(f"{kind_name} {date}: compacting {len(by_date[date])} file(s)")
            try:
                stats = compact_and_index(tables, kind_name, [date])
            except Exception as exc:  # noqa: BLE001 - one day's failure (a lost race, the store) must not stop the rest
                report.failed[f"{kind_name}/{date}"] = f"{type(exc).__name__}: {exc}"
                log.warning("catalog maintenance: %s %s not compacted: %s", kind_name, date, exc)
                continue
            touched = True
            report.compacted.setdefault(kind_name, []).append(date)
            report.rows_before += stats["rows_before"]
            report.rows_after += stats["rows_after"]
            say(f"{kind_name} {date}: {stats['files_before']} → {stats['files_after']} file(s), "
                f"{stats['rows_before']} → {stats['rows_after']} row(s)")
        if kind_name == PLATE_KIND.name:
            _index_unindexed(tables, closed, report, say, open_day_files)
        if touched:
            try:
                removed = tables.vacuum(kind_name, vacuum_retain_hours)
            except Exception as exc:  # noqa: BLE001
                report.failed[kind_name] = f"vacuum: {type(exc).__name__}: {exc}"
                continue
            report.vacuumed[kind_name] = len(removed)
    return report


def _index_unindexed(tables: TableCatalog, closed: list[str], report: MaintenanceReport,
                     say: Callable[[str], None], open_day_files: int) -> None:
    """Index the closed plates days that are compacted but that no usable day index covers; index a day still
    open (today) over all its files so far once at least ``open_day_files`` of them are not covered (a query
    then scans only the appends since this run, not the whole day); bring the vocabulary up to date."""
    index = PlateIndex(tables)
    index.refresh()
    files = tables.files(PLATE_KIND.name)
    dates = sorted({f.date for f in files})
    for date in dates:
        day = [f for f in files if f.date == date]
        uncovered = index.cover(date, day)[1]
        if date in closed:
            if needs_compaction(PLATE_KIND.name, day) or not uncovered:
                continue  # compaction indexes it
            say(f"plates {date}: indexing {len(day)} compacted file(s)")
        else:
            if open_day_files <= 0 or len(uncovered) < open_day_files:
                continue
            say(f"plates {date} (open): indexing its {len(day)} file(s) so far, {len(uncovered)} not covered")
        try:
            index.build(date, day)
        except Exception as exc:  # noqa: BLE001
            report.failed[f"plates/{date}"] = f"index: {type(exc).__name__}: {exc}"
            continue
        report.indexed.append(date)
    if dates:
        index.build_vocab()  # also names day indexes a crash left out of it (nothing to do: no write)
