"""``tubeline config``: validate a configuration file and show the effective configuration."""

from __future__ import annotations

import json

import click

from workers.cli import load_config_or_exit


@click.group()
def config() -> None:
    """Check and show configuration."""


@config.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--no-env", is_flag=True, help="Ignore TUBELINE_* environment overrides.")
def validate(file: str, no_env: bool) -> None:
    """Validate FILE; each problem is printed as FILE:LINE:COLUMN: key.path: message."""
    from pipeline.config import ConfigError, load_config

    try:
        load_config(file, use_env=not no_env)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{file}: ok")


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration (file + environment), secrets masked."""
    from pipeline.config import dump_config

    cfg = load_config_or_exit(ctx)
    if as_json:
        click.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        click.echo(dump_config(cfg), nl=False)


@config.command("schema")
def schema() -> None:
    """Print the JSON Schema of the configuration tree (titles, descriptions, bounds)."""
    from pipeline.config import TubelineConfig

    click.echo(json.dumps(TubelineConfig.model_json_schema(), indent=2))
