"""The installation's Ed25519 keys that sign evidence manifests.

Keys live in a file (``cases.evidence_key_file``, mode 0600), one per line: ``<key id> <base64 of the 32-byte
private seed>``, the current (signing) key first; older keys stay below it so packages they signed still verify
as this installation's. The file is generated on first use where ``cases.create_key_file`` allows, like the
registry's key file (:mod:`pipeline.sealing`). :meth:`EvidenceKeys.rotate` puts a new key first.

A public key's fingerprint is the first 16 bytes of its SHA-256 in hex groups; it is printed in every
chain-of-custody report and by ``tubeline evidence key``, so a court or another agency can be given the public
key (or its fingerprint) through another channel and check a package without trusting the package itself.
Nothing here logs or prints a private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

ALGORITHM = "Ed25519"
_KEY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class SigningError(Exception):
    """The keys cannot be read or written (the message names the file and line, never a key)."""


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: bytes) -> str:
    digest = hashlib.sha256(public_key).hexdigest()[:32]
    return ":".join(digest[i:i + 4] for i in range(0, 32, 4))


def verify_signature(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s Ed25519 signature of ``data``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return None


class EvidenceKeys:
    """The key file: sign with the current key; every key's public half for verification."""

    def __init__(self, key_file: str | Path, *, create: bool = True) -> None:
        self.key_file = Path(key_file)
        self.create = create
        self._lock = threading.Lock()

    def _read(self) -> list[tuple[str, Ed25519PrivateKey]]:
        keys: list[tuple[str, Ed25519PrivateKey]] = []
        for number, line in enumerate(self.key_file.read_text(encoding="utf-8").splitlines(), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            key_id, _, value = text.partition(" ")
            seed = unb64(value.strip())
            if not _KEY_ID.match(key_id) or seed is None or len(seed) != 32 or any(k == key_id for k, _ in keys):
                msg = f"{self.key_file}:{number}: expected '<key id> <base64 of a 32-byte Ed25519 seed>' (unique IDs)"
                raise SigningError(msg)
            keys.append((key_id, Ed25519PrivateKey.from_private_bytes(seed)))
        return keys

    def _write(self, keys: list[tuple[str, bytes]], *, replace: bool) -> None:
        self.key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = [f"# Tubeline evidence signing keys, written {stamp}: '<key id> <base64 Ed25519 seed>', current first.",
                 "# Keep older keys: packages they signed verify as this installation's only while they are here.",
                 *(f"{kid} {b64(seed)}" for kid, seed in keys)]
        tmp = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            if replace:
                os.replace(tmp, self.key_file)
            else:
                try:
                    os.link(tmp, self.key_file)  # another process that created it first wins
                except FileExistsError:
                    pass
        finally:
            tmp.unlink(missing_ok=True)

    def _keys(self, *, create: bool) -> list[tuple[str, Ed25519PrivateKey]]:
        if not self.key_file.exists():
            if not create:
                return []
            self._write([("e1", secrets.token_bytes(32))], replace=False)
            log.warning("generated an evidence signing key in %s (mode 0600): back it up; packages it signs verify "
                        "as this installation's only while it is kept", self.key_file)
        if self.key_file.stat().st_mode & 0o077:
            log.warning("key file %s is readable by others; chmod 600 it", self.key_file)
        return self._read()

    def current(self) -> tuple[str, Ed25519PrivateKey]:
        with self._lock:
            keys = self._keys(create=self.create)
        if not keys:
            msg = f"no evidence signing key: {self.key_file} does not exist (cases.create_key_file is off)"
            raise SigningError(msg)
        return keys[0]

    def public_keys(self) -> dict[str, bytes]:
        """Every key's public half by key ID (nothing when there is no key file)."""
        with self._lock:
            return {kid: public_bytes(k.public_key()) for kid, k in self._keys(create=False)}

    def sign(self, data: bytes) -> tuple[str, bytes, bytes]:
        """(key ID, public key, signature) of ``data`` under the current key."""
        key_id, key = self.current()
        return key_id, public_bytes(key.public_key()), key.sign(data)

    def rotate(self) -> str:
        """Put a new key first (older ones stay for verification); its ID."""
        with self._lock:
            old = self._keys(create=False)
            taken = {kid for kid, _ in old}
            number = 1 + max((int(k[1:]) for k in taken if re.fullmatch(r"e[0-9]{1,9}", k)), default=0)
            new_id = f"e{number}"
            seeds = [(kid, k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption())) for kid, k in old]
            self._write([(new_id, secrets.token_bytes(32)), *seeds], replace=True)
        log.warning("evidence signing key rotated: %s now signs; older keys kept in %s", new_id, self.key_file)
        return new_id
