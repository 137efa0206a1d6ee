"""``tubeline cameras``: the camera registry (add, list, show, rm, import, rekey) and live camera status.

Passwords are never taken as command-line arguments (they would show in ``ps`` and shell history):
use ``--ask-password``, ``--password-stdin``, or put them in an import file. Nothing here prints a
password; ``show`` masks it. The registry stores them encrypted with the ``secrets`` keys;
``rekey`` re-encrypts every record with the current key (after a rotation, or to convert records
written before encryption).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click

from workers.cli import load_config_or_exit


def _registry(ctx: click.Context, *, keys: bool = True) -> Any:
    """The registry; with ``keys`` it opens and seals passwords with the configured keys, without it
    passwords stay sealed (enough for commands that never touch them)."""
    from pipeline.cameras.registry import CameraRegistry
    from pipeline.store import open_store

    cfg = load_config_or_exit(ctx)
    return CameraRegistry.from_config(open_store(cfg), cfg, keys=keys)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def _row(cam: Any) -> dict[str, Any]:
    from pipeline.cameras.urls import redact_url
    from pipeline.config.ingest import camera_to_json

    data = camera_to_json(cam)
    data["url"] = redact_url(cam.url)
    data["password"] = "**********" if cam.password is not None else None
    return data


@click.group()
def cameras() -> None:
    """Manage the camera registry and watch camera status."""


@cameras.command("add")
@click.argument("camera_id")
@click.option("--kind", type=click.Choice(["file", "rtsp", "gb28181"]), default="rtsp", show_default=True)
@click.option("--url", default="", help="File path or rtsp:// URL (credentials in it are moved out).")
@click.option("--name", default="")
@click.option("--username", default=None)
@click.option("--ask-password", is_flag=True, help="Prompt for the password (hidden).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--device-type", default="camera",
              type=click.Choice(["camera", "ipc", "dvr", "nvr", "encoder", "file", "other"]))
@click.option("--point-class", type=click.Choice(["I", "II", "III"]), default=None)
@click.option("--lat", "latitude", type=float, default=None)
@click.option("--lon", "longitude", type=float, default=None)
@click.option("--admin-unit", default="")
@click.option("--gb-device-id", default=None, help="GB/T 28181 device carrying this channel.")
@click.option("--transport", default="auto", type=click.Choice(["auto", "tcp", "udp", "tcp_passive", "tcp_active"]))
@click.option("--loop/--no-loop", default=False, help="Files: loop at the end.")
@click.option("--realtime/--as-fast-as-possible", default=True, help="Files: real-time pacing.")
@click.option("--disabled", is_flag=True, help="Register without ingesting.")
@click.option("--analysis-fps", type=float, default=None)
@click.option("--record/--no-record", default=None)
@click.option("--tag", "tags", multiple=True)
@click.option("--replace", is_flag=True, help="Overwrite an existing camera with this ID.")
@click.pass_context
def add(ctx: click.Context, camera_id: str, ask_password: bool, password_stdin: bool, replace: bool,
        disabled: bool, tags: tuple[str, ...], **fields: Any) -> None:
    """Add camera CAMERA_ID to the registry."""
    from pydantic import SecretStr

    from pipeline.cameras.registry import normalise_record, validate_records

    data = {k: v for k, v in fields.items() if v is not None}
    data.update(id=camera_id, enabled=not disabled, tags=list(tags))
    if ask_password:
        data["password"] = SecretStr(click.prompt("Password", hide_input=True))
    elif password_stdin:
        data["password"] = SecretStr(sys.stdin.readline().rstrip("\r\n"))
    cams, problems = validate_records([(1, normalise_record(data))])
    if problems:
        _fail("; ".join(p.removeprefix("row 1: ") for p in problems))
    from pipeline.sealing import SealingError

    registry = _registry(ctx)
    if registry.exists(camera_id) and not replace:
        _fail(f"camera {camera_id} already exists (use --replace to overwrite)")
    try:
        registry.put(cams[0])
    except SealingError as exc:
        _fail(str(exc))
    click.echo(f"added {camera_id}")


@cameras.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cameras(ctx: click.Context, as_json: bool) -> None:
    """List the cameras ingest and the web UI know: the registry and the config file's static cameras (the
    registry wins on equal IDs). Passwords are never shown, nor decrypted."""
    cams = _registry(ctx, keys=False).list()
    registered = {c.id for c in cams}
    static = [c for c in load_config_or_exit(ctx).cameras.static if c.id not in registered]
    if as_json:
        click.echo(json.dumps([_row(c) | {"origin": "registry"} for c in cams]
                              + [_row(c) | {"origin": "config"} for c in static], indent=2, ensure_ascii=False))
        return
    if not cams and not static:
        click.echo("no cameras registered")
        return
    click.echo(f"{'ID':<22} {'KIND':<8} {'ON':<3} {'FROM':<8} {'NAME':<24} SOURCE")
    for c, origin in [*((c, "registry") for c in cams), *((c, "config") for c in static)]:
        row = _row(c)
        source = row["url"] or (f"gb:{c.gb_device_id}" if c.gb_device_id else "")
        click.echo(f"{c.id:<22} {c.kind:<8} {'yes' if c.enabled else 'no':<3} {origin:<8} {c.name[:24]:<24} {source}")


@cameras.command("show")
@click.argument("camera_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, camera_id: str, as_json: bool) -> None:
    """Show one camera (password masked; a password the configured keys cannot decrypt is an error)."""
    from pipeline.cameras.registry import CameraNotFound
    from pipeline.sealing import SealingError

    try:
        cam = _registry(ctx).get(camera_id)
    except CameraNotFound as exc:
        _fail(str(exc.args[0]))
    except SealingError as exc:
        _fail(str(exc))
    row = _row(cam)
    if as_json:
        click.echo(json.dumps(row, indent=2, ensure_ascii=False))
        return
    for key, value in row.items():
        click.echo(f"{key:<14} {'' if value is None else value}")


@cameras.command("rm")
@click.argument("camera_ids", nargs=-1, required=True)
@click.pass_context
def rm(ctx: click.Context, camera_ids: tuple[str, ...]) -> None:
    """Remove cameras from the registry."""
    registry = _registry(ctx, keys=False)
    missing = [cid for cid in camera_ids if not registry.delete(cid)]
    for cid in camera_ids:
        if cid not in missing:
            click.echo(f"removed {cid}")
    if missing:
        _fail(f"not registered: {', '.join(missing)}")


@cameras.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "yaml"]), default=None,
              help="Default: from the file suffix.")
@click.option("--replace", is_flag=True, help="Overwrite cameras that already exist.")
@click.option("--dry-run", is_flag=True, help="Validate only.")
@click.pass_context
def import_cameras(ctx: click.Context, file: Path, fmt: str | None, replace: bool, dry_run: bool) -> None:
    """Import cameras from a CSV (header row of field names) or YAML file; all or nothing."""
    from pipeline.cameras.registry import parse_import, validate_records

    fmt = fmt or ("csv" if file.suffix.lower() == ".csv" else "yaml")
    try:
        cams, problems = validate_records(parse_import(file.read_text(encoding="utf-8-sig"), fmt))
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(f"{file}: {exc}")
    registry = _registry(ctx)
    if not replace:
        problems += [f"camera {c.id} already exists (use --replace)" for c in cams if registry.exists(c.id)]
    if problems:
        for problem in problems:
            click.echo(f"error: {file}: {problem}", err=True)
        raise SystemExit(1)
    if not dry_run:
        from pipeline.sealing import SealingError

        try:
            if any(cam.password is not None for cam in cams):
                registry.keyring.ensure_current()  # fail before the first write, not halfway through
            for cam in cams:
                registry.put(cam)
        except SealingError as exc:
            _fail(str(exc))
    click.echo(f"{'validated' if dry_run else 'imported'} {len(cams)} camera(s) from {file}")


@cameras.command("rekey")
@click.option("--new-key", is_flag=True,
              help="First rotate: put a new random key first in secrets.key_file (older keys stay to decrypt).")
@click.option("--dry-run", is_flag=True, help="Only report what would be re-encrypted.")
@click.pass_context
def rekey(ctx: click.Context, new_key: bool, dry_run: bool) -> None:
    """Re-encrypt every camera password with the current key.

    Converts records stored before encryption (password in clear) and moves records sealed with an
    older key (secrets.old_keys, or later lines of the key file) to the current one. Drop an old key
    only once this reports no record left on it.
    """
    from pipeline.sealing import SealingError

    registry = _registry(ctx)
    try:
        if new_key:
            if dry_run:
                _fail("--new-key and --dry-run do not go together")
            click.echo(f"new current key {registry.keyring.rotate()} in {registry.keyring.key_file}")
        report = registry.rekey(dry_run=dry_run)
    except SealingError as exc:
        _fail(str(exc))
    verb = "would re-encrypt" if dry_run else "re-encrypted"
    click.echo(f"{verb} {len(report.sealed)} clear-text and {len(report.moved)} older-key password(s) "
               f"with key {report.key_id}; {len(report.current)} already on it, "
               f"{len(report.no_password)} camera(s) without a password")
    for cid, old in sorted(report.moved.items()):
        click.echo(f"  {cid}: {old} -> {report.key_id}")
    for cid in report.sealed:
        click.echo(f"  {cid}: clear text -> {report.key_id}")
    for where, problem in sorted(report.failed.items()):
        click.echo(f"error: {where}: {problem}", err=True)
    if report.failed:
        raise SystemExit(1)


@cameras.command("status")
@click.option("--camera", "only", multiple=True, help="Only these cameras.")
@click.option("--wait", type=float, default=3.0, show_default=True, help="Seconds to wait for new events.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, only: tuple[str, ...], wait: float, as_json: bool) -> None:
    """Latest connection state and stats per camera, read from the camera status topic."""
    from pipeline.bus import open_bus
    from workers.ingest.status import read_latest_status

    cfg = load_config_or_exit(ctx)
    if cfg.bus.backend == "memory":
        _fail("the in-memory bus lives inside 'tubeline up'; camera status needs bus.backend: kafka")
    bus = open_bus(cfg)
    try:
        latest = read_latest_status(bus, group=f"tubeline-cli-status-{uuid.uuid4().hex[:8]}", idle_s=wait,
                                    deadline=time.monotonic() + max(30.0, wait * 4))
    finally:
        bus.close()
    rows = [r for cid, r in sorted(latest.items()) if not only or cid in only]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no camera status events yet")
        return
    click.echo(f"{'CAMERA':<22} {'STATE':<13} {'REASON':<10} {'SINCE':<20} {'FPS IN/OUT':<11} {'KBPS':>7} "
               f"{'LOST':>5} {'DROP':>5}  DETAIL")
    for r in rows:
        fps = f"{r['fps_in']:.1f}/{r['fps_out']:.1f}" if r.get("fps_in") is not None else "-"
        kbps = f"{r['bitrate_kbps']:.0f}" if r.get("bitrate_kbps") is not None else "-"
        click.echo(f"{r['camera_id']:<22} {r['state']:<13} {r['reason'] or '':<10} {r['since'][:19]:<20} "
                   f"{fps:<11} {kbps:>7} {r.get('rtp_lost', 0):>5} {r.get('dropped', 0):>5}  {r['detail'][:60]}")


@cameras.command("clip")
@click.argument("camera_id")
@click.option("--start", "start", required=True, help="UTC start, ISO 8601 (e.g. 2026-11-25T08:00:00Z).")
@click.option("--end", "end", required=True, help="UTC end, ISO 8601.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (.mp4 or .ts).")
@click.pass_context
def clip(ctx: click.Context, camera_id: str, start: str, end: str, out: Path) -> None:
    """Cut a clip of CAMERA_ID's recording between START and END (no re-encoding, ± one GOP)."""
    from datetime import UTC, datetime

    from pipeline.recordings import cut_clip
    from pipeline.store import open_store

    def parse(text: str) -> datetime:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    cfg = load_config_or_exit(ctx)
    try:
        result = cut_clip(open_store(cfg), camera_id, parse(start), parse(end), out,
                          prefix=cfg.ingest.recordings.prefix)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    click.echo(f"wrote {result.path}: {result.duration_s:.1f} s from {result.segments} segment(s), "
               f"{result.start.isoformat()} to {result.end.isoformat()}")
