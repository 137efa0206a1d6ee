"""``tubeline cases``: the case register from the command line (list, show, open, member, close, reopen, items).

Commands act as a Tubeline user named with ``--as`` (who owns a case opened here, who added a member, who
closed it) and write the same audit entries as the API (``via: cli``, the operating-system user and host as the
client), in a chain of their own. They work on any machine that reaches the store.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
from typing import Any

import click

from workers.cli import load_config_or_exit

MEMBER_ROLES = ["lead", "investigator", "viewer"]
CASE_TYPES = ["criminal", "administrative", "traffic", "missing-person", "public-order", "other"]


class _Desk:
    """The register, workspace, users and an audit chain over the configured store."""

    def __init__(self, ctx: click.Context) -> None:
        from pipeline.cases.records import CaseRegister
        from pipeline.cases.workspace import Workspace
        from pipeline.store import open_store
        from workers.api.audit import AuditLog
        from workers.api.users import UserStore

        config = load_config_or_exit(ctx)
        self.store = open_store(config)
        self.cases = CaseRegister(self.store, config.cases.prefix, config.api.case_pattern)
        self.workspace = Workspace(self.store, config.cases.prefix)
        self.users = UserStore(self.store)
        self.audit = AuditLog(self.store)

    def actor(self, name: str) -> Any:
        user = self.users.get(name)
        if user is None or user.disabled:
            fail(f"no enabled user {name!r} (--as names the Tubeline user this command acts as)")
        return user

    def record(self, action: str, user: Any, case: str | None, params: dict[str, Any], outcome: str = "ok",
               reason: str = "") -> None:
        entry = {"action": action, "user": user.name, "role": user.role.value, "via": "cli",
                 "client": f"cli:{getpass.getuser()}@{socket.gethostname()}", "outcome": outcome,
                 "status": 200 if outcome == "ok" else 403, "reason": reason, "case": case, "params": params,
                 "result_count": None, "result_ids": [], "exported_keys": []}
        self.audit.append(entry)
        self.audit.close()


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group("cases")
def cases() -> None:
    """Cases: the register of investigations face search, trajectories and exports work under."""


@cases.command("list")
@click.option("--status", type=click.Choice(["open", "closed"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per case.")
@click.pass_context
def list_(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """Every case (newest first): number, status, type, unit, owner, members, title."""
    desk = _Desk(ctx)
    for case in desk.cases.list():
        if status and case.status.value != status:
            continue
        if as_json:
            click.echo(json.dumps(case.public(), ensure_ascii=False))
            continue
        members = ",".join(f"{m.user}:{m.role.value}" for m in case.members)
        click.echo(f"{case.number:24} {case.status.value:6} {case.case_type:14} {case.unit:10} {case.owner:12} "
                   f"{members:30} {case.title}")


@cases.command("show")
@click.argument("number")
@click.pass_context
def show(ctx: click.Context, number: str) -> None:
    """A case record with its history and items, as JSON."""
    desk = _Desk(ctx)
    case = desk.cases.get(number)
    if case is None:
        fail(f"no case {number!r}")
        return
    items = [i.public() for i in desk.workspace.items(number)]
    click.echo(json.dumps({**case.public(), "items": items}, ensure_ascii=False, indent=1))


@cases.command("open")
@click.argument("number")
@click.option("--as", "as_user", required=True, help="The Tubeline user who opens (and leads) the case.")
@click.option("--title", required=True)
@click.option("--type", "case_type", type=click.Choice(CASE_TYPES), required=True)
@click.option("--unit", required=True, help="The unit handling the case (GB/T 2260 code).")
@click.option("--legal-basis", required=True, help="The legal basis for processing.")
@click.option("--purpose", required=True, help="What the case's searches are for.")
@click.option("--member", "members", multiple=True, help="USER or USER:ROLE (repeat).")
@click.pass_context
def open_(ctx: click.Context, number: str, as_user: str, title: str, case_type: str, unit: str, legal_basis: str,
          purpose: str, members: tuple[str, ...]) -> None:
    """Open a case."""
    from pipeline.cases.records import CaseError, MemberRole

    desk = _Desk(ctx)
    actor = desk.actor(as_user)
    listed: dict[str, MemberRole] = {}
    for text in members:
        name, _, role = text.partition(":")
        if desk.users.get(name) is None:
            fail(f"no user {name!r}")
        try:
            listed[name] = MemberRole(role or "investigator")
        except ValueError:
            fail(f"member role {role!r} is not one of {', '.join(MEMBER_ROLES)}")
    try:
        case = desk.cases.open(number=number, title=title, case_type=case_type, unit=unit, legal_basis=legal_basis,
                               purpose=purpose, owner=actor.name, members=listed)
    except (CaseError, ValueError) as exc:
        fail(str(exc))
        return
    desk.record("cases.open", actor, number, {"title": title, "case_type": case_type, "unit": unit,
                                               "members": sorted(listed)})
    click.echo(f"case {case.number} opened by {actor.name}: {len(case.members)} member(s)")


@cases.command("member")
@click.argument("number")
@click.argument("user")
@click.option("--role", type=click.Choice([*MEMBER_ROLES, "remove"]), required=True)
@click.option("--as", "as_user", required=True, help="A lead of the case, or an admin.")
@click.pass_context
def member(ctx: click.Context, number: str, user: str, role: str, as_user: str) -> None:
    """Add a member, change their role, or remove them (--role remove)."""
    from pipeline.cases.records import CaseError, MemberRole, can_manage

    desk = _Desk(ctx)
    actor = desk.actor(as_user)
    case = desk.cases.get(number)
    if case is None or not can_manage(case, actor.name, actor.role.value == "admin"):
        desk.record("cases.member", actor, number, {"user": user, "role": role}, "refused", "not a lead or admin")
        fail(f"{actor.name} is not a lead of case {number!r} nor an admin")
    if role != "remove" and desk.users.get(user) is None:
        fail(f"no user {user!r}")
    try:
        desk.cases.set_member(number, user, None if role == "remove" else MemberRole(role), by=actor.name)
    except CaseError as exc:
        fail(str(exc))
    desk.record("cases.member", actor, number, {"user": user, "role": role})
    click.echo(f"case {number}: {user} {'removed' if role == 'remove' else 'is ' + role}")


def _status_change(ctx: click.Context, number: str, as_user: str, reason: str, action: str) -> None:
    from pipeline.cases.records import CaseError, can_manage

    desk = _Desk(ctx)
    actor = desk.actor(as_user)
    case = desk.cases.get(number)
    if case is None or not can_manage(case, actor.name, actor.role.value == "admin"):
        desk.record(f"cases.{action}", actor, number, {"reason": reason}, "refused", "not a lead or admin")
        fail(f"{actor.name} is not a lead of case {number!r} nor an admin")
    change = desk.cases.close if action == "close" else desk.cases.reopen
    try:
        change(number, by=actor.name, reason=reason)
    except CaseError as exc:
        fail(str(exc))
    desk.record(f"cases.{action}", actor, number, {"reason": reason})
    click.echo(f"case {number} {'closed' if action == 'close' else 'reopened'}")


@cases.command("close")
@click.argument("number")
@click.option("--as", "as_user", required=True)
@click.option("--reason", required=True)
@click.pass_context
def close(ctx: click.Context, number: str, as_user: str, reason: str) -> None:
    """Close a case: its face searches, trajectories, exports and evidence work end with it."""
    _status_change(ctx, number, as_user, reason, "close")


@cases.command("reopen")
@click.argument("number")
@click.option("--as", "as_user", required=True)
@click.option("--reason", required=True)
@click.pass_context
def reopen(ctx: click.Context, number: str, as_user: str, reason: str) -> None:
    """Reopen a closed case."""
    _status_change(ctx, number, as_user, reason, "reopen")
