"""``tubeline stack``: the local Kafka-protocol broker and S3 server (see :mod:`pipeline.stack`)."""

from __future__ import annotations

import shlex

import click

from workers.cli import load_config_or_exit


def _stack(ctx: click.Context):  # noqa: ANN202
    from pipeline.stack import LocalStack

    return LocalStack(load_config_or_exit(ctx).stack)


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
    click.echo(f"state: {s.state}  (credentials in {s.credentials_file}; `tubeline stack env` prints them as exports)")


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
@click.pass_context
def env(ctx: click.Context) -> None:
    """Print shell exports that point tubeline commands at this stack: eval "$(tubeline stack env)"."""
    for key, value in _stack(ctx).env().items():
        click.echo(f"export {key}={shlex.quote(value)}")
