"""``tubeline catalog``: the catalog's Delta tables (migrate Parquet segments, compact, retention, vacuum)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from workers.cli import load_config_or_exit

if TYPE_CHECKING:  # imported when a command runs, so that `tubeline --help` stays fast
    from pipeline.catalog.table import TableCatalog
    from pipeline.store.base import ObjectStore


def _tables(ctx: click.Context) -> tuple[ObjectStore, TableCatalog]:
    from pipeline.catalog.table import TableCatalog
    from pipeline.store import open_store

    config = load_config_or_exit(ctx)
    return open_store(config), TableCatalog(config.store, config.index)


@click.group("catalog")
def catalog() -> None:
    """The catalog as Delta Lake tables (docs/design/catalog.md)."""


@catalog.command("migrate")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (default: all).")
@click.pass_context
def migrate_cmd(ctx: click.Context, kinds: tuple[str, ...]) -> None:
    """Copy the Parquet segments into the tables, once per kind and date (safe to run again)."""
    from pipeline.catalog.migrate import migrate

    store, tables = _tables(ctx)
    report = migrate(store, tables, list(kinds) or None)  # type: ignore[arg-type]
    click.echo(f"migrated {report.rows} row(s) from {report.segments} segment(s) in {report.dates_done} "
               f"kind-date(s); {report.dates_skipped} already migrated")
    for kind, rows in sorted(report.per_kind.items()):
        click.echo(f"  {kind}: {rows}")


@catalog.command("compact")
@click.argument("kind")
@click.argument("dates", nargs=-1, required=True)
@click.pass_context
def compact_cmd(ctx: click.Context, kind: str, dates: tuple[str, ...]) -> None:
    """Rewrite the dates' partitions of KIND deduplicated and sorted (plates: then index them)."""
    from pipeline.catalog.plate_index import compact_and_index

    _, tables = _tables(ctx)
    click.echo(str(compact_and_index(tables, kind, dates)))


@catalog.command("vacuum")
@click.argument("kind")
@click.option("--retain-hours", default=168, show_default=True, type=click.IntRange(0, 100_000))
@click.pass_context
def vacuum_cmd(ctx: click.Context, kind: str, retain_hours: int) -> None:
    """Delete files of KIND that left the table more than --retain-hours ago."""
    _, tables = _tables(ctx)
    removed = tables.vacuum(kind, retain_hours)  # type: ignore[attr-defined]
    click.echo(f"removed {len(removed)} file(s)")


@catalog.command("maintain")
@click.option("--closed-after-hours", default=2.0, show_default=True, type=click.FloatRange(0, 24 * 30),
              help="A UTC day is compacted this long after it ended (late messages land first).")
@click.option("--vacuum-retain-hours", default=168, show_default=True, type=click.IntRange(0, 100_000),
              help="Files that left a table are deleted once this old.")
@click.option("--open-day-files", default=8, show_default=True, type=click.IntRange(0, 1_000_000),
              help="Index today's plate files so far once this many are not covered by an index (0: never).")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (default: all).")
@click.option("--every", "every_s", default=0.0, type=click.FloatRange(0, 7 * 86_400),
              help="Run again every this many seconds (a long-running container); 0: once (a cron job).")
@click.pass_context
def maintain_cmd(ctx: click.Context, closed_after_hours: float, vacuum_retain_hours: int, open_day_files: int,
                 kinds: tuple[str, ...], every_s: float) -> None:
    """Compact each closed day of every table once, index its plates, vacuum (pipeline.catalog.maintain).
    Exits 1 when a day failed (the next run retries it)."""
    import time

    from pipeline.catalog.maintain import maintain

    _, tables = _tables(ctx)
    while True:
        started = time.monotonic()
        report = maintain(tables, closed_after_hours=closed_after_hours, vacuum_retain_hours=vacuum_retain_hours,
                          open_day_files=open_day_files, kinds=list(kinds) or None, progress=click.echo)
        days = sum(len(v) for v in report.compacted.values())
        click.echo(f"compacted {days} day(s) ({report.rows_before} → {report.rows_after} rows), indexed "
                   f"{len(report.indexed)}, vacuumed {sum(report.vacuumed.values())} file(s), "
                   f"{len(report.failed)} failed, in {time.monotonic() - started:.1f} s")
        for what, why in sorted(report.failed.items()):
            click.echo(f"  failed: {what}: {why}", err=True)
        if not every_s:
            ctx.exit(0 if report.ok else 1)
        time.sleep(every_s)
