"""``tubeline worker NAME`` (one worker, production wiring) and ``tubeline up`` (everything embedded)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from workers.cli import load_config_or_exit

if TYPE_CHECKING:  # imported when a command runs, so that `tubeline --help` stays fast
    from pipeline.bus import Bus
    from pipeline.config import TubelineConfig
    from pipeline.config.ingest import CameraSpec
    from pipeline.live.hub import LiveHub
    from workers.api.serve import ApiServer
    from workers.runner.embedded import EmbeddedResult

UP_TAG = "tubeline-up"


class _WorkerCommand(click.Command):
    """``tubeline worker``, whose help lists the workers (names and summaries from the worker registry)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from workers.runner.registry import WORKERS, summary

        with formatter.section("Workers"):
            formatter.write_dl([(name, summary(name)) for name in sorted(WORKERS)])
        super().format_epilog(ctx, formatter)


@click.command("worker", cls=_WorkerCommand)
@click.argument("name")
@click.pass_context
def worker(ctx: click.Context, name: str) -> None:
    """Run worker NAME (one of those below) until SIGTERM/SIGINT, on the configured bus and store."""
    from pipeline.bus import open_bus
    from pipeline.runtime.health import HealthServer
    from pipeline.store import open_store
    from workers.runner.registry import WORKERS, make_worker

    if name not in WORKERS:
        msg = f"unknown worker; known: {', '.join(sorted(WORKERS))}"
        raise click.BadParameter(msg, param_hint="NAME")
    config = load_config_or_exit(ctx)
    w = make_worker(name, config, bus=open_bus(config), store=open_store(config))
    health = None
    if config.runtime.health_port:
        health = HealthServer(config.runtime.health_host, config.runtime.health_port, lambda: {name: w.health},
                              lambda: {name: w.degraded_reasons()}).start()
    try:
        w.run()
    except Exception as exc:  # noqa: BLE001 - reported, non-zero exit
        click.echo(f"error: worker {name} failed: {exc}", err=True)
        sys.exit(1)
    finally:
        if health is not None:
            health.stop()


def _print_stage_summary() -> None:
    """Per-stage latency from capture (event time) to the end of each stage, from this process's metrics."""
    from pipeline.metrics import stage_summary

    stages = stage_summary()
    if not stages:
        return
    click.echo("stage timing (capture -> stage done; p50/p95 at histogram-bucket resolution):")
    click.echo(f"  {'stage':24} {'count':>7} {'mean':>9} {'p50 <=':>9} {'p95 <=':>9}")
    for s in stages:
        click.echo(f"  {s.stage:24} {s.count:7d} {s.mean_s:8.2f}s {s.p50_s:8.2f}s {s.p95_s:8.2f}s")


@click.command("up")
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Video file(s) to ingest as cameras. Default: the shared sample video (vtest.avi).",
)
@click.option("--realtime/--fast", default=None,
              help="Play files at their own frame rate (default while serving: live video, tracks and alerts appear "
                   "as they happen) or as fast as possible (default with --no-serve).")
@click.option("--timeout", default=1800.0, show_default=True, help="Give up after this many seconds.")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Serve the API and web UI on localhost from the start, and on after the run until Ctrl-C.")
@click.pass_context
def up(ctx: click.Context, sources: tuple[Path, ...], realtime: bool | None, timeout: float,
       serve: bool) -> None:
    """Run the whole pipeline in one process on video files, serving the web UI while it runs.

    ingest → detect + track → rules → plate, face → index, on the configured bus and store: by
    default the in-memory bus and the local folder var/store, so nothing else needs to run. The API
    and web UI serve on 127.0.0.1 from the start (first run: an admin password is printed once): live
    video, tracks and alerts appear as the files play; when the files end, what was found is printed
    and the UI keeps serving until Ctrl-C.
    """
    from pipeline.bus import open_bus
    from pipeline.live.hub import LiveHub
    from workers.runner.embedded import run_embedded

    config = load_config_or_exit(ctx)
    realtime = serve if realtime is None else realtime
    if not realtime:
        # As fast as possible: make ingest wait for downstream instead of dropping frames.
        config = config.model_copy(update={"ingest": config.ingest.model_copy(update={"overflow": "block"})})
    cameras = _file_cameras(sources, realtime)
    where = config.store.local.root if config.store.backend == "local" else config.store.s3.endpoint
    click.echo(f"bus: {config.bus.backend}   store: {config.store.backend} ({where})   "
               f"pace: {'real time' if realtime else 'as fast as possible'}")
    for cam in cameras:
        click.echo(f"camera {cam.id}: {cam.url}")
    _register(config, cameras)
    bus, hub = open_bus(config), LiveHub()
    server = _start_server(config, bus, hub) if serve else None
    try:
        result = run_embedded(config, cameras, timeout_s=timeout, bus=bus, live=hub,
                              progress=lambda line: click.echo(line, err=True))
        failed = _report(result)
        if server is not None:
            click.echo("The pipeline has finished; the web UI keeps serving (Ctrl-C stops it).")
            server.wait()
    finally:
        if server is not None:
            server.stop()
        bus.close()
    if failed:
        sys.exit(1)


def _file_cameras(sources: tuple[Path, ...], realtime: bool) -> list[CameraSpec]:
    from pipeline.config.ingest import CameraSpec
    from workers.runner.embedded import sample_video

    if not sources:
        sample = sample_video()
        if sample is None:
            msg = "no --source given and the sample video (shared/testdata/vtest.avi) is not present"
            raise click.UsageError(msg)
        sources = (sample,)
    return [CameraSpec(id=f"file-{i + 1:02d}", name=src.name, kind="file", device_type="file",
                       url=str(src.resolve()), realtime=realtime, tags=[UP_TAG]) for i, src in enumerate(sources)]


def _register(config: TubelineConfig, cameras: list[CameraSpec]) -> None:
    """Put the run's file cameras in the registry, so 'tubeline cameras list' and the web UI both show them;
    cameras an earlier 'tubeline up' registered (tag ``tubeline-up``) that this run does not play are removed."""
    from pipeline.cameras.registry import CameraRegistry
    from pipeline.store import open_store

    registry = CameraRegistry(open_store(config), config.cameras.registry_prefix)
    ours = {cam.id for cam in cameras}
    for old in registry.list():
        if UP_TAG in old.tags and old.id not in ours:
            registry.delete(old.id)
    for cam in cameras:
        registry.put(cam)


def _start_server(config: TubelineConfig, bus: Bus, hub: LiveHub) -> ApiServer:
    """The API + UI over the run's own bus (live alerts, overlays) and live hub, started before the pipeline."""
    from pipeline.access import ScopedStore, access_matrix
    from pipeline.store import open_store
    from workers.api.serve import start_api
    from workers.runner.companions import api_companions

    # One process, no synopsis worker beside it: the API process builds requested synopses itself.
    api = config.api.model_copy(update={"build_synopses": True})
    store = open_store(config)
    matrix = access_matrix(config)  # the API and the synopsis builder each keep to their own prefixes
    try:
        server = start_api(config, store=ScopedStore(store, matrix["api"]), bus=bus, api=api, live=hub,
                           companions=api_companions(config, ScopedStore(store, matrix["synopsis"]), api=api,
                                                     report_store=ScopedStore(store, matrix["api"])))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    for line in server.banner():
        click.echo(line)
    return server


def _report(result: EmbeddedResult) -> bool:
    """Print what the run found; True when not every published frame was analysed."""
    rate = result.frames_detected / result.elapsed_s if result.elapsed_s else 0.0
    click.echo(f"done in {result.elapsed_s:.1f} s: {result.frames_published} frames published"
               f" ({result.frames_dropped} dropped), {result.frames_detected} detected ({rate:.1f} frames/s),"
               f" {result.dead_letters} dead-lettered")
    tracks = ", ".join(f"{n} {c}" for c, n in sorted(result.tracks_by_class.items(), key=lambda kv: -kv[1]))
    click.echo(f"tracks: {sum(result.tracks_by_class.values())} ({tracks or 'none'}); crops: {result.crops}")
    alerts = ", ".join(f"{n} {t}" for t, n in sorted(result.alerts_by_type.items()))
    click.echo(f"alerts: {sum(result.alerts_by_type.values())}{' (' + alerts + ')' if alerts else ''}")
    click.echo("stored objects:")
    for prefix, (count, size) in result.objects.items():
        click.echo(f"  {prefix + '/':14} {count:6d} objects  {size / 1e6:8.1f} MB")
    for key in result.sample_keys:
        click.echo(f"  e.g. {key}")
    _print_stage_summary()
    if result.frames_published == 0 or result.frames_detected + result.dead_letters < result.frames_published:
        click.echo("error: not every published frame was analysed", err=True)
        return True
    return False
