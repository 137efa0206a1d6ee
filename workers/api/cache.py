"""The API's local file cache (cut clips and synopsis videos served with range requests), kept under a size bound.

Files are marked when served (their mtime is set), and after each new file the least recently used ones are
deleted until the folder is within ``api.cache_max_mb``. The store keeps the originals, so a deleted file is
only downloaded again when asked for; a file being sent while it is deleted stays readable to that response
(POSIX unlink semantics).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)


def fetch(store: ObjectStore, key: str, path: Path, *, root: Path, max_bytes: int | None) -> Path:
    """``key`` as the local file ``path``: marked as used when cached, else downloaded (through a ``.part`` file,
    so a half-written file is never served) and the cache under ``root`` trimmed to ``max_bytes``."""
    if path.is_file():
        touch(path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    store.download(key, part)
    part.replace(path)
    if max_bytes is not None:
        trim(root, max_bytes, keep=path)
    return path


def touch(path: Path) -> None:
    """Mark ``path`` as just used."""
    with contextlib.suppress(OSError):
        os.utime(path)


def trim(root: Path, max_bytes: int, *, keep: Path | None = None) -> int:
    """Delete the least recently used files under ``root`` until the rest fit in ``max_bytes`` (never ``keep``,
    never a partial download); returns the bytes freed."""
    files: list[tuple[float, int, Path]] = []
    total = 0
    for path in root.rglob("*"):
        if path.suffix == ".part":
            continue
        try:
            info = path.stat()
        except OSError:
            continue
        if path.is_file():
            files.append((info.st_mtime, info.st_size, path))
            total += info.st_size
    freed = 0
    keep = keep.resolve() if keep is not None else None
    for _, size, path in sorted(files):
        if total - freed <= max_bytes:
            break
        if keep is not None and path.resolve() == keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            freed += size
    if freed:
        log.info("API cache %s: removed %.1f MB of least recently served files", root, freed / 1e6)
    return freed
