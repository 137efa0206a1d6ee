"""The API's file cache stays under its bound: least recently served files go first, the file just added and
partial downloads never; a trimmed file is fetched again from the store when asked for."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config.synopsis import SynopsisConfig
from pipeline.store.local import LocalStore
from workers.api import cache
from workers.api.synopses import SynopsisDesk


def _file(path: Path, size: int, age_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    t = path.stat().st_mtime - age_s
    os.utime(path, (t, t))
    return path


def test_trim_removes_least_recently_used_first(tmp_path: Path) -> None:
    old = _file(tmp_path / "exports" / "old.mp4", 400, 300)
    mid = _file(tmp_path / "synopsis" / "cam" / "mid.mp4", 400, 200)
    new = _file(tmp_path / "exports" / "new.mp4", 400, 100)
    part = _file(tmp_path / "synopsis" / "cam" / "x.part", 400, 1000)
    freed = cache.trim(tmp_path, 900, keep=new)
    assert freed == 400 and not old.exists() and mid.exists() and new.exists() and part.exists()
    cache.touch(mid)  # served again: now the newest
    assert cache.trim(tmp_path, 500, keep=None) == 400
    assert mid.exists() and not new.exists()


def test_trim_never_removes_the_kept_file_even_when_it_alone_is_too_big(tmp_path: Path) -> None:
    big = _file(tmp_path / "big.mp4", 2000, 500)
    other = _file(tmp_path / "other.mp4", 10, 0)
    cache.trim(tmp_path, 1000, keep=big)
    assert big.exists() and not other.exists()


def test_synopsis_videos_are_cached_within_the_bound_and_fetched_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    settings = SynopsisConfig()
    desk = SynopsisDesk(store, settings, tmp_path / "cache", cache_max_bytes=1500)
    ids = ["a" * 32, "b" * 32]
    for n, sid in enumerate(ids):
        store.put(desk.keys("cam-1", sid).video, bytes([n]) * 1000, content_type="video/mp4")
    first = desk.video_file("cam-1", ids[0])
    assert first.read_bytes() == b"\x00" * 1000
    second = desk.video_file("cam-1", ids[1])  # 2000 bytes > 1500: the older one goes
    assert second.exists() and not first.exists()
    again = desk.video_file("cam-1", ids[0])  # asked for again: downloaded again, the other one goes
    assert again.read_bytes() == b"\x00" * 1000 and not second.exists()
