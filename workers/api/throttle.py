"""Login throttling that cannot be turned against others, kept in the object store so every API replica and
the CLI (``tubeline users unlock``) share it.

``auth/throttle/{sha256 of the name}.json`` holds the recent failed logins of one user name, each with its
client address and time. Logins are refused, with 429 and ``Retry-After``:

* for a **user name + client address pair** after ``api.login_max_failures`` failures within
  ``api.login_lockout_s`` — an attacker guessing from one address locks only themselves out of that name,
  never the same user elsewhere and never other users behind the same address (a NAT, a proxy);
* for a **user name from any client without that user's device cookie** after
  ``api.login_max_failures_per_name`` failures from all addresses together (guessing spread over many
  addresses). A browser that has logged in as that user before holds a signed device cookie and is not
  refused by this limit, so a distributed attack cannot lock the real user out of a browser they use.

Unknown user names are counted exactly like known ones (the answers must not tell which names exist), but a
name's failures only ever count against that name: failures with made-up names lock no real user.
``tubeline users unlock NAME`` deletes the name's record. Counts are read-modify-write on the store: replicas
racing on the same name may lose a count (the limit is approximate across replicas, exact within one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

THROTTLE_PREFIX = "auth/throttle"
MAX_KEPT = 1000  # failures kept per name (newest); more only matter as "over the limit", which 1000 already is


def load_doc(store: ObjectStore, key: str) -> dict[str, Any]:
    try:
        doc = json.loads(store.get(key))
    except (ObjectNotFound, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def save_doc(store: ObjectStore, key: str, doc: dict[str, Any]) -> None:
    store.put(key, json.dumps(doc, separators=(",", ":")).encode(), content_type="application/json")


def retry_after(times: Iterable[float], limit: int, window_s: float, now: float) -> int | None:
    """Seconds until fewer than ``limit`` of ``times`` lie within the window; None when already fewer."""
    recent = sorted(t for t in times if now - t < window_s)
    if len(recent) < limit:
        return None
    # the (len - limit + 1)-th oldest must leave the window before one more attempt is allowed
    leaving = recent[len(recent) - limit]
    return max(1, math.ceil(leaving + window_s - now))


@dataclass(frozen=True)
class Refusal:
    """Why a login is refused for now, and for how long."""

    reason: str
    retry_after_s: int


class LoginThrottle:
    """Failed logins per user name (and per name + address pair), in the store."""

    def __init__(self, store: ObjectStore, *, max_per_pair: int, max_per_name: int, window_s: float) -> None:
        self.store = store
        self.max_per_pair = max_per_pair
        self.max_per_name = max_per_name
        self.window_s = window_s
        self._lock = threading.Lock()

    @staticmethod
    def key(name: str) -> str:
        return f"{THROTTLE_PREFIX}/{hashlib.sha256(name.encode()).hexdigest()[:40]}.json"

    def _failures(self, name: str, now: float) -> list[tuple[str, float]]:
        doc = load_doc(self.store, self.key(name))
        out = []
        for item in doc.get("failures", []):
            try:
                client, at = str(item[0]), float(item[1])
            except (TypeError, ValueError, IndexError):
                continue
            if now - at < self.window_s:
                out.append((client, at))
        return out

    def check(self, name: str, client: str, *, trusted_device: bool) -> Refusal | None:
        """A refusal when ``name`` may not try to log in from ``client`` now; None when it may."""
        now = time.time()
        failures = self._failures(name, now)
        pair = retry_after((t for c, t in failures if c == client), self.max_per_pair, self.window_s, now)
        if pair is not None:
            return Refusal("too many failed logins for this user from this address", pair)
        if not trusted_device:
            spread = retry_after((t for _, t in failures), self.max_per_name, self.window_s, now)
            if spread is not None:
                return Refusal("too many failed logins for this user; log in from a browser you used before, "
                               "or ask an admin to unlock the user", spread)
        return None

    def failed(self, name: str, client: str) -> None:
        now = time.time()
        with self._lock:
            failures = [*self._failures(name, now), (client, now)][-MAX_KEPT:]
            save_doc(self.store, self.key(name), {"name": name[:64], "failures": [[c, round(t, 3)] for c, t in failures]})

    def succeeded(self, name: str, client: str) -> None:
        """Forget this pair's failures (the others stay: a success elsewhere proves nothing about them)."""
        now = time.time()
        with self._lock:
            failures = self._failures(name, now)
            kept = [(c, t) for c, t in failures if c != client]
            if len(kept) == len(failures):
                return
            if kept:
                save_doc(self.store, self.key(name), {"name": name[:64], "failures": [[c, t] for c, t in kept]})
            else:
                self.store.delete(self.key(name))

    def unlock(self, name: str) -> int:
        """Forget every failed login of ``name``; returns how many were still counted."""
        with self._lock:
            count = len(self._failures(name, time.time()))
            self.store.delete(self.key(name))
        if count:
            log.info("login throttle of %s cleared (%d recent failures)", name[:64], count)
        return count

    def sweep(self) -> int:
        """Delete records whose failures have all left the window; returns how many."""
        removed = 0
        now = time.time()
        for info in list(self.store.list(THROTTLE_PREFIX + "/")):
            doc = load_doc(self.store, info.key)
            times = [float(f[1]) for f in doc.get("failures", []) if isinstance(f, list) and len(f) == 2]
            if not any(now - t < self.window_s for t in times):
                self.store.delete(info.key)
                removed += 1
        return removed
