"""Evidence packages: one archive per case export, with a signed manifest, and its verification.

A package is a ZIP archive written deterministically — members stored (not compressed) in a fixed order with a
fixed timestamp and mode, no comment, no extra fields — so that the same members always give the same bytes::

    clips/…         original-stream clips (remuxed, never re-encoded; a redacted copy is marked as such)
    stills/…        the crops and frames of the items
    enhanced/…      enhanced copies, marked as such, with their operation log in the manifest
    report.html     the printable chain-of-custody report
    manifest.json   every file above with its SHA-256 and size, camera, GB ID, time range in UTC and local
                    time, who requested the package, when and why, the audit entry IDs
    signature.json  the Ed25519 signature of manifest.json's bytes, the key ID and the public key

:func:`verify_package` checks (``tubeline evidence verify``): the signature over the manifest's bytes with the
public key named in it — and that this key is one the verifier trusts (the installation's keys, or a key given
to it); that the archive holds exactly the files the manifest lists plus the manifest and the signature; every
file's SHA-256 and size; and that the archive's bytes are exactly the deterministic packing of its members, so a
change anywhere in the file — a member, the manifest, the signature or the ZIP structure between them — fails.
An extracted package (a folder) is verified the same way, without the packing check.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.cases.signing import ALGORITHM, EvidenceKeys, b64, fingerprint, unb64, verify_signature

FORMAT = "tubeline-evidence"
VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class PackageFile:
    """One file of a package: its path in the archive, its bytes (or a local file) and what it is."""

    path: str
    source: bytes | Path
    entry: Mapping[str, Any] = field(default_factory=dict)
    """Manifest fields of the file (kind, item, camera, GB ID, time range, operations …)."""

    def digest(self) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        for chunk in self.chunks():
            h.update(chunk)
            size += len(chunk)
        return h.hexdigest(), size

    def chunks(self) -> Iterable[bytes]:
        if isinstance(self.source, bytes):
            yield self.source
            return
        with self.source.open("rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def write_archive(out: Path | io.BufferedIOBase, members: Iterable[tuple[str, Iterable[bytes]]]) -> None:
    """The deterministic ZIP of ``members`` (name, chunks) in the given order."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:  # type: ignore[arg-type]
        for name, chunks in members:
            with zf.open(_info(name), "w", force_zip64=True) as dst:
                for chunk in chunks:
                    dst.write(chunk)


def manifest_files(files: Iterable[PackageFile]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        sha, size = f.digest()
        out.append({**f.entry, "path": f.path, "sha256": sha, "bytes": size})
    return out


def build_package(out_path: Path, files: list[PackageFile], report: PackageFile, header: Mapping[str, Any],
                  keys: EvidenceKeys) -> dict[str, Any]:
    """Write the package to ``out_path``; returns the manifest. ``header`` holds the case, who, when, why and
    the audit entry IDs; ``report`` is the rendered chain-of-custody report."""
    names = [f.path for f in [*files, report]]
    if len(set(names)) != len(names) or {MANIFEST, SIGNATURE} & set(names):
        msg = "package file names must be unique and not manifest.json or signature.json"
        raise ValueError(msg)
    key_id, public, _ = keys.sign(b"")
    manifest = {**header, "format": FORMAT, "version": VERSION, "files": manifest_files([*files, report]),
                "signing": {"algorithm": ALGORITHM, "key_id": key_id, "public_key": b64(public),
                            "fingerprint": fingerprint(public)}}
    data = canonical_json(manifest)
    key_id, public, signature = keys.sign(data)
    signature_doc = {"format": f"{FORMAT}-signature", "version": VERSION, "algorithm": ALGORITHM, "key_id": key_id,
                     "public_key": b64(public), "signature": b64(signature), "signs": MANIFEST}
    members = [(f.path, f.chunks()) for f in [*files, report]]
    members += [(MANIFEST, iter([data])), (SIGNATURE, iter([canonical_json(signature_doc)]))]
    write_archive(out_path, members)
    return manifest


# -- verification ------------------------------------------------------------------------------------
@dataclass
class Verification:
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0
    key_id: str = ""
    fingerprint: str = ""
    trusted: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)

    def fail(self, problem: str) -> None:
        self.problems.append(problem)


class _Reader:
    """Members of a package, from a ZIP file or an extracted folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None if path.is_dir() else zipfile.ZipFile(path)

    def names(self) -> list[str]:
        if self.zip is not None:
            return [i.filename for i in self.zip.infolist()]
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file())

    def chunks(self, name: str) -> Iterable[bytes]:
        handle = self.zip.open(name) if self.zip is not None else (self.path / name).open("rb")
        with handle:
            while chunk := handle.read(_CHUNK):
                yield chunk

    def read(self, name: str, limit: int) -> bytes:
        data = b"".join(self.chunks(name))
        if len(data) > limit:
            msg = f"{name} is larger than {limit} bytes"
            raise ValueError(msg)
        return data

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def verify_package(path: Path, trusted: Mapping[str, bytes] | None = None) -> Verification:
    """Check a package (see the module docstring). ``trusted``: public keys by ID the signature must come from
    (None: any key, reported as not trusted)."""
    report = Verification()
    try:
        reader = _Reader(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        report.fail(f"not a readable package: {exc}")
        return report
    try:
        _verify(reader, report, trusted)
        if reader.zip is not None and not report.problems:
            _check_packing(path, reader, report)
    except Exception as exc:  # any failure to read a hostile archive (flags, sizes, JSON) is a failed check
        report.fail(f"unreadable package: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        reader.close()
    report.ok = not report.problems
    return report


def _verify(reader: _Reader, report: Verification, trusted: Mapping[str, bytes] | None) -> None:
    names = reader.names()
    if MANIFEST not in names or SIGNATURE not in names:
        report.fail("manifest.json or signature.json is missing")
        return
    data = reader.read(MANIFEST, MAX_MANIFEST_BYTES)
    sig = json.loads(reader.read(SIGNATURE, 64 * 1024))
    public, signature = unb64(str(sig.get("public_key", ""))), unb64(str(sig.get("signature", "")))
    if sig.get("algorithm") != ALGORITHM or public is None or signature is None or len(public) != 32:
        report.fail("signature.json is malformed")
        return
    report.key_id, report.fingerprint = str(sig.get("key_id", "")), fingerprint(public)
    if not verify_signature(public, data, signature):
        report.fail("the signature does not match manifest.json (the manifest or the signature was changed)")
        return
    manifest = json.loads(data)
    report.manifest = manifest
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        report.fail(f"not a {FORMAT} version {VERSION} manifest")
        return
    if manifest.get("signing", {}).get("public_key") != sig.get("public_key"):
        report.fail("the manifest names another signing key than signature.json")
    if trusted is not None:
        report.trusted = trusted.get(report.key_id) == public
        if not report.trusted:
            report.fail(f"signed by key {report.key_id!r} ({report.fingerprint}), which is not a trusted key")
    listed = {f["path"]: f for f in manifest.get("files", [])}
    extra = sorted(set(names) - set(listed) - {MANIFEST, SIGNATURE})
    missing = sorted(set(listed) - set(names))
    for name in extra:
        report.fail(f"{name}: in the package but not in the manifest")
    for name in missing:
        report.fail(f"{name}: in the manifest but missing")
    for name, entry in listed.items():
        if name in missing:
            continue
        h, size = hashlib.sha256(), 0
        for chunk in reader.chunks(name):
            h.update(chunk)
            size += len(chunk)
        report.files_checked += 1
        if h.hexdigest() != entry.get("sha256") or size != entry.get("bytes"):
            report.fail(f"{name}: SHA-256 or size differs from the manifest (the file was changed)")


def _check_packing(path: Path, reader: _Reader, report: Verification) -> None:
    """The archive must be byte for byte the deterministic packing of its members."""
    order = reader.names()
    with tempfile.TemporaryFile() as tmp:
        write_archive(tmp, [(name, reader.chunks(name)) for name in order])  # type: ignore[arg-type]
        tmp.seek(0)
        expected = hashlib.sha256()
        while chunk := tmp.read(_CHUNK):
            expected.update(chunk)
    actual = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            actual.update(chunk)
    if expected.hexdigest() != actual.hexdigest():
        report.fail("the archive's bytes differ from the packing of its members (changed outside the files)")
