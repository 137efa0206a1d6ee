"""``tubeline api serve``, ``tubeline users …`` and ``tubeline audit …``.

Users and the audit log live in the configured object store, so these commands work on any
machine that reaches it. Passwords are read from a prompt (never an argument, which would land in
shell history and process lists) unless ``--password-stdin`` is given; API tokens are shown once.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from workers.cli import load_config_or_exit

if TYPE_CHECKING:  # imported when a command runs, so that `tubeline --help` stays fast
    from pipeline.store.base import ObjectStore

ROLES = ["admin", "investigator", "operator", "auditor"]


def _store(ctx: click.Context) -> ObjectStore:
    from pipeline.store import open_store

    return open_store(load_config_or_exit(ctx))


# -- api ------------------------------------------------------------------------------------------
@click.group("api")
def api() -> None:
    """The REST API and web UI."""


@api.command("serve")
@click.option("--host", default=None, help="Address to bind (default: api.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: api.port, 8080).")
@click.option("--no-bootstrap", is_flag=True, help="Do not create the first admin when there is no user.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, no_bootstrap: bool) -> None:
    """Serve the API and the web UI until Ctrl-C.

    On the first run (no user in the store) an 'admin' user is created and its random password is
    printed here, once.
    """
    from pipeline.bus import open_bus
    from pipeline.store import open_store
    from workers.api.serve import serve_until_interrupted
    from workers.runner.companions import api_companions

    config = load_config_or_exit(ctx)
    bus = open_bus(config) if config.bus.backend == "kafka" else None
    store = open_store(config)
    try:
        serve_until_interrupted(config, echo=click.echo, bus=bus, store=store, host=host, port=port,
                                bootstrap=not no_bootstrap, companions=api_companions(config, store, bus=bus))
    except RuntimeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


# -- users ----------------------------------------------------------------------------------------
@click.group("users")
def users() -> None:
    """Users, roles, camera scopes and API tokens."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--camera", "cameras", multiple=True, help="A camera ID in scope (repeat).")
@click.option("--unit", "units", multiple=True, help="An administrative unit in scope, with its sub-units (repeat).")
@click.option("--all-cameras", is_flag=True, help="Every camera is in scope.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--no-password", is_flag=True, help="No password: the user can only use API tokens.")
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str, cameras: tuple[str, ...], units: tuple[str, ...],
              all_cameras: bool, password_stdin: bool, no_password: bool) -> None:
    """Create a user. Without --camera, --unit or --all-cameras the user sees no camera."""
    from pydantic import ValidationError

    from workers.api.users import Scope, UserError, UserStore

    try:
        scope = Scope(all_cameras=all_cameras, cameras=cameras, units=units)
    except ValidationError as exc:
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--camera/--unit") from None
    store = _store(ctx)
    password = None if no_password else _read_password(password_stdin)
    try:
        user = UserStore(store).add(name, role, password, scope)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"user {user.name} ({user.role.value}), scope: {user.scope.describe()}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """List users with role, scope and token IDs."""
    from workers.api.users import UserStore

    found = UserStore(_store(ctx)).list()
    if as_json:
        click.echo(json.dumps([u.public() for u in found], indent=1, ensure_ascii=False))
        return
    for u in found:
        tokens = ",".join(t.id for t in u.tokens) or "-"
        state = " (disabled)" if u.disabled else ""
        click.echo(f"{u.name:20} {u.role.value:13} {u.scope.describe():40} tokens: {tokens}{state}")


@users.command("rm")
@click.argument("name")
@click.pass_context
def users_rm(ctx: click.Context, name: str) -> None:
    """Remove a user (their tokens and sessions stop working)."""
    from workers.api.users import UserStore

    if not UserStore(_store(ctx)).remove(name):
        click.echo(f"error: no user {name!r}", err=True)
        sys.exit(1)
    click.echo(f"user {name} removed")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def users_passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a user's password (ends their open sessions)."""
    from workers.api.users import UserError, UserStore

    store = _store(ctx)
    try:
        UserStore(store).set_password(name, _read_password(password_stdin))
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"password of {name} changed")


def _parse_expiry(text: str | None) -> datetime | None:
    """``30d``, ``12h``, ``90m`` from now, or an ISO 8601 time with a time zone; None for no expiry."""
    if not text:
        return None
    units = {"d": 86400, "h": 3600, "m": 60}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) + timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        msg = f"{text!r} is neither a duration (30d, 12h, 90m) nor an ISO time with a time zone"
        raise click.BadParameter(msg, param_hint="--expires")
    return when


@users.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for.")
@click.option("--expires", default=None, help="Expiry: a duration (30d, 12h, 90m) or an ISO time with a time zone.")
@click.option("--revoke", "revoke_id", default=None, help="Revoke the token with this ID instead.")
@click.pass_context
def users_token(ctx: click.Context, name: str, label: str, expires: str | None, revoke_id: str | None) -> None:
    """Create an API token for NAME (shown once), or revoke one with --revoke ID."""
    from workers.api.users import UserError, UserStore

    users_store = UserStore(_store(ctx))
    try:
        if revoke_id:
            if not users_store.revoke_token(name, revoke_id):
                click.echo(f"error: {name} has no token {revoke_id}", err=True)
                sys.exit(1)
            click.echo(f"token {revoke_id} revoked")
            return
        expires_at = _parse_expiry(expires)
        token = users_store.create_token(name, label, expires_at)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(token)
    until = f", valid until {expires_at.isoformat(timespec='seconds')}" if expires_at else ""
    click.echo(f"(shown once: store it now; send it as 'Authorization: Bearer <token>'{until})", err=True)


@users.command("set")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default=None, help="A new role.")
@click.option("--camera", "cameras", multiple=True, help="New scope: a camera ID (repeat).")
@click.option("--unit", "units", multiple=True, help="New scope: an administrative unit (repeat).")
@click.option("--all-cameras", is_flag=True, help="New scope: every camera.")
@click.option("--no-cameras", is_flag=True, help="New scope: no camera.")
@click.option("--disable/--enable", "disabled", default=None, help="Disable (ends sessions) or enable the user.")
@click.pass_context
def users_set(ctx: click.Context, name: str, role: str | None, cameras: tuple[str, ...], units: tuple[str, ...],
              all_cameras: bool, no_cameras: bool, disabled: bool | None) -> None:
    """Change a user's role, camera scope or disabled flag (every replica and open stream follows within seconds)."""
    from pydantic import ValidationError

    from workers.api.users import Scope, UserError, UserStore

    scope = None
    if cameras or units or all_cameras or no_cameras:
        try:
            scope = Scope(all_cameras=all_cameras, cameras=cameras, units=units)
        except ValidationError as exc:
            raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--camera/--unit") from None
    try:
        user = UserStore(_store(ctx)).update(name, role=role, scope=scope, disabled=disabled)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    state = " (disabled)" if user.disabled else ""
    click.echo(f"user {user.name} ({user.role.value}), scope: {user.scope.describe()}{state}")


@users.command("unlock")
@click.argument("name")
@click.pass_context
def users_unlock(ctx: click.Context, name: str) -> None:
    """Clear NAME's failed logins, so the login throttle lets it in again from every address."""
    from pipeline.store import open_store
    from workers.api.throttle import LoginThrottle

    config = load_config_or_exit(ctx)
    api = config.api
    throttle = LoginThrottle(open_store(config), max_per_pair=api.login_max_failures,
                             max_per_name=api.login_max_failures_per_name, window_s=api.login_lockout_s)
    count = throttle.unlock(name)
    click.echo(f"{name}: {count} recent failed login(s) cleared" if count else f"{name}: no failed logins counted")


# -- audit ----------------------------------------------------------------------------------------
@click.group("audit")
def audit() -> None:
    """The hash-chained audit log."""


def _parse_expect(values: tuple[str, ...]) -> list[tuple[str, int, str]]:
    out = []
    for value in values:
        try:
            writer, seq, digest = value.rsplit(":", 2)
            out.append((writer, int(seq), digest))
        except ValueError:
            msg = f"{value!r} is not WRITER:SEQ:HASH"
            raise click.BadParameter(msg, param_hint="--expect") from None
    return out


@audit.command("verify")
@click.option("--expect", multiple=True, help="A head kept elsewhere, WRITER:SEQ:HASH (as printed earlier).")
@click.option("--quiet", is_flag=True, help="Print only problems.")
@click.pass_context
def audit_verify(ctx: click.Context, expect: tuple[str, ...], quiet: bool) -> None:
    """Check every entry, chain, head and anchor; exit 1 on the first edited, reordered or missing entry."""
    from workers.api.audit import verify

    report = verify(_store(ctx), expect=_parse_expect(expect))
    if not report.ok:
        click.echo(f"FAILED: {report.problems[0]}", err=True)
        for problem in report.problems[1:]:
            click.echo(f"  also: {problem}", err=True)
        sys.exit(1)
    if not quiet:
        click.echo(f"ok: {report.entries} entries in {len(report.chains)} chain(s)")
        for writer, (seq, digest) in sorted(report.chains.items()):
            click.echo(f"  head {writer}:{seq}:{digest}")


@audit.command("tail")
@click.option("-n", "--lines", "limit", default=20, show_default=True, help="How many entries.")
@click.option("--user", default=None, help="Only this user's entries.")
@click.option("--action", default=None, help="Only this action (or its family, e.g. 'search').")
@click.option("--json", "as_json", is_flag=True, help="One JSON entry per line.")
@click.pass_context
def audit_tail(ctx: click.Context, limit: int, user: str | None, action: str | None, as_json: bool) -> None:
    """The newest audit entries, oldest first."""
    from workers.api.audit import tail

    for entry in tail(_store(ctx), limit, user=user, action=action):
        if as_json:
            click.echo(json.dumps(entry, ensure_ascii=False, sort_keys=True))
            continue
        case = f" case={entry['case']}" if entry.get("case") else ""
        count = f" results={entry['result_count']}" if entry.get("result_count") is not None else ""
        reason = f" ({entry['reason']})" if entry.get("reason") else ""
        click.echo(f"{entry.get('ts', '')[:23]}Z {entry.get('user', '-'):12} {entry.get('action', ''):18} "
                   f"{entry.get('outcome', '')}{case}{count}{reason}")
