"""``tubeline hotlists``: manage plate hotlists in the object store (list, show, add, import, rm, match).

Lists written here live at ``{hotlists.store_prefix}/{name}.json`` in the configured object store, where the
plate worker picks them up within ``hotlists.refresh_s``. Lists from ``hotlists.files`` are shown by
``list`` (source ``file``) but are edited in their files, not here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from workers.cli import load_config_or_exit

SEVERITIES = ("info", "low", "medium", "high", "critical")


def _open(ctx: click.Context) -> tuple[Any, Any]:
    """(HotlistRepository, HotlistBook) over the configured store and files."""
    from pipeline.hotlists import HotlistRepository
    from pipeline.store import open_store
    from workers.plate.hotlists import HotlistBook

    config = load_config_or_exit(ctx)
    section = config.hotlists
    store = open_store(config)
    return HotlistRepository(store, section.store_prefix), HotlistBook(section, store)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


@click.group("hotlists")
def hotlists() -> None:
    """Plate hotlists (stolen, wanted, ...): a hit raises a plate_hotlist alert."""


@hotlists.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per list instead of a table.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every hotlist the plate worker uses: name, source, plates, severity, owner, reason."""
    repo, book = _open(ctx)
    book.refresh(force=True)
    stored = set(repo.names())
    rows = []
    for name, hotlist in sorted(book.lists.items()):
        source = "store" if name in stored else "file"
        rows.append({"name": name, "source": source, "plates": len(hotlist.entries), "severity": hotlist.severity,
                     "owner": hotlist.owner, "reason": hotlist.reason})
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    click.echo(f"{'NAME':24} {'SOURCE':6} {'PLATES':>7} {'SEVERITY':9} {'OWNER':16} REASON")
    for r in rows:
        click.echo(f"{r['name']:24} {r['source']:6} {r['plates']:7d} {r['severity']:9} {r['owner'][:16]:16} {r['reason']}")


@hotlists.command("show")
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """The plates of one list, with their notes."""
    _, book = _open(ctx)
    book.refresh(force=True)
    hotlist = book.lists.get(name)
    if hotlist is None:
        _fail(f"no hotlist {name!r}")
    click.echo(f"{hotlist.name}: {hotlist.reason} (owner {hotlist.owner or '-'}, severity {hotlist.severity})")
    for entry in hotlist.entries:
        click.echo(f"  {entry.plate:16} {entry.note}")


@hotlists.command("add")
@click.argument("name")
@click.argument("plates", nargs=-1, required=True)
@click.option("--note", default="", help="Note stored with each added plate.")
@click.option("--reason", default=None, help="Reason of the list (set or change).")
@click.option("--owner", default=None, help="Owner of the list (set or change).")
@click.option("--severity", type=click.Choice(SEVERITIES), default=None, help="Severity of the list's alerts.")
@click.pass_context
def add(ctx: click.Context, name: str, plates: tuple[str, ...], note: str, reason: str | None, owner: str | None,
        severity: str | None) -> None:
    """Add PLATES to list NAME in the store (the list is created when missing)."""
    from pipeline.hotlists import Hotlist, HotlistEntry

    repo, _ = _open(ctx)
    try:
        current = repo.find(name) or Hotlist(name=name)
        new = [HotlistEntry(plate=p, note=note) for p in plates]
    except ValueError as exc:
        _fail(str(exc))
    known = {e.plate for e in current.entries}
    added = [e for e in new if e.plate not in known]
    meta = {k: v for k, v in (("reason", reason), ("owner", owner), ("severity", severity)) if v is not None}
    updated = Hotlist.model_validate({**current.model_dump(), **meta}).with_entries([*current.entries, *added])
    repo.put(updated)
    click.echo(f"{name}: added {len(added)} plate(s), {len(new) - len(added)} already listed; "
               f"{len(updated.entries)} in total")


@hotlists.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Store the file's (single) list under this name.")
@click.option("--replace", is_flag=True, help="Replace existing lists of the same name instead of merging.")
@click.pass_context
def import_(ctx: click.Context, path: Path, name: str | None, replace: bool) -> None:
    """Import the hotlists of a YAML, CSV or JSON file into the store (format: docs/enrich.md)."""
    from pipeline.hotlists import HotlistError, load_file

    repo, _ = _open(ctx)
    try:
        lists = load_file(path)
    except HotlistError as exc:
        _fail(str(exc))
    if name is not None:
        if len(lists) != 1:
            _fail(f"--name needs a file with one list; {path} has {len(lists)}")
        lists = [lists[0].model_copy(update={"name": name})]
    for hotlist in lists:
        current = None if replace else repo.find(hotlist.name)
        if current is not None:
            known = {e.plate for e in current.entries}
            merged = [*current.entries, *(e for e in hotlist.entries if e.plate not in known)]
            hotlist = hotlist.with_entries(merged)
        repo.put(hotlist)
        click.echo(f"{hotlist.name}: {len(hotlist.entries)} plate(s)")


@hotlists.command("rm")
@click.argument("name")
@click.argument("plates", nargs=-1)
@click.pass_context
def rm(ctx: click.Context, name: str, plates: tuple[str, ...]) -> None:
    """Remove PLATES from list NAME, or the whole list when no plate is given."""
    from schemas.plates import plate_text

    repo, _ = _open(ctx)
    current = repo.find(name)
    if current is None:
        _fail(f"no hotlist {name!r} in the store")
    if not plates:
        repo.delete(name)
        click.echo(f"{name}: removed")
        return
    try:
        gone = {plate_text(p) for p in plates}
    except ValueError as exc:
        _fail(str(exc))
    kept = [e for e in current.entries if e.plate not in gone]
    repo.put(current.with_entries(kept))
    click.echo(f"{name}: removed {len(current.entries) - len(kept)} plate(s), {len(kept)} left")


@hotlists.command("match")
@click.argument("plate")
@click.pass_context
def match(ctx: click.Context, plate: str) -> None:
    """Which entries a read PLATE would hit (exact, OCR confusion or one edit), cheapest first."""
    from schemas.plates import plate_text

    _, book = _open(ctx)
    book.refresh(force=True)
    try:
        text = plate_text(plate)
    except ValueError as exc:
        _fail(str(exc))
    hits = book.match(text)
    if not hits:
        click.echo(f"{text}: no match")
        raise SystemExit(1)
    for hotlist, entry, found in hits:
        click.echo(f"{text}: {hotlist.name} {entry.plate} {found.kind} cost {found.cost:.2f} {entry.note}")
