"""UI login sessions and signed media links, both shared by every API replica through the object store.

Sessions: the browser holds a random 256-bit session ID in an HttpOnly, SameSite=Strict cookie;
the store holds only its SHA-256 (``auth/sessions/{sha256}.json``: user, the user's epoch, expiry),
so a copy of the store does not yield live sessions. Logging out deletes the record; changing a
password or disabling a user raises the user's epoch, which ends every older session. The CSRF
token of a session is an HMAC of its ID: the server recomputes it, the page gets it from
``GET /api/session`` (readable only same-origin) and sends it back in ``X-CSRF-Token``.

Media links: thumbnails and crops in search results are fetched through
``/api/media/{token}``, where the token names the object key, the user it was issued to, the camera the
object belongs to, the permission needed to see it and an expiry, signed with HMAC-SHA256 under a
deployment key kept at ``auth/media-key.json``. A link works only for the user it was issued to, and only
while that user still has the permission and the camera in scope (checked again on every fetch).

Device cookies: a successful login also leaves a signed ``tubeline_device`` cookie naming the user (same
key, its own purpose tag). When a user name is under attack from many addresses, a browser holding that
user's device cookie may still log in (:mod:`workers.api.limits`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

SESSIONS_PREFIX = "auth/sessions"
MEDIA_KEY = "auth/media-key.json"


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def csrf_token(sid: str) -> str:
    return hmac.new(sid.encode(), b"tubeline-csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    sid: str
    user: str
    epoch: int
    created_at: datetime
    expires_at: datetime

    @property
    def csrf(self) -> str:
        return csrf_token(self.sid)


class SessionStore:
    """Create, look up and end sessions (one small object per session)."""

    def __init__(self, store: ObjectStore, ttl_s: int) -> None:
        self.store = store
        self.ttl_s = ttl_s

    def _key(self, sid: str) -> str:
        return f"{SESSIONS_PREFIX}/{_digest(sid)}.json"

    def create(self, user: str, epoch: int) -> Session:
        sid = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        session = Session(sid, user, epoch, now, now + timedelta(seconds=self.ttl_s))
        doc = {"user": user, "epoch": epoch, "created_at": now.isoformat(),
               "expires_at": session.expires_at.isoformat()}
        self.store.put(self._key(sid), json.dumps(doc).encode(), content_type="application/json")
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 128:
            return None
        try:
            doc = json.loads(self.store.get(self._key(sid)))
            session = Session(sid, str(doc["user"]), int(doc["epoch"]), datetime.fromisoformat(doc["created_at"]),
                              datetime.fromisoformat(doc["expires_at"]))
        except (ObjectNotFound, ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= datetime.now(UTC):
            self.store.delete(self._key(sid))
            return None
        return session

    def end(self, sid: str) -> None:
        self.store.delete(self._key(sid))

    def sweep(self) -> int:
        """Delete expired session records; returns how many."""
        removed = 0
        now = datetime.now(UTC)
        for info in list(self.store.list(SESSIONS_PREFIX + "/")):
            try:
                doc = json.loads(self.store.get(info.key))
                expired = datetime.fromisoformat(doc["expires_at"]) <= now
            except (ObjectNotFound, ValueError, KeyError, TypeError):
                expired = True
            if expired:
                self.store.delete(info.key)
                removed += 1
        return removed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class MediaGrant:
    """What a valid media link grants: one object of one camera, to a user holding ``permission``."""

    key: str
    camera_id: str
    permission: str


class MediaSigner:
    """Signs media links and device cookies; the key is created in the store on first use."""

    def __init__(self, store: ObjectStore, ttl_s: int) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def _load(self, *, reload: bool = False) -> bytes:
        with self._lock:
            if self._key is not None and not reload:
                return self._key
            try:
                self._key = _unb64(json.loads(self.store.get(MEDIA_KEY))["key"])
            except (ObjectNotFound, ValueError, KeyError):
                fresh = secrets.token_bytes(32)
                self.store.put(MEDIA_KEY, json.dumps({"key": _b64(fresh)}).encode(), content_type="application/json")
                # Two replicas may create it at once: use whatever the store kept.
                self._key = _unb64(json.loads(self.store.get(MEDIA_KEY))["key"])
            return self._key

    def _mac(self, key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:20])

    def _signed(self, fields: list[object]) -> str:
        payload = _b64(json.dumps(fields, ensure_ascii=False).encode())
        return f"{payload}.{self._mac(self._load(), payload)}"

    def _opened(self, token: str) -> list[object] | None:
        payload, _, mac = (token or "").partition(".")
        if not payload or not mac or len(token) > 8192:
            return None
        valid = hmac.compare_digest(mac, self._mac(self._load(), payload))
        if not valid:  # the key may have been replaced by another replica's first write
            valid = hmac.compare_digest(mac, self._mac(self._load(reload=True), payload))
        if not valid:
            return None
        try:
            fields = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            return None
        return fields if isinstance(fields, list) else None

    def sign(self, user: str, object_key: str, camera_id: str, permission: str) -> str:
        return self._signed(["media", user, object_key, camera_id, permission, int(time.time()) + self.ttl_s])

    def verify(self, token: str, user: str) -> MediaGrant | None:
        """What ``token`` grants when it is valid, unexpired and was issued to ``user``; else None."""
        fields = self._opened(token)
        if fields is None or len(fields) != 6 or fields[0] != "media":
            return None
        _, owner, object_key, camera_id, permission, expires = fields
        if not isinstance(expires, int) or not hmac.compare_digest(str(owner), user) or expires < time.time():
            return None
        return MediaGrant(str(object_key), str(camera_id), str(permission))

    def device_cookie(self, user: str, days: int) -> str:
        return self._signed(["device", user, int(time.time()) + days * 86400])

    def device_user(self, cookie: str | None) -> str | None:
        """The user a valid, unexpired device cookie was issued to; else None."""
        fields = self._opened(cookie or "")
        if fields is None or len(fields) != 3 or fields[0] != "device":
            return None
        _, owner, expires = fields
        if not isinstance(expires, int) or expires < time.time():
            return None
        return str(owner)
