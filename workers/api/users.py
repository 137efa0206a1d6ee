"""Users, roles, camera scopes, password hashes and API tokens, kept in the object store.

Layout (every API replica reads the same objects, so they share users)::

    auth/users/{name}.json        one user: role, scope, scrypt password hash, token IDs
    auth/tokens/{token_id}.json   one API token: its owner, the SHA-256 of its secret, its optional expiry

Passwords are hashed with scrypt (standard library, N=2^14, r=8, p=1, 16-byte random salt per
user); the parameters travel in the hash string, so they can be raised later without breaking old
hashes. API tokens look like ``tl_<id>_<secret>``: the ID finds the token record, the 256-bit
random secret is stored only as its SHA-256 (a slow KDF adds nothing for random secrets) and is
shown once, when the token is made. A token may carry an expiry (``tubeline users token NAME --expires
30d``); past it the token no longer authenticates. All comparisons are constant-time. Nothing here logs a
password, a token or a hash.

A user's role, scope and disabled flag are read from the store on every request (and every few seconds by an
open stream), so ``tubeline users set`` takes effect at once on every replica.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

USERS_PREFIX = "auth/users"
TOKENS_PREFIX = "auth/tokens"
USER_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{1,31}$"
CAMERA_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
UNIT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}$"
MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "tl_"

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 1, 32
_TOKEN_RE = re.compile(r"^tl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class Role(StrEnum):
    ADMIN = "admin"
    INVESTIGATOR = "investigator"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class Permission(StrEnum):
    SEARCH = "search"  # plates and vehicles
    SEARCH_FACES = "search_faces"
    TRAJECTORY = "trajectory"
    VIEW = "view"  # sighting detail and crops of plate and vehicle sightings
    EXPORT = "export"  # clips
    SYNOPSIS = "synopsis"  # request and watch video synopses of cameras in scope
    ALERTS = "alerts"
    LIVE = "live"  # watch live video of cameras in scope (audited: who, which camera, when, how long)
    RECORDINGS = "recordings"  # watch recorded video of cameras in scope (a view, audited; not an export)
    CAMERAS = "cameras"
    AUDIT = "audit"
    USERS = "users"
    PTZ = "ptz"  # move PTZ cameras, presets, home position
    ADMINISTER = "administer"  # cameras, zones, lines, rules and hotlists (admins)
    CASES = "cases"  # open cases, work in the cases one is a member of (the case register decides what else)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.INVESTIGATOR: frozenset(
        {Permission.SEARCH, Permission.SEARCH_FACES, Permission.TRAJECTORY, Permission.VIEW, Permission.EXPORT,
         Permission.SYNOPSIS, Permission.ALERTS, Permission.LIVE, Permission.RECORDINGS, Permission.CAMERAS, Permission.CASES}
    ),
    Role.OPERATOR: frozenset({Permission.SEARCH, Permission.VIEW, Permission.SYNOPSIS, Permission.ALERTS,
                              Permission.LIVE, Permission.RECORDINGS, Permission.CAMERAS, Permission.PTZ}),
    Role.AUDITOR: frozenset({Permission.AUDIT, Permission.CAMERAS}),
}
"""What each role may do. Operators watch alerts, steer PTZ cameras, check plates and vehicles and review synopses; they never
run face search, trajectories or exports (so a synopsis click shows them the object, not a clip export), but
watch live and recorded video of their cameras. Auditors read the audit log and the camera list, and search nothing."""

UserName = Annotated[str, StringConstraints(pattern=USER_NAME_PATTERN)]
CameraRef = Annotated[str, StringConstraints(pattern=CAMERA_ID_PATTERN)]
UnitRef = Annotated[str, StringConstraints(pattern=UNIT_PATTERN)]


class Scope(BaseModel):
    """Which cameras a user sees: every camera, or listed cameras plus cameras of listed units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    all_cameras: bool = Field(False, description="Every camera (overrides the lists).")
    cameras: tuple[CameraRef, ...] = Field((), description="Camera IDs.", max_length=100_000)
    units: tuple[UnitRef, ...] = Field((), description="Administrative units (a unit covers its sub-units).",
                                       max_length=10_000)

    def describe(self) -> str:
        if self.all_cameras:
            return "all cameras"
        parts = []
        if self.units:
            parts.append("units " + ",".join(self.units))
        if self.cameras:
            parts.append("cameras " + ",".join(self.cameras))
        return "; ".join(parts) or "no cameras"


class TokenRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    label: str = ""
    created_at: datetime
    expires_at: datetime | None = None


class User(BaseModel):
    """One user record (``auth/users/{name}.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: UserName
    role: Role
    scope: Scope = Field(default_factory=Scope)
    password_hash: str = Field("", repr=False)
    tokens: tuple[TokenRef, ...] = ()
    disabled: bool = False
    created_at: datetime
    epoch: int = Field(0, description="Raised on password change or disable: older sessions end.")

    def can(self, permission: Permission) -> bool:
        return not self.disabled and permission in ROLE_PERMISSIONS[self.role]

    @property
    def permissions(self) -> list[str]:
        return sorted(p.value for p in ROLE_PERMISSIONS[self.role])

    def public(self) -> dict[str, object]:
        """What the API shows about a user (no hashes)."""
        return {
            "name": self.name,
            "role": self.role.value,
            "scope": self.scope.model_dump(mode="json"),
            "permissions": self.permissions,
            "tokens": [t.model_dump(mode="json") for t in self.tokens],
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
        }


class UserError(ValueError):
    """A user operation was refused (exists, unknown, weak password)."""


# -- passwords and tokens -------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = _SCRYPT_N) -> str:
    """``scrypt$N$r$p$salt$hash`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_LEN,
                            maxmem=256 * 1024 * 1024)
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against when the user does not exist, so both paths cost one scrypt."""
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a ``hash_password`` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected), maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
        raise UserError(msg)


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def _token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- the store ------------------------------------------------------------------------------------
class UserStore:
    """CRUD and authentication over user and token records in an object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def key(name: str) -> str:
        return f"{USERS_PREFIX}/{name}.json"

    def get(self, name: str) -> User | None:
        if not re.fullmatch(USER_NAME_PATTERN, name or ""):
            return None
        try:
            return User.model_validate_json(self.store.get(self.key(name)))
        except ObjectNotFound:
            return None

    def put(self, user: User) -> None:
        data = json.dumps(user.model_dump(mode="json"), indent=1).encode()
        self.store.put(self.key(user.name), data, content_type="application/json")

    def list(self) -> list[User]:
        users = []
        for info in self.store.list(USERS_PREFIX + "/"):
            try:
                users.append(User.model_validate_json(self.store.get(info.key)))
            except (ObjectNotFound, ValueError):
                log.warning("skipping unreadable user record %s", info.key)
        return sorted(users, key=lambda u: u.name)

    def any_user(self) -> bool:
        return next(iter(self.store.list(USERS_PREFIX + "/")), None) is not None

    def add(self, name: str, role: Role | str, password: str | None, scope: Scope | None = None) -> User:
        """Create a user; raises UserError when the name is taken or the password is too short."""
        if not re.fullmatch(USER_NAME_PATTERN, name):
            msg = f"user names match {USER_NAME_PATTERN}"
            raise UserError(msg)
        if self.get(name) is not None:
            msg = f"user {name!r} already exists"
            raise UserError(msg)
        if password is not None:
            check_password_strength(password)
        user = User(
            name=name,
            role=Role(role),
            scope=scope or Scope(),
            password_hash=hash_password(password) if password else "",
            created_at=utc_now(),
        )
        self.put(user)
        log.info("user %s created with role %s", name, user.role.value)
        return user

    def set_password(self, name: str, password: str) -> User:
        user = self._require(name)
        check_password_strength(password)
        user = user.model_copy(update={"password_hash": hash_password(password), "epoch": user.epoch + 1})
        self.put(user)
        return user

    def remove(self, name: str) -> bool:
        user = self.get(name)
        if user is None:
            return False
        for token in user.tokens:
            self.store.delete(f"{TOKENS_PREFIX}/{token.id}.json")
        self.store.delete(self.key(name))
        log.info("user %s removed", name)
        return True

    def _require(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            msg = f"no user {name!r}"
            raise UserError(msg)
        return user

    def create_token(self, name: str, label: str = "", expires_at: datetime | None = None) -> str:
        """A new API token for ``name`` (valid until ``expires_at`` when given); the returned string is the only
        copy of the secret."""
        user = self._require(name)
        now = utc_now()
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
            msg = "a token's expiry must be a future time with a time zone"
            raise UserError(msg)
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        record = {"id": token_id, "user": name, "sha256": _token_digest(secret), "created_at": now.isoformat(),
                  "expires_at": expires_at.isoformat() if expires_at else None}
        self.store.put(f"{TOKENS_PREFIX}/{token_id}.json", json.dumps(record).encode(), content_type="application/json")
        ref = TokenRef(id=token_id, label=label[:100], created_at=now, expires_at=expires_at)
        self.put(user.model_copy(update={"tokens": (*user.tokens, ref)}))
        return f"{TOKEN_PREFIX}{token_id}_{secret}"

    def update(self, name: str, *, role: Role | str | None = None, scope: Scope | None = None,
               disabled: bool | None = None) -> User:
        """Change a user's role, scope or disabled flag (disabling also ends their sessions)."""
        user = self._require(name)
        changes: dict[str, object] = {}
        if role is not None:
            changes["role"] = Role(role)
        if scope is not None:
            changes["scope"] = scope
        if disabled is not None and disabled != user.disabled:
            changes["disabled"] = disabled
            changes["epoch"] = user.epoch + 1
        user = user.model_copy(update=changes)
        self.put(user)
        log.info("user %s updated (%s)", name, ", ".join(sorted(changes)) or "no change")
        return user

    def revoke_token(self, name: str, token_id: str) -> bool:
        user = self._require(name)
        kept = tuple(t for t in user.tokens if t.id != token_id)
        if len(kept) == len(user.tokens):
            return False
        self.store.delete(f"{TOKENS_PREFIX}/{token_id}.json")
        self.put(user.model_copy(update={"tokens": kept}))
        return True

    def authenticate_password(self, name: str, password: str) -> User | None:
        """The user when the password is right and the user is enabled; None otherwise (same cost either way)."""
        user = self.get(name)
        ok = verify_password(password, user.password_hash if user and user.password_hash else _dummy_hash())
        if user is None or not user.password_hash or user.disabled or not ok:
            return None
        return user

    def authenticate_token(self, token: str) -> User | None:
        match = _TOKEN_RE.fullmatch(token or "")
        if match is None:
            return None
        token_id, secret = match.groups()
        try:
            record = json.loads(self.store.get(f"{TOKENS_PREFIX}/{token_id}.json"))
        except (ObjectNotFound, ValueError):
            return None
        if not hmac.compare_digest(str(record.get("sha256", "")), _token_digest(secret)):
            return None
        if _expired(record.get("expires_at")):
            return None
        user = self.get(str(record.get("user", "")))
        if user is None or user.disabled or all(t.id != token_id for t in user.tokens):
            return None
        return user


def _expired(expires_at: object) -> bool:
    """True when a token record's expiry has passed (or cannot be read: fail closed)."""
    if expires_at is None:
        return False
    try:
        when = datetime.fromisoformat(str(expires_at))
    except ValueError:
        return True
    return when.tzinfo is None or when <= utc_now()


def bootstrap_admin(store: ObjectStore, name: str = "admin") -> str | None:
    """First-run bootstrap: when no user exists, create ``name`` (admin, all cameras) with a random password.

    Returns the password for the caller to show ONCE on the console (never log it), or None when users
    already exist (or another replica bootstrapped at the same moment and its record won).
    """
    users = UserStore(store)
    if users.any_user():
        return None
    password = generate_password()
    user = users.add(name, Role.ADMIN, password, Scope(all_cameras=True))
    stored = users.get(name)
    if stored is None or not hmac.compare_digest(stored.password_hash, user.password_hash):
        return None
    return password
