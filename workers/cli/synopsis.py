"""``tubeline synopsis``: condense a camera's period into a short video whose every object points back to its time."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import click

from schemas.tracks import Colour
from workers.cli import load_config_or_exit

if TYPE_CHECKING:  # imported when a command runs, so that `tubeline --help` stays fast
    from pydantic import ValidationError

    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore
    from workers.synopsis.builder import SynopsisResult
    from workers.synopsis.sources import TrackSource

COLOURS: tuple[str, ...] = get_args(Colour)


def _when(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        msg = f"{value!r} is not an ISO 8601 time (e.g. 2024-05-01T08:00:00Z)"
        raise click.BadParameter(msg, param_hint=name) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _sentence(exc: ValidationError) -> str:
    """A request's validation errors as sentences (not pydantic's dump with the input echoed)."""
    parts = []
    for error in exc.errors():
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid synopsis request"


def _progress_printer() -> Callable[[str, float], None]:
    """Progress on stderr: one line per phase and per 10 % (a build of an hour takes minutes)."""
    shown: dict[str, int] = {}

    def show(phase: str, fraction: float) -> None:
        step = int(fraction * 10)
        if shown.get(phase, -1) < step:
            shown[phase] = step
            click.echo(f"  {phase:<10} {fraction * 100:3.0f} %", err=True)

    return show


def _source(config: TubelineConfig, store: ObjectStore, tracks: Path | None) -> TrackSource:
    from pipeline.bus import open_bus
    from workers.synopsis.catalog import CatalogTrackSource
    from workers.synopsis.sources import BusTrackSource, MemoryTrackSource
    from workers.synopsis.worker import CombinedTrackSource

    if tracks is not None:
        return MemoryTrackSource.from_jsonl(tracks)
    return CombinedTrackSource(CatalogTrackSource(store, config.index.catalog_prefix), BusTrackSource(open_bus(config)))


def _print_result(result: SynopsisResult, out: Path | None) -> None:
    index, m = result.index, result.index.metrics
    click.echo(f"synopsis {result.synopsis_id} of camera {result.camera_id}")
    click.echo(f"  video  {result.keys.video}   index  {result.keys.index}")
    if out is not None:
        click.echo(f"  local  {out}  and  {out.with_suffix('.json')}")
    click.echo(f"  {index.width}x{index.height} at {index.fps:g} fps, {index.frames} frames")
    click.echo(f"  length {m.synopsis_s:.1f} s from {m.source_s:.1f} s: condensation x{m.condensation:.1f}")
    click.echo(f"  objects {m.objects} in {m.groups} groups ({m.time_lapsed} time-lapsed, {m.left_out} left out)")
    click.echo(f"  collision ratio {m.collision_ratio:.3f} (source {m.source_collision_ratio:.3f}), "
               f"chronology violations {m.chronology_violations} of {m.chronology_pairs} pairs")
    click.echo(f"  built in {m.build_s:.1f} s (arrange {m.arrange_s:.2f} s, render {m.render_s:.1f} s = "
               f"{m.render_fps:.1f} frames/s); missing crops {m.missing_crops}")


@click.command("synopsis")
@click.option("--camera", required=True, metavar="ID", help="Camera to condense.")
@click.option("--from", "start", required=True, metavar="T1", help="Start (ISO 8601; UTC when no offset is given).")
@click.option("--to", "end", required=True, metavar="T2", help="End (ISO 8601; UTC when no offset is given).")
@click.option("--class", "classes", multiple=True, metavar="NAME",
              help="Only this class: person, vehicle or any detector class (repeatable).")
@click.option("--colour", "colours", multiple=True, type=click.Choice(COLOURS), help="Only this colour (repeatable).")
@click.option("--plate", metavar="TEXT", help="Only vehicles whose plate read contains TEXT.")
@click.option("--zone", metavar="X1,Y1,X2,Y2…",
              help="Only objects that entered this polygon (normalised 0..1; two points = a rectangle).")
@click.option("--length", "length_s", type=click.FloatRange(1, 3600), help="Target length in seconds.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the MP4 (and index .json) here.")
@click.option("--tracks", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read track summaries from this JSON-lines file instead of the catalog and the bus.")
@click.option("--submit", is_flag=True, help="Queue the request for the synopsis worker instead of building here.")
@click.option("--json", "as_json", is_flag=True, help="Print the index's metrics as JSON.")
@click.pass_context
def synopsis(ctx: click.Context, camera: str, start: str, end: str, classes: tuple[str, ...],
             colours: tuple[str, ...], plate: str | None, zone: str | None, length_s: float | None,
             out: Path | None, tracks: Path | None, submit: bool, as_json: bool) -> None:
    """Build a video synopsis of one camera between two times (tube-based, Pritch et al. 2008).

    \b
    Objects from the whole period are shown together over a clean background, each with its
    original time; objects longer than the synopsis are time-lapsed. The MP4 and an index
    (every object → track, original time, per-frame box) go to synopsis/{camera}/{id}.mp4|json
    in the object store. Tracks come from the Parquet catalog and the tracks topic, or --tracks.
    """
    from pydantic import ValidationError

    from pipeline.store import open_store
    from pipeline.synopsis.queue import submit_synopsis
    from pipeline.synopsis.request import SynopsisRequest, parse_zone
    from workers.synopsis.builder import NothingToShow, build_synopsis

    config = load_config_or_exit(ctx)
    settings = config.synopsis
    try:
        request = SynopsisRequest(
            camera_id=camera, start=_when(start, "--from"), end=_when(end, "--to"), classes=classes,
            colours=colours, plate=plate, zone=parse_zone(zone) if zone else None, length_s=length_s,
            requested_by="cli",
        )
    except ValidationError as exc:
        raise click.UsageError(_sentence(exc)) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    store = open_store(config)
    if submit:
        click.echo(submit_synopsis(store, request, settings))
        return
    try:
        result = build_synopsis(store, request, _source(config, store, tracks), settings, out_path=out,
                                progress=_progress_printer())
    except NothingToShow as exc:
        hint = ""
        if tracks is None and config.bus.backend == "memory":
            hint = " (the in-memory bus is private to one process: pass --tracks FILE or use Kafka)"
        click.echo(f"nothing to show: {exc}{hint}", err=True)
        sys.exit(3)
    except LookupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if out is not None:
        out.with_suffix(".json").write_bytes(result.index.to_json())
    if as_json:
        click.echo(json.dumps(result.index.metrics.model_dump(mode="json"), indent=1))
    else:
        _print_result(result, out)
