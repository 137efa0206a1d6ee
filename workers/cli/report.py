"""``tubeline report daily --date D [--unit U]``: make the daily inspection report now and store it.

The quality worker makes yesterday's reports by itself (``quality.report_hour_utc``); this command makes
one on demand, for any day, from the catalog and the recordings in the configured store, and prints the
keys it wrote (``--out DIR`` also saves copies of the HTML and CSV there).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import click

from workers.cli import load_config_or_exit


@click.group("report")
def report() -> None:
    """Camera-health reports."""


@report.command("daily")
@click.option("--date", "day", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="Day (UTC), YYYY-MM-DD.")
@click.option("--unit", default=None, help="Administrative unit (and the units below it); default: every camera.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Also write the files here.")
@click.pass_context
def daily(ctx: click.Context, day: datetime, unit: str | None, out: Path | None) -> None:
    """Make and store the daily inspection report (HTML + CSV) of DATE."""
    from pipeline.health.report import report_keys
    from pipeline.health.service import HealthService, make_daily_reports
    from pipeline.store import open_store

    config = load_config_or_exit(ctx)
    store = open_store(config)
    service = HealthService(store, config)
    service.refresh()
    when: date = day.date()
    written = make_daily_reports(service, when.isoformat(), datetime.now(UTC), unit=unit)
    html_key, csv_key = report_keys(config.quality.report_prefix, when.isoformat(), unit)
    for key in (*written, csv_key):
        click.echo(key)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for key in (html_key, csv_key):
            (out / Path(key).name).write_bytes(store.get(key))
    store.close()
