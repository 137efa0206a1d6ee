"""``tubeline retention plan|run``: what retention would delete (a dry run) and deleting it, with legal hold.

``plan`` prints one line per batch (kind, camera, cutoff, rows, objects) and changes nothing. ``run`` deletes the
same, each batch announced first in the audit log (``retention.delete``, user ``retention``, its own chain);
without ``--yes`` it asks first. Anything saved in an open case is kept (:mod:`pipeline.cases.retention`).
"""

from __future__ import annotations

import getpass
import json
import socket
from typing import Any

import click

from workers.cli import load_config_or_exit


def _sweeper(ctx: click.Context) -> tuple[Any, Any]:
    from pipeline.cameras.registry import CameraRegistry
    from pipeline.cases.records import CaseRegister
    from pipeline.cases.retention import Sweeper
    from pipeline.cases.rows import ParquetRows
    from pipeline.cases.workspace import Workspace
    from pipeline.store import open_store

    config = load_config_or_exit(ctx)
    if config.index.catalog_format != "parquet":
        # rows are deleted behind pipeline.cases.rows.CatalogRows, implemented for the Parquet catalog only: a sweep
        # here would leave the table format's rows (and what search finds) in place while reporting them gone
        msg = (f"retention deletes catalog rows of the Parquet catalog only; index.catalog_format is "
               f"{config.index.catalog_format!r} (no CatalogRows implementation for it yet)")
        raise click.ClickException(msg)
    store = open_store(config)
    cameras = {c.id: c for c in config.cameras.static}
    cameras.update({c.id: c for c in CameraRegistry(store, config.cameras.registry_prefix).list()})
    sweeper = Sweeper(store, config.cases, ParquetRows(store, config.index), cameras=cameras,
                      register=CaseRegister(store, config.cases.prefix), workspace=Workspace(store, config.cases.prefix),
                      recordings_prefix=config.ingest.recordings.prefix, synopsis_prefix=config.synopsis.prefix)
    return store, sweeper


@click.group("retention")
def retention() -> None:
    """Retention by kind and unit, with legal hold for anything in an open case."""


def _print(batches: list[Any], as_json: bool) -> None:
    for batch in batches:
        if as_json:
            click.echo(json.dumps(batch.describe(), ensure_ascii=False))
        else:
            click.echo(f"{batch.kind:11} {batch.camera_id or '-':24} before {batch.cutoff:%Y-%m-%dT%H:%M:%SZ}  "
                       f"{len(batch.rows):7} row(s) {len(batch.keys):7} object(s)")
    if not as_json:
        click.echo(f"{sum(b.count for b in batches)} to delete in {len(batches)} batch(es)")


@retention.command("plan")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per batch (with IDs and keys).")
@click.pass_context
def plan(ctx: click.Context, as_json: bool) -> None:
    """What a run would delete now (nothing is changed)."""
    _, sweeper = _sweeper(ctx)
    _print(sweeper.plan(), as_json)


@retention.command("run")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_context
def run(ctx: click.Context, yes: bool) -> None:
    """Delete what retention says is due, in audited batches."""
    from workers.api.audit import AuditLog

    store, sweeper = _sweeper(ctx)
    batches = sweeper.plan()
    _print(batches, False)
    if not batches or (not yes and not click.confirm("delete these?", default=False)):
        return
    audit = AuditLog(store)
    client = f"cli:{getpass.getuser()}@{socket.gethostname()}"

    def record(event: dict[str, Any]) -> None:
        audit.append({"user": "retention", "role": None, "via": "cli", "client": client, "outcome": "ok",
                      "status": 200, "reason": "retention", "case": None, "result_count": None, "result_ids": [],
                      "exported_keys": [], **event})

    try:
        done = sweeper.run(record, batches)
    finally:
        audit.close()
    click.echo("deleted: " + ", ".join(f"{kind} {count}" for kind, count in sorted(done.items())))
