"""``tubeline stack``: the local Kafka-protocol broker and S3 server (see :mod:`pipeline.stack`)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

from pipeline.access import ADMIN, SERVICES
from workers.cli import load_config_or_exit

if TYPE_CHECKING:  # imported when a command runs, so that `tubeline --help` stays fast
    from pipeline.stack import LocalStack


def _stack(ctx: click.Context) -> LocalStack:
    from pipeline.stack import LocalStack

    return LocalStack.for_config(load_config_or_exit(ctx))


@click.group()
def stack() -> None:
    """Start, stop and inspect the local broker (Tansu) and S3 server (SeaweedFS)."""


@stack.command("up")
@click.pass_context
def up(ctx: click.Context) -> None:
    """Start both servers on loopback and wait until they answer."""
    from pipeline.stack import StackError

    s = _stack(ctx)
    try:
        statuses = s.up()
    except StackError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    for st in statuses:
        click.echo(st.describe())
    click.echo(f"state: {s.state}  (credentials in {s.credentials_file}; `tubeline stack env [--as KIND]` prints "
               "them as exports: admin by default, or one worker kind's own identity)")


@stack.command("down")
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop both servers (TERM, then KILL after a grace period)."""
    from pipeline.stack import StackError

    try:
        stopped = _stack(ctx).down()
    except StackError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@stack.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say what runs, where and since when. Exit code 1 unless both are healthy."""
    statuses = _stack(ctx).status()
    for st in statuses:
        click.echo(st.describe())
    if not all(st.healthy for st in statuses):
        raise SystemExit(1)


@stack.command("logs")
@click.argument("service", type=click.Choice(["s3", "kafka"]), required=False)
@click.option("-n", "--lines", default=50, show_default=True, help="Lines per service.")
@click.pass_context
def logs(ctx: click.Context, service: str | None, lines: int) -> None:
    """Print the last lines of a service's log (both by default)."""
    s = _stack(ctx)
    for name in [service] if service else ["s3", "kafka"]:
        click.echo(f"==> {s.log_file(name)} <==")
        click.echo(s.tail(name, lines))


@stack.command("env")
@click.option("--as", "as_", default="admin", show_default=True,
              type=click.Choice([ADMIN, *SERVICES]),
              help="Store identity: a worker kind (what `tubeline worker KIND` runs as) or admin (bucket owner: "
                   "the CLI's admin commands and the one-process `tubeline up`).")
@click.pass_context
def env(ctx: click.Context, as_: str) -> None:
    """Print shell exports that point tubeline commands at this stack: eval "$(tubeline stack env --as detect)".

    Each worker kind has its own S3 identity that may write only its own prefixes (`tubeline stack access`)."""
    for key, value in _stack(ctx).env(as_).items():
        click.echo(f"export {key}={shlex.quote(value)}")


@stack.command("access")
@click.option("--minio-policies", "minio_dir", type=click.Path(file_okay=False), default=None,
              help="Also write one MinIO policy per service into this folder (deploy/minio/policies).")
@click.option("--kafka-acls", is_flag=True, help="Print the kafka-acls.sh commands for each service's topics instead.")
@click.pass_context
def access(ctx: click.Context, minio_dir: str | None, kafka_acls: bool) -> None:
    """Print what each service's store identity may write, read and list (docs/security.md)."""
    import json
    from pathlib import Path

    from pipeline.access import access_matrix, describe, kafka_acl_commands, minio_policy

    config = load_config_or_exit(ctx)
    if kafka_acls:
        for line in kafka_acl_commands(topic_prefix=config.bus.topic_prefix):
            click.echo(line)
        return
    matrix = access_matrix(config)
    click.echo(f"bucket {config.store.s3.bucket}; patterns are key globs ('*' spans '/'); write = put "
               "(SeaweedFS has one Write action for put and delete: locally a writer may also delete)")
    for line in describe(matrix):
        click.echo(line)
    if minio_dir:
        folder = Path(minio_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            doc = minio_policy(matrix[name], config.store.s3.bucket)
            (folder / f"tubeline-{name}.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {len(SERVICES)} MinIO policies to {folder}")
