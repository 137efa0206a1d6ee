"""``tubeline alerts tail``: print alerts live for an operator."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from typing import get_args

import click

from schemas.alerts import Alert, AlertType
from workers.cli import load_config_or_exit

ALERT_TYPES: tuple[str, ...] = get_args(AlertType)


@click.group("alerts")
def alerts() -> None:
    """Alerts raised by the rules, plate and ingest workers (topic tubeline.alerts.v1)."""


@alerts.command("tail")
@click.option("--camera", "cameras", multiple=True, metavar="ID", help="Only this camera (repeatable).")
@click.option(
    "--type", "types", multiple=True, type=click.Choice(ALERT_TYPES), help="Only this alert type (repeatable)."
)
@click.option("--from-beginning", is_flag=True, help="Show every retained alert first, then follow.")
@click.option("--json", "as_json", is_flag=True, help="One JSON alert per line (the wire format) instead of text.")
@click.pass_context
def tail(ctx: click.Context, cameras: tuple[str, ...], types: tuple[str, ...], from_beginning: bool,
         as_json: bool) -> None:
    """Print alerts as they are raised, one line each, until Ctrl-C.

    \b
    Text lines: time (UTC event time), severity, type, camera, track, message.
    With --json: each alert as its JSON document (schemas/json/alert.v1.json).

    Needs the Kafka bus (bus.backend: kafka, e.g. with `tubeline stack up`). The
    in-memory bus lives inside one process, so a tail started as a separate process
    sees nothing there; this command refuses to run on it.

    Without --from-beginning only alerts raised from now on are shown: each tail reads
    the topic from the start in a consumer group of its own and skips alerts produced
    and dated before it started (the local broker cannot be trusted to seek to the end).
    An alert repeated by at-least-once delivery (same alert ID) is shown once.
    """
    from pipeline.alerts import TailFilter, follow, format_line
    from pipeline.bus import BusError, open_bus
    from schemas.topics import ALERTS, topic_name

    config = load_config_or_exit(ctx)
    if config.bus.backend != "kafka":
        click.echo(
            "error: alerts tail needs bus.backend: kafka — the in-memory bus is private to one process, "
            "so a separate tail would see no alert (set TUBELINE_BUS__BACKEND=kafka or use a config file)",
            err=True,
        )
        ctx.exit(2)
    where = TailFilter(cameras=frozenset(cameras), types=frozenset(types),
                       since=None if from_beginning else datetime.now(UTC))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def show(alert: Alert) -> None:
        click.echo(alert.to_json().decode("utf-8") if as_json else format_line(alert))

    topic = topic_name(ALERTS, config.bus.topic_prefix or None)
    click.echo(f"following {topic} on {config.bus.kafka.bootstrap_servers} (Ctrl-C to stop)", err=True)
    bus = open_bus(config)
    try:
        shown = follow(bus, show, stop, where=where)
    except BusError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        shown = -1
    except BrokenPipeError:  # output piped into a command that exited (head, grep -m)
        sys.stderr.close()
        sys.exit(0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bus.close()
    if shown >= 0:
        click.echo(f"stopped after {shown} alert(s)", err=True)
