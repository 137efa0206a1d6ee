"""Secrets at rest: AES-256-GCM envelopes, the keyring that seals and opens them, and sealed values.

An envelope is one string, ``enc:v1:<key id>:<base64 of nonce (12 bytes) + ciphertext + tag>``.
Its associated data binds the version, the key ID and a *context* chosen by the caller (the camera
registry uses ``camera/<id>/password``), so a value that was altered, relabelled with another key
ID, or copied into another camera's record fails to open.

Keys (32 bytes each) come from the configuration (:meth:`pipeline.config.secrets.SecretsConfig.keyring`
builds the keyring; this module does not know the configuration tree): ``secrets.key`` with
``secrets.key_id`` plus ``secrets.old_keys``, or else ``secrets.key_file`` (lines ``<key id> <base64
key>``, current first), which is generated on first use with mode 0600 when ``secrets.create_key_file``
allows. A file-backed keyring re-reads the file when it changes, so a
rotation (:meth:`Keyring.rotate`) reaches running processes. Old keys only decrypt.

Nothing here logs or raises a message that holds a secret, a key or ciphertext: messages name the
caller's label (a camera ID), key IDs and file paths only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

log = logging.getLogger(__name__)

ENVELOPE_PREFIX = "enc:"
VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_HINT = "set secrets.key (TUBELINE_SECRETS__KEY) or secrets.key_file to the key the registry was written with"


class SealingError(Exception):
    """A value cannot be sealed or opened. The message names the value's owner and key ID, nothing secret."""


class KeyUnavailable(SealingError):
    """The key needed is not configured in this process."""


class SealBroken(SealingError):
    """The envelope does not open: wrong key, altered, malformed, or sealed for another record."""


class SecretUnavailable(SealingError):
    """A sealed value was read in a process that opened the registry without a key."""


def is_sealed(value: object) -> TypeGuard[str]:
    """True for a string in the envelope format (any version)."""
    return isinstance(value, str) and value.startswith(ENVELOPE_PREFIX)


@dataclass(frozen=True)
class Envelope:
    """The parts of ``enc:<version>:<key id>:<base64 blob>``."""

    version: str
    key_id: str
    blob: bytes

    @classmethod
    def parse(cls, text: str, *, what: str) -> Envelope:
        parts = text.split(":", 3)
        if len(parts) != 4 or parts[0] + ":" != ENVELOPE_PREFIX:
            msg = f"{what}: not an encrypted value"
            raise SealBroken(msg)
        _, version, key_id, body = parts
        if version != VERSION:
            msg = f"{what}: encrypted value of unknown version {version[:8]!r} (this build reads {VERSION})"
            raise SealBroken(msg)
        if not _KEY_ID_RE.match(key_id):
            msg = f"{what}: encrypted value with a malformed key ID"
            raise SealBroken(msg)
        try:
            blob = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            msg = f"{what}: encrypted value (key ID {key_id!r}) is not valid base64"
            raise SealBroken(msg) from None
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            msg = f"{what}: encrypted value (key ID {key_id!r}) is truncated"
            raise SealBroken(msg)
        return cls(version, key_id, blob)

    def __str__(self) -> str:
        return f"{ENVELOPE_PREFIX}{self.version}:{self.key_id}:{base64.b64encode(self.blob).decode('ascii')}"


def _aad(version: str, key_id: str, context: str) -> bytes:
    return f"tubeline:{version}:{key_id}:{context}".encode()


def decode_key(text: str) -> bytes | None:
    """The key bytes of a base64 (standard or URL-safe) text, or None when it is not 32 bytes of base64."""
    compact = "".join(text.split())
    for altchars in (None, b"-_"):
        try:
            raw = base64.b64decode(compact, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == KEY_BYTES:
            return raw
    return None


class SealedSecret(SecretStr):
    """A secret this process holds only in sealed form (it opened the registry without a key).

    It prints masked, compares by envelope, and is written back unchanged by the registry; reading
    it raises :class:`SecretUnavailable` with a message that names its owner and key ID.
    """

    def __init__(self, envelope: str, *, context: str, what: str) -> None:
        super().__init__(envelope)
        self.context = context
        self.what = what

    @property
    def envelope(self) -> str:
        return self._secret_value

    @property
    def key_id(self) -> str:
        parts = self._secret_value.split(":", 3)
        return parts[2] if len(parts) == 4 and _KEY_ID_RE.match(parts[2]) else "?"

    def get_secret_value(self) -> str:
        msg = (f"{self.what}: the password is encrypted with registry key {self.key_id!r} and this process "
               f"opened the registry without keys; {_HINT}")
        raise SecretUnavailable(msg)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealedSecret) and other._secret_value == self._secret_value

    def __hash__(self) -> int:
        return hash(self._secret_value)


class Keyring:
    """Keys by ID, the current one seals; any of them opens. See the module docstring.

    ``key_file`` makes the keyring file-backed: its keys join ``keys`` (retired ones from the
    configuration) and its first line is the current key; with ``create`` a missing file is
    generated on the first :meth:`seal`.
    """

    def __init__(self, keys: Mapping[str, bytes] | None = None, current: str | None = None, *,
                 key_file: str | Path | None = None, create: bool = False) -> None:
        self._base = dict(keys or {})
        for key_id, key in self._base.items():
            _check_key(key_id, key)
        if current is not None and current not in self._base:
            msg = f"current key ID {current!r} has no key"
            raise KeyUnavailable(msg)
        self._keys = dict(self._base)
        self._current = current
        self.key_file = Path(key_file) if key_file is not None else None
        self.create = create
        self._file_stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Keyring(current={self._current!r}, key_ids={sorted(self._keys)!r}, key_file={self.key_file!r})"

    # -- keys -------------------------------------------------------------------------------------
    @property
    def current_id(self) -> str | None:
        """ID of the key that seals (None while a file-backed keyring has no file yet)."""
        with self._lock:
            self._refresh(create=False)
            return self._current

    @property
    def key_ids(self) -> list[str]:
        with self._lock:
            self._refresh(create=False)
            return sorted(self._keys)

    def ensure_current(self) -> str:
        """ID of the sealing key, generating the key file first where allowed."""
        with self._lock:
            self._refresh(create=self.create)
            if self._current is None:
                raise KeyUnavailable(self._no_current_key_message())
            return self._current

    def rotate(self) -> str:
        """File-backed only: put a new random key first in the key file (older keys stay); its ID."""
        if self.key_file is None:
            msg = ("the current key comes from secrets.key: to rotate, set a new secrets.key and "
                   "secrets.key_id and move the old key into secrets.old_keys")
            raise SealingError(msg)
        with self._lock:
            self._refresh(create=self.create)
            file_keys = self._read_file() if self.key_file.exists() else []
            taken = {kid for kid, _ in file_keys} | set(self._base)
            number = 1 + max((int(k[1:]) for k in taken if re.fullmatch(r"k[0-9]{1,9}", k)), default=0)
            new_id = f"k{number}"
            _write_key_file(self.key_file, [(new_id, secrets.token_bytes(KEY_BYTES)), *file_keys], replace=True)
            self._file_stamp = None
            self._refresh(create=False)
        log.warning("registry key rotated: new key %s first in %s; older keys kept there for decryption", new_id,
                    self.key_file)
        return new_id

    # -- sealing ----------------------------------------------------------------------------------
    def seal(self, plaintext: str, context: str, *, what: str) -> str:
        """The envelope of ``plaintext`` under the current key, bound to ``context``."""
        with self._lock:
            self._refresh(create=self.create)
            if self._current is None:
                msg = f"{what}: {self._no_current_key_message()}"
                raise KeyUnavailable(msg)
            key_id, key = self._current, self._keys[self._current]
        nonce = secrets.token_bytes(NONCE_BYTES)
        blob = nonce + AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), _aad(VERSION, key_id, context))
        return str(Envelope(VERSION, key_id, blob))

    def open(self, text: str, context: str, *, what: str) -> str:
        """The plaintext of an envelope sealed for ``context``; raises :class:`SealingError` subclasses."""
        envelope = Envelope.parse(text, what=what)
        with self._lock:
            self._refresh(create=False)
            key = self._keys.get(envelope.key_id)
            known = sorted(self._keys)
        if key is None:
            msg = (f"{what}: encrypted with registry key {envelope.key_id!r}, which this process does not have "
                   f"(it has: {', '.join(known) or 'none'}); {_HINT}")
            raise KeyUnavailable(msg)
        nonce, body = envelope.blob[:NONCE_BYTES], envelope.blob[NONCE_BYTES:]
        try:
            plain = AESGCM(key).decrypt(nonce, body, _aad(envelope.version, envelope.key_id, context))
            return plain.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            msg = (f"{what}: cannot decrypt with registry key {envelope.key_id!r}: wrong key for that ID, "
                   "or the value was altered or copied from another record")
            raise SealBroken(msg) from None

    def key_id_of(self, text: str, *, what: str) -> str:
        return Envelope.parse(text, what=what).key_id

    # -- key file ---------------------------------------------------------------------------------
    def _no_current_key_message(self) -> str:
        if self.key_file is None:
            return "no registry key configured; set secrets.key (TUBELINE_SECRETS__KEY)"
        if self.key_file.exists():
            return f"no registry key: secrets.key is unset and {self.key_file} holds no key"
        return (f"no registry key: secrets.key is unset and {self.key_file} does not exist "
                "(secrets.create_key_file is off)")

    def _refresh(self, *, create: bool) -> None:
        """Re-read the key file when it changed; generate it when missing and ``create``. Lock held."""
        path = self.key_file
        if path is None:
            return
        try:
            st = path.stat()
        except FileNotFoundError:
            if not create:
                self._keys, self._current, self._file_stamp = dict(self._base), None, None
                return
            _write_key_file(path, [("k1", secrets.token_bytes(KEY_BYTES))], replace=False)
            log.warning("generated a new registry key in %s (mode 0600): camera passwords in the registry are "
                        "encrypted with it; back it up, they cannot be read without it", path)
            st = path.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._file_stamp:
            return
        if st.st_mode & 0o077:
            log.warning("key file %s is readable by others (mode %o); chmod 600 it", path, st.st_mode & 0o777)
        file_keys = self._read_file()
        keys = dict(self._base)
        for key_id, key in file_keys:
            if key_id in self._base and self._base[key_id] != key:
                msg = f"key ID {key_id!r} is in {path} and in secrets.old_keys with different keys"
                raise SealingError(msg)
            keys[key_id] = key
        self._keys, self._current, self._file_stamp = keys, (file_keys[0][0] if file_keys else None), stamp

    def _read_file(self) -> list[tuple[str, bytes]]:
        assert self.key_file is not None
        found: list[tuple[str, bytes]] = []
        for number, line in enumerate(self.key_file.read_text(encoding="utf-8").splitlines(), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            key_id, _, value = text.partition(" ")
            key = decode_key(value)
            if not _KEY_ID_RE.match(key_id) or key is None or any(k == key_id for k, _ in found):
                msg = f"{self.key_file}:{number}: expected '<key id> <base64 of {KEY_BYTES} bytes>' (unique IDs)"
                raise SealingError(msg)
            found.append((key_id, key))
        return found


def _check_key(key_id: str, key: bytes) -> None:
    if not _KEY_ID_RE.match(key_id):
        msg = f"{key_id!r} is not a key ID"
        raise SealingError(msg)
    if len(key) != KEY_BYTES:
        msg = f"key {key_id!r} is not {KEY_BYTES} bytes"
        raise SealingError(msg)


def require_key(text: str, where: str) -> bytes:
    """The key bytes of a base64 text; raises :class:`SealingError` naming ``where`` (never the value)."""
    key = decode_key(text)
    if key is None:
        msg = f"{where} must be {KEY_BYTES} bytes in base64 (value not shown)"
        raise SealingError(msg)
    return key


def _write_key_file(path: Path, keys: list[tuple[str, bytes]], *, replace: bool) -> None:
    """Write ``keys`` (current first) with mode 0600 atomically; without ``replace`` an existing file wins."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"# Tubeline registry keys, written {stamp}: '<key id> <base64 key>', current key first.",
             "# Keep older keys until 'tubeline cameras rekey' reports none of their records left.",
             *(f"{kid} {base64.b64encode(key).decode('ascii')}" for kid, key in keys)]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if another process created the file first: theirs wins
            except FileExistsError:
                pass
    finally:
        tmp.unlink(missing_ok=True)
