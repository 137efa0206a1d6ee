"""``tubeline quality check FILE...``: the video quality diagnosis of the quality worker, over video files.

Prints one JSON line per fault segment, ``{"start_s", "end_s", "fault", "score"}`` (seconds from the
start of the file; a scene change has ``start_s`` = ``end_s``), in start order; with several files each
line also names its ``file``. Fault names: blur, dark, bright, low_contrast, colour_cast, noise, freeze,
no_signal, occlusion, scene_change, stripes. Exit status 0 when every file was read (with or without
faults), 2 when a file cannot be decoded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from workers.cli import load_config_or_exit


@click.group("quality")
def quality() -> None:
    """Video quality diagnosis (blur, dark, freeze, no signal, ...)."""


@quality.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--interval", type=click.FloatRange(0.04, 60.0), default=None,
              help="Seconds between diagnosed frames (default: quality.check_interval_s).")
@click.option("--summary/--no-summary", default=False, help="Also print samples and speed per file on stderr.")
@click.pass_context
def check(ctx: click.Context, files: tuple[Path, ...], interval: float | None, summary: bool) -> None:
    """Diagnose video FILES; one JSON line per fault segment on stdout."""
    from pipeline.quality.video import check_file

    settings = load_config_or_exit(ctx).quality
    if interval is not None:
        settings = settings.model_copy(update={"check_interval_s": interval})
    failed = False
    for path in files:
        try:
            result = check_file(path, settings)
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            failed = True
            continue
        for seg in result.segments:
            line = seg.as_json()
            if len(files) > 1:
                line = {"file": str(path), **line}
            click.echo(json.dumps(line))
        if summary:
            click.echo(f"{path}: {result.samples} frames diagnosed over {result.duration_s:.1f} s in "
                       f"{result.elapsed_s:.2f} s, {len(result.segments)} fault segment(s)", err=True)
    if failed:
        sys.exit(2)
