"""The query layer's copy of the catalog: segments cached on local disk by etag, rows in DuckDB.

:meth:`CatalogCache.refresh` lists ``{catalog_prefix}/`` in the object store, downloads segments
that are new or whose etag changed into ``{cache_dir}/{store}/{key}`` (a restart reuses the files
whose etag still matches), loads their rows into one in-memory DuckDB table per kind (the bulky
columns — track paths, face embeddings — stay in the files) and drops the rows of segments that
left the catalog (compaction, retention). Each refresh is one DuckDB transaction, so a query sees
the catalog before or after it, never half of it. Every row keeps its segment key in ``_segment``.
``plates_latest`` holds one row per plate key — its highest revision — kept up to date for the keys
each refresh touches, so plate queries need no deduplication of their own.

Why not query the Parquet files directly on every request: DuckDB reads thousands of small files
far slower than it scans a table in memory (``docs/search.md`` has the numbers); the in-memory
tables cost a few hundred bytes per row without the bulky columns (a plate read ~750 bytes, counting
its copy in ``plates_latest``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.catalog.format import KIND_BY_NAME, KINDS, PLATE_KIND, SegmentRef, parse_segment_key, read_table
from pipeline.config.index import IndexConfig
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

TABLES = {"tracks": "tracks", "plates": "plates", "faces": "faces", "alerts": "alerts", "camera-status": "camera_status",
          "camera-health": "camera_health"}
"""Catalog kind → DuckDB table name."""

NOT_LOADED = {"tracks": ("path",), "faces": ("embedding", "landmarks"), "plates": ("char_confidences",)}
"""Columns left in the files (bulky, not needed for filtering)."""

_ETAGS_FILE = "_etags.json"
_LIST_ATTEMPTS = 3


def store_identity(store: ObjectStore) -> str:
    """A short, stable name for the store (bucket or folder), so two stores never share cache files."""
    config = getattr(store, "config", None)
    ident = f"{store.name}:{getattr(store, 'root', '')}:{getattr(config, 'endpoint', '')}:{getattr(store, 'bucket', '')}"
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


class CatalogCache:
    """Local cache of the catalog's segments and DuckDB tables over their rows."""

    def __init__(self, store: ObjectStore, settings: IndexConfig) -> None:
        self.store = store
        self.settings = settings
        self.root = Path(settings.cache_dir).resolve() / store_identity(store)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = duckdb.connect(":memory:")
        self.db.execute("SET TimeZone = 'UTC'")
        self.lock = threading.RLock()
        self.loaded: dict[str, str] = {}
        self.refs: dict[str, SegmentRef] = {}
        self.bad: dict[str, str] = {}
        self.version = 0
        """Incremented by every refresh that changed the tables."""
        self._cached_etags = self._read_etags()
        for kind in KINDS:
            self._create_table(kind.name)
        self.db.execute("CREATE TABLE plates_latest AS SELECT * FROM plates")

    # -- tables ----------------------------------------------------------------------------------
    def _create_table(self, kind_name: str) -> None:
        schema = KIND_BY_NAME[kind_name].schema
        keep = [f for f in schema if f.name not in NOT_LOADED.get(kind_name, ())]
        empty = pa.schema([*keep, pa.field("_segment", pa.string())]).empty_table()
        self.db.register("_empty", empty)
        self.db.execute(f"CREATE TABLE {TABLES[kind_name]} AS SELECT * FROM _empty")
        self.db.unregister("_empty")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one query (DuckDB cursors may be used from different threads)."""
        return self.db.cursor()

    # -- files -----------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return self.root / key

    def _read_etags(self) -> dict[str, str]:
        try:
            return dict(json.loads((self.root / _ETAGS_FILE).read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError):
            return {}

    def _write_etags(self) -> None:
        tmp = self.root / f"{_ETAGS_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(self._cached_etags), encoding="utf-8")
        tmp.replace(self.root / _ETAGS_FILE)

    def ensure_local(self, key: str, etag: str) -> Path:
        """The cached file of ``key`` at ``etag``, downloading it when missing or stale."""
        path = self.path(key)
        if self._cached_etags.get(key) != etag or not path.is_file():
            info = self.store.download(key, path)
            self._cached_etags[key] = info.etag or etag
        return path

    def _usable(self, key: str, etag: str) -> bool:
        """Download the segment; False (and remembered until its etag changes) when it is not valid Parquet."""
        for attempt in range(2):
            path = self.ensure_local(key, etag)
            try:
                schema = pq.read_schema(path)
                break
            except (pa.ArrowException, OSError) as exc:
                self._cached_etags.pop(key, None)  # maybe only the cached copy is damaged: fetch it again
                if attempt == 1:
                    log.warning("catalog: skipping unreadable segment %s: %s", key, exc)
                    self.bad[key] = etag
                    return False
        missing = set(KIND_BY_NAME[self.refs[key].kind].schema.names) - set(schema.names)
        if missing:
            log.warning("catalog: skipping segment %s without column(s) %s", key, ", ".join(sorted(missing)))
            self.bad[key] = etag
            return False
        return True

    def fetch(self, key: str, etag: str, columns: list[str] | None = None) -> pa.Table:
        """A segment's table (every column, or only ``columns``), from the cache."""
        return read_table(self.ensure_local(key, etag), columns)

    # -- refresh ---------------------------------------------------------------------------------
    def list_segments(self) -> dict[str, str]:
        listed: dict[str, str] = {}
        prefix = self.settings.catalog_prefix
        for info in self.store.list(prefix + "/"):
            ref = parse_segment_key(info.key, prefix)
            if ref is not None:
                listed[info.key] = info.etag
                self.refs.setdefault(info.key, ref)
        return listed

    def refresh(self) -> tuple[int, int]:
        """Load new and changed segments, drop vanished ones; (segments loaded, segments dropped)."""
        with self.lock:
            for attempt in range(_LIST_ATTEMPTS):
                listed = self.list_segments()
                try:
                    fresh = {k: e for k, e in listed.items() if self.loaded.get(k) != e and self.bad.get(k) != e}
                    for key, etag in sorted(fresh.items()):
                        if not self._usable(key, etag):
                            del fresh[key]
                    break
                except ObjectNotFound as exc:
                    log.info("catalog: %s vanished while refreshing (compaction?); listing again", exc)
                    if attempt == _LIST_ATTEMPTS - 1:
                        raise
            gone = [k for k in self.loaded if k not in listed]
            changed = [k for k in fresh if k in self.loaded]
            self._apply(fresh, gone + changed)
            for key in gone:
                self.loaded.pop(key, None)
                self._cached_etags.pop(key, None)
                self.refs.pop(key, None)
                self.path(key).unlink(missing_ok=True)
            self.loaded.update(fresh)
            if fresh or gone:
                self.version += 1
            self._write_etags()
            if fresh or gone:
                log.info("catalog: loaded %d segment(s), dropped %d", len(fresh), len(gone))
            return len(fresh), len(gone)

    def _apply(self, fresh: dict[str, str], drop: Iterable[str]) -> None:
        drop = list(drop)
        by_kind: dict[str, list[str]] = {}
        for key in fresh:
            by_kind.setdefault(self.refs[key].kind, []).append(key)
        cur = self.db.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.execute("CREATE OR REPLACE TEMP TABLE _touched (ikey VARCHAR)")
            if drop:
                cur.execute("INSERT INTO _touched SELECT ikey FROM plates WHERE _segment IN (SELECT unnest(?::VARCHAR[]))",
                            [drop])
                for table in TABLES.values():
                    cur.execute(f"DELETE FROM {table} WHERE _segment IN (SELECT unnest(?::VARCHAR[]))", [drop])
            for kind_name, keys in by_kind.items():
                self._load(cur, kind_name, keys)
            if by_kind.get("plates"):
                cur.execute("INSERT INTO _touched SELECT ikey FROM plates WHERE _segment IN (SELECT unnest(?::VARCHAR[]))",
                            [by_kind["plates"]])
            self._update_latest(cur)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    @staticmethod
    def _update_latest(cur: duckdb.DuckDBPyConnection) -> None:
        """Recompute ``plates_latest`` (one row per plate key: its highest revision) for the touched keys."""
        cur.execute("CREATE OR REPLACE TEMP TABLE _keys AS SELECT DISTINCT ikey FROM _touched")
        cur.execute("DELETE FROM plates_latest WHERE ikey IN (SELECT ikey FROM _keys)")
        cur.execute(
            "INSERT INTO plates_latest SELECT * FROM plates WHERE ikey IN (SELECT ikey FROM _keys) "
            f"QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {PLATE_KIND.latest_first}) = 1"
        )

    def _load(self, cur: duckdb.DuckDBPyConnection, kind_name: str, keys: list[str]) -> None:
        skip = ", ".join([*NOT_LOADED.get(kind_name, ()), "filename"])
        files = [str(self.path(k)) for k in keys]
        cut = len(str(self.root)) + 2
        cur.execute(
            f"INSERT INTO {TABLES[kind_name]} BY NAME SELECT * EXCLUDE ({skip}), substr(filename, {cut}) AS _segment "
            "FROM read_parquet(?, filename = true, hive_partitioning = false, union_by_name = true)",
            [files],
        )

    def segments(self, kind_name: str, dates: Iterable[str] | None = None) -> dict[str, str]:
        """Loaded segments of a kind (key → etag), optionally only those of the given dates."""
        wanted = set(dates) if dates is not None else None
        return {
            k: e for k, e in self.loaded.items()
            if self.refs[k].kind == kind_name and (wanted is None or self.refs[k].date in wanted)
        }

    def dates(self, kind_name: str) -> set[str]:
        return {r.date for k, r in self.refs.items() if r.kind == kind_name and k in self.loaded}

    def close(self) -> None:
        self.db.close()
