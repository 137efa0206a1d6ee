"""The indexer's side of the FAISS face shards: add each new face segment, snapshot now and then.

Shards are derived data: the catalog is the truth, so a shard change is never a reason to hold back
an offset commit. Snapshots are taken every ``index.shard_snapshot_interval_s`` (and when the
worker stops), each after catching up with every face segment of the window's date in the catalog,
so a snapshot also covers segments that other indexer instances wrote. Shards not touched for two
snapshot intervals are dropped from memory after their snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pyarrow as pa

from pipeline.catalog.format import FACE_KIND, date_prefix, parse_segment_key, read_table
from pipeline.catalog.shards import Shard, ShardBuilder, window_bounds, window_of
from pipeline.config.index import IndexConfig
from pipeline.store.base import ObjectStore
from workers.index.writer import Written

log = logging.getLogger(__name__)


def list_face_segments(store: ObjectStore, settings: IndexConfig, date: str) -> dict[str, str]:
    """Key → etag of every face segment of one date."""
    out: dict[str, str] = {}
    for info in store.list(date_prefix(settings.catalog_prefix, FACE_KIND.name, date)):
        if parse_segment_key(info.key, settings.catalog_prefix) is not None:
            out[info.key] = info.etag
    return out


def windows_in(table: pa.Table, window: str) -> set[tuple[str, str, int]]:
    """(model_id, window, dimension) of the faces in a segment table."""
    out: set[tuple[str, str, int]] = set()
    if table.num_rows == 0:
        return out
    groups = table.select(["model_id", "captured_at", "dimension"]).to_pylist()
    for row in groups:
        out.add((row["model_id"], window_of(row["captured_at"], window), row["dimension"]))
    return out


class FaceShardKeeper:
    """Open shards of the indexer, keyed by (model_id, window)."""

    def __init__(
        self, store: ObjectStore, settings: IndexConfig, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.settings = settings
        self.monotonic = monotonic
        self._recent: dict[str, pa.Table] = {}
        self.builder = ShardBuilder(store, settings, self._fetch)
        self.shards: dict[tuple[str, str], Shard] = {}
        self.touched: dict[tuple[str, str], float] = {}
        self.next_snapshot = monotonic() + settings.shard_snapshot_interval_s
        self.rebuilt = 0

    def _fetch(self, key: str, etag: str, columns: list[str] | None = None) -> pa.Table:
        table = self._recent.get(key)
        return table if table is not None else read_table(self.store.get(key), columns)

    def add(self, written: list[Written]) -> None:
        """Add the face segments among ``written`` to their shards (opening or building shards as needed)."""
        faces = [w for w in written if w.ref.kind == FACE_KIND.name]
        for w in faces:
            self._recent[w.ref.key] = w.table
        try:
            for w in faces:
                for model_id, window, _dim in sorted(windows_in(w.table, self.settings.face_window)):
                    shard = self.shards.get((model_id, window))
                    if shard is None:
                        self._open(model_id, window)
                    elif w.ref.key not in shard.covered():
                        shard.add_segment(w.ref.key, w.etag, w.table)
                        self.builder.maybe_upgrade(shard)
                    self.touched[(model_id, window)] = self.monotonic()
        finally:
            self._recent.clear()

    def _open(self, model_id: str, window: str) -> Shard:
        date = window_bounds(window)[0].strftime("%Y-%m-%d")
        shard, rebuilt = self.builder.open(model_id, window, list_face_segments(self.store, self.settings, date))
        self.rebuilt += int(rebuilt)
        self.shards[(model_id, window)] = shard
        return shard

    def snapshot_due(self) -> bool:
        return self.monotonic() >= self.next_snapshot

    def snapshot(self) -> int:
        """Catch up and snapshot every changed shard, drop idle ones; the number of snapshots written."""
        written = 0
        idle_after = 2 * self.settings.shard_snapshot_interval_s
        now = self.monotonic()
        for key, shard in sorted(self.shards.items()):
            date = window_bounds(shard.manifest.window)[0].strftime("%Y-%m-%d")
            self.builder.catch_up(shard, list_face_segments(self.store, self.settings, date))
            if shard.dirty:
                self.builder.snapshot(shard)
                written += 1
            if now - self.touched.get(key, now) > idle_after:
                del self.shards[key]
                self.touched.pop(key, None)
        self.next_snapshot = self.monotonic() + self.settings.shard_snapshot_interval_s
        return written

