"""Plate search latency over 10^6 synthetic plate reads in the catalog (exact, wildcard, fuzzy, trajectory).

Builds a catalog of ``--reads`` plate reads (100 cameras × 10 days, one segment per camera and day,
1 % of the tracks with a second, superseding revision) in a local store, loads it with
SearchService (cold: copy into the cache, load into DuckDB) and times each kind of query through the
public API, p50/p99 over ``--repeat`` different query strings. For comparison, the same exact query
straight over the Parquet files with ``read_parquet`` (what a query engine without the in-memory
table would do).

    .venv/bin/python benchmarks/search/plates_bench.py                 # 10^6 reads
    .venv/bin/python benchmarks/search/plates_bench.py --reads 100000  # quick
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
import numpy as np
import pyarrow as pa
from common import machine, percentile, save, table, timed

from benchmarks.search.synthetic import ALNUM, LETTERS, PROVINCES  # noqa: E402
from pipeline.catalog.format import PLATE_KIND, segment_key, table_bytes  # noqa: E402
from pipeline.config import TubelineConfig  # noqa: E402
from pipeline.config.index import IndexConfig  # noqa: E402
from pipeline.search.service import SearchService  # noqa: E402
from pipeline.store.local import LocalStore  # noqa: E402

DAY0 = datetime(2024, 5, 1, tzinfo=UTC)


def plate_texts(rng: np.random.Generator, n: int) -> list[str]:
    prov = np.array(list(PROVINCES))[rng.integers(len(PROVINCES), size=n)]
    letter = np.array(list(LETTERS))[rng.integers(len(LETTERS), size=n)]
    rest = np.array(list(ALNUM))[rng.integers(len(ALNUM), size=(n, 5))]
    return ["".join(row) for row in np.column_stack([prov, letter, rest])]


def segment_table(rng: np.random.Generator, camera: str, day: int, rows: int, fleet: list[str],
                  offset: int) -> pa.Table:
    """One camera-day of plate reads; plates drawn from a shared fleet so plates recur across cameras."""
    base = DAY0 + timedelta(days=day)
    seconds = np.sort(rng.integers(0, 86_400, size=rows))
    texts = [fleet[i] for i in rng.integers(len(fleet), size=rows)]
    tracks = [f"{camera}:d{day}:{i}" for i in range(rows)]
    revised = rng.random(rows) < 0.01
    idx = np.r_[np.arange(rows), np.flatnonzero(revised)]
    revision = np.r_[np.zeros(rows, np.int64), np.ones(int(revised.sum()), np.int64)]
    captured = [base + timedelta(seconds=int(seconds[i])) for i in idx]
    n = len(idx)
    cols = {
        "read_id": [f"{tracks[i]}.plate.{r}" for i, r in zip(idx, revision, strict=True)],
        "track_id": [tracks[i] for i in idx],
        "camera_id": [camera] * n,
        "captured_at": captured,
        "text": [texts[i] for i in idx],
        "char_confidences": [[0.9] * 7] * n,
        "confidence": np.full(n, 0.9),
        "box": [[500.0, 430.0, 590.0, 458.0]] * n,
        "crop_key": [f"plates/{camera}/{tracks[i]}.jpg" for i in idx],
        "region": ["cn"] * n,
        "plate_kind": ["blue"] * n,
        "model_id": ["plate-reader-cn@1"] * n,
        "votes": np.full(n, 3, np.int32),
        "revision": revision,
        "ikey": [f"{tracks[i]}/plate" for i in idx],
        "ingested_at": captured,
        "src_partition": np.zeros(n, np.int32),
        "src_offset": np.arange(offset, offset + n, dtype=np.int64),
    }
    return pa.table(cols, schema=PLATE_KIND.schema)


def build_catalog(store: LocalStore, reads: int, cameras: int, days: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    fleet = plate_texts(rng, max(1000, reads // 20))  # each plate seen ~20 times over the period
    per = reads // (cameras * days)
    offset = 0
    for c in range(cameras):
        for d in range(days):
            t = segment_table(rng, f"cam-{c:03d}", d, per, fleet, offset)
            offset += t.num_rows
            date = (DAY0 + timedelta(days=d)).strftime("%Y-%m-%d")
            store.put(segment_key("catalog", "plates", f"cam-{c:03d}", date, 0, offset - t.num_rows, offset - 1,
                                  f"{c:04d}{d:08d}"), table_bytes(t))
    return fleet


def queries(fleet: list[str], repeat: int, seed: int) -> dict[str, list[dict]]:
    rnd = random.Random(seed)
    picks = [rnd.choice(fleet) for _ in range(repeat)]
    day = DAY0 + timedelta(days=3)
    return {
        "exact": [{"query": p} for p in picks],
        "exact, 10 cameras, 1 day": [{"query": p, "cameras": [f"cam-{i:03d}" for i in range(10)], "start": day,
                                      "end": day + timedelta(days=1)} for p in picks],
        "wildcard 川A*58? style": [{"query": p[:2] + "*" + p[3:5] + "?", "mode": "wildcard"} for p in picks],
        "wildcard *58Y (leading *)": [{"query": "*" + p[-3:], "mode": "wildcard"} for p in picks],
        "fuzzy, 1 edit": [{"query": p[:-1] + "Z", "mode": "fuzzy", "max_edits": 1} for p in picks],
        "fuzzy, 2 edits": [{"query": p[:-2] + "ZZ", "mode": "fuzzy", "max_edits": 2} for p in picks],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=1_000_000)
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=30, help="different query strings per query kind")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="tubeline-plates-bench-"))
    try:
        store = LocalStore(work / "store")
        t = time.monotonic()
        fleet = build_catalog(store, args.reads, args.cameras, args.days, seed=1)
        print(f"catalog: {args.cameras * args.days} segments written in {time.monotonic() - t:.1f} s", flush=True)
        service = SearchService(store, TubelineConfig(), settings=IndexConfig(cache_dir=work / "cache"))
        t = time.monotonic()
        service.refresh()
        load_s = time.monotonic() - t
        (rows,) = service.catalog.cursor().execute("SELECT count(*) FROM plates").fetchone()
        (mem,) = service.catalog.cursor().execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        print(f"cold refresh (copy to cache + load {rows:,} rows into DuckDB): {load_s:.1f} s; "
              f"DuckDB memory {mem / 2**20:.0f} MiB ({mem / rows:.0f} bytes per read, plates + plates_latest)",
              flush=True)
        t = time.monotonic()
        service.refresh()
        print(f"refresh with nothing new: {(time.monotonic() - t) * 1000:.0f} ms", flush=True)
        results = []
        for name, calls in queries(fleet, args.repeat, seed=2).items():
            it = iter(calls)
            counts: list[int] = []
            lat = timed(lambda it=it, counts=counts: counts.append(len(service.plates(limit=100, **next(it)))),
                        len(calls))
            results.append([name, f"{percentile(lat, 50):.1f}", f"{percentile(lat, 99):.1f}",
                            f"{np.mean(counts):.1f}"])
            print("  " + " | ".join(results[-1]), flush=True)
            save(args.json, "plates", {"reads": rows, "query": name, "p50_ms": percentile(lat, 50),
                                       "p99_ms": percentile(lat, 99)})
        it = iter(queries(fleet, args.repeat, seed=2)["exact"])
        lat = timed(lambda: service.plate_trajectory(next(it)["query"]), args.repeat)
        results.append(["plate_trajectory", f"{percentile(lat, 50):.1f}", f"{percentile(lat, 99):.1f}", "-"])
        files = [str(service.catalog.path(k)) for k in service.catalog.loaded]
        con = service.catalog.cursor()
        it = iter(queries(fleet, args.repeat, seed=2)["exact"])
        lat = timed(lambda: con.execute("SELECT * FROM read_parquet(?, hive_partitioning = false) WHERE text = ?",
                                        [files, next(it)["query"]]).fetchall(), min(10, args.repeat))
        results.append(["exact, read_parquet over the files (no dedupe)", f"{percentile(lat, 50):.1f}",
                        f"{percentile(lat, 99):.1f}", "-"])
        print()
        print(f"{rows:,} plate reads in {len(files)} segments; cold load {load_s:.1f} s")
        print(table(["query", "p50 ms", "p99 ms", "hits (mean, limit 100)"], results))
        service.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
