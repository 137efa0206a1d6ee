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
