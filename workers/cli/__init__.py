"""The ``tubeline`` command line.

Subcommand groups live in their own modules and are imported only when used, so
``tubeline --help`` stays fast and a broken optional dependency (a model runtime,
a web framework) never blocks ``tubeline stack`` or ``tubeline config``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # loaded when a command runs, so that `tubeline --help` stays fast
    from pipeline.config import TubelineConfig

# name -> "module:attribute" of a click command or group. Keep sorted.
COMMANDS: dict[str, str] = {
    "alerts": "workers.cli.alerts:alerts",
    "api": "workers.cli.api:api",
    "audit": "workers.cli.api:audit",
    "cameras": "workers.cli.cameras:cameras",
    "cases": "workers.cli.cases:cases",
    "catalog": "workers.cli.catalog:catalog",
    "config": "workers.cli.config:config",
    "evidence": "workers.cli.evidence:evidence",
    "hotlists": "workers.cli.hotlists:hotlists",
    "models": "workers.cli.models:models",
    "quality": "workers.cli.quality:quality",
    "report": "workers.cli.report:report",
    "retention": "workers.cli.retention:retention",
    "stack": "workers.cli.stack:stack",
    "synopsis": "workers.cli.synopsis:synopsis",
    "up": "workers.cli.run:up",
    "users": "workers.cli.api:users",
    "worker": "workers.cli.run:worker",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._available()))

    @staticmethod
    def _available() -> list[str]:
        names = []
        for name, target in COMMANDS.items():
            module = target.split(":", 1)[0]
            if importlib.util.find_spec(module) is not None:
                names.append(name)
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in COMMANDS:
            return command
        module_name, attr = COMMANDS[cmd_name].split(":", 1)
        if importlib.util.find_spec(module_name) is None:
            return None
        module = importlib.import_module(module_name)
        return getattr(module, attr)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python is chatty at INFO (every connect/disconnect).
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="TUBELINE_CONFIG",
    help="Configuration file (YAML). Default: built-in defaults; TUBELINE_* variables override either.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="Log level for messages on stderr.",
)
@click.version_option(package_name="tubeline")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_level: str) -> None:
    """Tubeline: open video analytics for public-safety camera networks.

    \b
    Quick start:
      tubeline up                  ingest the sample video and process it in one process
      tubeline stack up            start the local Kafka broker and S3 server
      tubeline config validate F   check a configuration file
      tubeline worker NAME         run one worker (ingest, detect, ...) against the configured bus
    """
    setup_logging(log_level)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def load_config_or_exit(ctx: click.Context) -> TubelineConfig:
    """The effective configuration, or a located error message and exit code 2."""
    from pipeline.config import ConfigError, load_config

    path = (ctx.find_root().obj or {}).get("config_path")
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(2)
    except FileNotFoundError:
        click.echo(f"error: configuration file not found: {path}", err=True)
        ctx.exit(2)
