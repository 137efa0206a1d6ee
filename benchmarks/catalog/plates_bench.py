"""Plate search over a province-shaped catalog: Delta tables (pruned, streamed) vs today's in-memory path.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.catalog.plates_bench --rows 1000000 --days 30 --old-max 1000000

Synthetic data: ``--cameras`` cameras × ``--days`` days; a vehicle population of rows/8 plates (one province
character, the capital's letter for ~40 %), visits Zipf-distributed (commuters return daily). Written as the
indexer's compaction leaves a closed day (one commit per day, sorted by text). Measured per query shape:
p50/p99 latency, files planned and bytes read from disk (``/proc/self/io`` rchar) — and the process's peak
RSS. Today's path (CatalogCache: every segment loaded into DuckDB memory) is measured in the same run for
sizes up to ``--old-max`` rows.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.catalog.format import PLATE_KIND, segment_key, table_bytes
from pipeline.catalog.table import PARTITION_COLUMNS, TableCatalog, dedupe_sorted, with_partitions
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.index import IndexConfig
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
LETTERS = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ"))
CHARS = np.array(list("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"))


def population(n: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.full(len(LETTERS), 0.6 / (len(LETTERS) - 1))
    weights[0] = 0.4
    first = rng.choice(LETTERS, n, p=weights)
    rest = rng.choice(CHARS, (n, 5))
    return np.array(["川" + a + "".join(r) for a, r in zip(first, rest, strict=True)])


def day_table(day: int, rows: int, plates: np.ndarray, cameras: int, rng: np.random.Generator) -> pa.Table:
    idx = np.minimum(rng.zipf(1.3, rows) - 1, len(plates) - 1)
    idx = (idx * 2654435761) % len(plates)  # popular plates spread over the population, not its start
    text = plates[idx]
    seconds = rng.integers(0, 86_400, rows)
    start = int((DAY0 + timedelta(days=day)).timestamp() * 1e6)
    ts = pa.array(start + seconds * 1_000_000, pa.timestamp("us", tz="UTC"))
    ids = [f"d{day}-{i}" for i in range(rows)]
    cams = np.char.add("cam", (rng.integers(0, cameras, rows)).astype(str))
    n = rows
    return pa.table({
        "read_id": ids, "track_id": ids, "camera_id": cams, "captured_at": ts, "text": text,
        "char_confidences": pa.array([[0.9] * 7] * n, pa.list_(pa.float64())), "confidence": np.full(n, 0.9),
        "box": pa.array([[0.0, 0.0, 10.0, 5.0]] * n, pa.list_(pa.float64(), 4)), "crop_key": ["c"] * n,
        "region": ["CN"] * n, "plate_kind": ["blue"] * n, "model_id": ["m"] * n, "votes": np.ones(n, np.int32),
        "revision": np.zeros(n, np.int64), "ikey": [f"{i}/plate" for i in ids], "ingested_at": ts,
        "src_partition": np.zeros(n, np.int32), "src_offset": np.arange(n, dtype=np.int64),
    }).cast(PLATE_KIND.schema)


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def measure(fn, repeats: int) -> tuple[float, float, int]:  # noqa: ANN001
    times, reads = [], []
    for _ in range(repeats):
        r0, t0 = rchar(), time.monotonic()
        fn()
        times.append((time.monotonic() - t0) * 1000)
        reads.append(rchar() - r0)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))], int(statistics.median(reads))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--cameras", type=int, default=1000)
    ap.add_argument("--old-max", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--root", type=Path, default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(21)
    root = args.root or Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    config = with_overrides(TubelineConfig(), {"store.backend": "local", "store.local.root": str(root)})
    settings = IndexConfig(catalog_format="delta", cache_dir=root / "cache-d", table_prefix="tables")
    tables = TableCatalog(config.store, settings)
    plates = population(max(1000, args.rows // 8), rng)
    per_day = args.rows // args.days
    store = LocalStore(root)
    old = args.rows <= args.old_max
    from deltalake import write_deltalake

    t0 = time.monotonic()
    sample = []
    for day in range(args.days):
        table = day_table(day, per_day, plates, args.cameras, rng)
        sample.append(table.column("text")[0].as_py())
        write_deltalake(tables.uri("plates"), dedupe_sorted(PLATE_KIND, with_partitions(PLATE_KIND, table, settings.table_buckets)),
                        partition_by=PARTITION_COLUMNS, mode="append", writer_properties=tables.writer_properties())
        if old:
            date = (DAY0 + timedelta(days=day)).date().isoformat()
            store.put(segment_key("catalog", "plates", "all", date, 0, 0, per_day, f"{day:012d}"), table_bytes(table))
    write_s = time.monotonic() - t0
    print(f"rows {per_day * args.days:,} in {args.days} days; wrote in {write_s:.1f} s "
          f"({per_day * args.days / write_s:,.0f} rows/s); table {tables.stored_bytes('plates') / 2**20:,.0f} MiB")
    last = DAY0 + timedelta(days=args.days)
    one_day = {"start": last - timedelta(days=1), "end": last}
    month = {"start": last - timedelta(days=30), "end": last}
    plate = sample[-1]
    shapes = [
        ("exact, 1 day", plate, "exact", one_day), ("exact, 30 days", plate, "exact", month),
        ("wildcard prefix, 1 day", plate[:4] + "*", "wildcard", one_day),
        ("wildcard prefix, 30 days", plate[:4] + "*", "wildcard", month),
        ("wildcard *..?, 1 day", "*" + plate[3:6] + "?", "wildcard", one_day),
        ("wildcard *..?, 30 days", "*" + plate[3:6] + "?", "wildcard", month),
        ("fuzzy 1 edit, 1 day", plate[:-1] + "0", "fuzzy", one_day),
    ]
    services = [("delta", SearchService(store, config, settings=settings))]
    if old:
        services.append(("in-memory (today)", SearchService(store, config, settings=IndexConfig(cache_dir=root / "cache-p"))))
    print("| path | query | p50 ms | p99 ms | files | bytes read | hits |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, svc in services:
        t0 = time.monotonic()
        svc.refresh()
        print(f"| {name} | first refresh/load | {(time.monotonic() - t0) * 1000:.0f} | | | | |")
        for label, q, mode, window in shapes:
            hits = svc.plates(q, mode=mode, limit=100, **window)  # type: ignore[arg-type]
            p50, p99, read = measure(lambda q=q, mode=mode, window=window, svc=svc: svc.plates(
                q, mode=mode, limit=100, **window), args.repeats)
            files = svc.table_plates.last_files if svc.table_plates is not None else "-"
            print(f"| {name} | {label} | {p50:.1f} | {p99:.1f} | {files} | {read / 2**20:.2f} MiB | {len(hits)} |")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
