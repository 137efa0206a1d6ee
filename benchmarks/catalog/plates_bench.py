"""Plate search over a province-shaped catalog: Delta tables + plate index vs today's in-memory path.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python -m benchmarks.catalog.plates_bench --rows 100000000 --days 30

Data (:mod:`benchmarks.catalog.province`): ``--cameras`` cameras × ``--days`` days of plate reads with repeat
visits, written per day as compaction leaves a closed day (sorted by text, range-bucketed), into a folder
store under ``--data`` that is kept and reused by the next run with the same arguments (delete it after).
Steps, each timed and cached the same way: write the table (and, up to ``--old-max`` rows, the Parquet
segments today's path loads); build the plate index per day and the vocabulary; measure the indexer's
exactly-once commits and one day's compaction (on a scratch table beside it).

Queries run in a child process per path, so each path's peak RSS is its own: ``delta`` (index on),
``delta, no index`` (the scan the index replaces; skipped above ``--noindex-max`` rows) and
``in-memory (today)`` (CatalogCache: every segment loaded into DuckDB). Per shape: p50/p99 latency over
``--repeats`` runs after one warm-up, files and row groups read, bytes read (``/proc/self/io`` rchar,
median), CPU ms of the process (median: what the query costs when the machine is shared), hits. ``--json`` writes every figure for :mod:`benchmarks.catalog.plot`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.catalog.province import DAY0, day_reads, population, with_range_partition
from pipeline.catalog.format import PLATE_KIND, segment_key, table_bytes
from pipeline.catalog.plate_index import PlateIndex, compact_and_index
from pipeline.catalog.table import PARTITION_COLUMNS, TableCatalog
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.index import IndexConfig
from pipeline.store.local import LocalStore

SEED = 21
ROW_GROUP_ROWS = 4096
"""``index.table_row_group_rows`` of the benchmark's tables: a plate hit decodes one row group of every column it
selects; 4096 rows cost ≈ 4× less than the default 16384 per hit (measured here: 9 vs 35 ms per row group under
load), for a footer of ≈ 0.5 MB per million rows (parsed once, cached)."""


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def folder(args: argparse.Namespace) -> Path:
    return Path(args.data).resolve() / f"plates-r{args.rows}-d{args.days}-c{args.cameras}-s{SEED}"


def catalog(root: Path, prefix: str = "tables") -> tuple[TubelineConfig, IndexConfig, TableCatalog]:
    config = with_overrides(TubelineConfig(), {"store.backend": "local", "store.local.root": str(root)})
    settings = IndexConfig(catalog_format="delta", cache_dir=root / "cache-d", table_prefix=prefix,
                           table_row_group_rows=ROW_GROUP_ROWS, catalog_prefix="catalog")
    return config, settings, TableCatalog(config.store, settings)


def cached(root: Path, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a step once: its figures are kept in ``{root}/{name}.json`` and reused by later runs."""
    marker = root / f"{name}.json"
    if marker.exists():
        out: dict[str, Any] = json.loads(marker.read_text())
        out["cached"] = True
        return out
    result = fn()
    marker.write_text(json.dumps(result))
    return result


# -- data ------------------------------------------------------------------------------------------------
def _write_days(args: argparse.Namespace, root: Path, old: bool, days: list[int]) -> dict[str, float]:
    """Generate and append the given days (one commit each; concurrent appends from other workers are fine:
    delta-rs retries a blind append on top of theirs). Day ``d`` draws from ``default_rng([SEED, d])``."""
    from deltalake import write_deltalake

    _, _, tables = catalog(root)
    pop = population(args.rows, args.days, args.cameras, np.random.default_rng(SEED))
    per_day = args.rows // args.days
    store = LocalStore(root)
    out = {"generate_s": 0.0, "table_write_s": 0.0, "segments_write_s": 0.0, "distinct_plate_days": 0.0}
    for day in days:
        t0 = time.monotonic()
        table = day_reads(pop, day, per_day, args.cameras, np.random.default_rng([SEED, day]))
        out["distinct_plate_days"] += len(pc.unique(table.column("text")))
        t1 = time.monotonic()
        write_deltalake(tables.uri("plates"), with_range_partition(table, day), partition_by=PARTITION_COLUMNS,
                        mode="append", writer_properties=tables.writer_properties(), target_file_size=512 << 20)
        t2 = time.monotonic()
        if old:
            date = (DAY0 + timedelta(days=day)).date().isoformat()
            store.put(segment_key("catalog", "plates", "all", date, 0, 0, per_day, f"{day:012d}"), table_bytes(table))
        out["generate_s"] += t1 - t0
        out["table_write_s"] += t2 - t1
        out["segments_write_s"] += time.monotonic() - t2
        print(f"  day {day}: {per_day:,} rows, generated {t1 - t0:.1f} s, table write {t2 - t1:.1f} s", flush=True)
    return out


def write_data(args: argparse.Namespace, root: Path, old: bool) -> dict[str, Any]:
    """Write the days not in the table yet (an interrupted run resumes), ``--workers`` processes in parallel."""
    from concurrent.futures import ProcessPoolExecutor

    _, _, tables = catalog(root)
    present = set(tables.dates("plates"))
    todo = [d for d in range(args.days) if (DAY0 + timedelta(days=d)).date().isoformat() not in present]
    t0 = time.monotonic()
    chunks = [todo[i::args.workers] for i in range(args.workers) if todo[i::args.workers]]
    spawn = multiprocessing.get_context("spawn")  # delta-rs's runtime does not survive a fork
    with ProcessPoolExecutor(max_workers=max(1, len(chunks)), mp_context=spawn) as pool:
        results = list(pool.map(_write_days, [args] * len(chunks), [root] * len(chunks), [old] * len(chunks), chunks))
    wall = time.monotonic() - t0
    per_day = args.rows // args.days
    last = tables.read("plates", [(DAY0 + timedelta(days=args.days - 1)).date().isoformat()]).column("text")
    pick = np.random.default_rng([SEED, 99]).integers(0, len(last), 3)
    return {"rows": per_day * args.days, "population": len(population(args.rows, args.days, args.cameras,
                                                                        np.random.default_rng(SEED)).plates),
            "days_written": len(todo), "days_resumed": len(present), "write_wall_s": wall,
            "generate_s": sum(r["generate_s"] for r in results), "table_write_s": sum(r["table_write_s"] for r in results),
            "segments_write_s": sum(r["segments_write_s"] for r in results), "segments": old and not present,
            "distinct_plate_days": sum(r["distinct_plate_days"] for r in results),
            "table_bytes": tables.stored_bytes("plates"), "files": len(tables.files("plates")),
            "samples": last.take(pa.array(pick)).to_pylist()}


def build_index(root: Path) -> dict[str, Any]:
    """Index every day, then the vocabulary twice: all days but the last (from scratch), then the last day's
    merge into it (the incremental cost a compaction pays)."""
    _, _, tables = catalog(root)
    index = PlateIndex(tables)
    dates = tables.dates("plates")
    day_s = []
    for date in dates:
        t0 = time.monotonic()
        index.build(date)
        day_s.append(time.monotonic() - t0)
        if date == dates[-2]:
            t0 = time.monotonic()
            index.build_vocab()
            first_vocab_s = time.monotonic() - t0
    t0 = time.monotonic()
    index.build_vocab()
    merge_s = time.monotonic() - t0
    index_bytes = sum(i.size or 0 for i in index._listing())
    return {"day_index_s_median": statistics.median(day_s), "day_index_s_total": sum(day_s),
            "vocab_scratch_s": first_vocab_s, "vocab_merge_one_day_s": merge_s, "vocab_plates": index.vocab.num_rows,
            "index_bytes": index_bytes}


def writer_costs(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Exactly-once commits of the indexer (``TableCatalog.append``) into a scratch table, then one full day
    appended and compacted there (dedupe, sort, range files, day index, vocabulary)."""
    scratch = root / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    _, _, tables = catalog(scratch)
    rng = np.random.default_rng(SEED + 1)
    pop = population(args.rows, args.days, args.cameras, rng)
    per_day = args.rows // args.days
    day = day_reads(pop, args.days, per_day, args.cameras, rng)
    batch = min(5000, per_day // 20)
    commits = 20
    t0 = time.monotonic()
    for i in range(commits):
        rows = day.slice(i * batch, batch)
        rows = rows.set_column(rows.schema.get_field_index("src_partition"), "src_partition",
                               pa.array(np.zeros(batch, np.int32)))
        rows = rows.set_column(rows.schema.get_field_index("src_offset"), "src_offset",
                               pa.array(np.arange(i * batch, (i + 1) * batch, dtype=np.int64)))
        tables.append(PLATE_KIND, rows, group="bench")
    commit_s = time.monotonic() - t0
    rest = day.slice(commits * batch)
    rest = rest.set_column(rest.schema.get_field_index("src_partition"), "src_partition",
                           pa.array(np.ones(rest.num_rows, np.int32)))
    t0 = time.monotonic()
    tables.append(PLATE_KIND, rest, group="bench")
    big_commit_s = time.monotonic() - t0
    date = tables.dates("plates")[0]
    files_before = len(tables.files("plates"))
    t0 = time.monotonic()
    stats = compact_and_index(tables, "plates", [date])
    compact_s = time.monotonic() - t0
    bytes_before = tables.stored_bytes("plates")
    t0 = time.monotonic()
    tables.vacuum("plates")
    vacuum_s = time.monotonic() - t0
    out = {"commit_rows": batch, "commits": commits, "commit_s": commit_s, "commit_ms_median": commit_s / commits * 1000,
           "commit_rows_per_s": commits * batch / commit_s, "big_commit_rows": rest.num_rows,
           "big_commit_rows_per_s": rest.num_rows / big_commit_s, "compact_rows": stats["rows_after"],
           "compact_s": compact_s, "files_before": files_before, "files_after": stats["files_after"],
           "bytes_before_vacuum": bytes_before, "bytes_after_vacuum": tables.stored_bytes("plates"),
           "vacuum_s": vacuum_s}
    shutil.rmtree(scratch, ignore_errors=True)
    return out


# -- queries (child process) ------------------------------------------------------------------------------
def shapes(args: argparse.Namespace, samples: list[str]) -> list[tuple[str, str, str, int]]:
    plate = samples[-1]
    out = []
    for days in (1, args.days):
        out += [
            (f"exact, {days} d", plate, "exact", days),
            (f"wildcard prefix {plate[:4]}*, {days} d", plate[:4] + "*", "wildcard", days),
            (f"wildcard *{plate[3:6]}?, {days} d", "*" + plate[3:6] + "?", "wildcard", days),
            (f"fuzzy 1 edit, {days} d", plate[:-1] + ("0" if plate[-1] != "0" else "1"), "fuzzy", days),
        ]
    out.append((f"wildcard broad {plate[:2]}*, {args.days} d", plate[:2] + "*", "wildcard", args.days))
    return out


def measure_path(args: argparse.Namespace, path: str) -> dict[str, Any]:
    from pipeline.search.service import SearchService

    root = folder(args)
    config, settings, _ = catalog(root)
    samples = json.loads((root / "data.json").read_text())["samples"]
    if path == "memory":
        svc = SearchService(LocalStore(root), config, settings=IndexConfig(cache_dir=root / "cache-p"))
    else:  # the Parquet segments of today's path are not the delta path's to load
        settings = settings.model_copy(update={"catalog_prefix": "no-segments"})
        svc = SearchService(LocalStore(root), config, settings=settings)
        if path == "delta-noindex" and svc.table_plates is not None:
            svc.table_plates.index = None
    t0 = time.monotonic()
    svc.refresh()
    rows: list[dict[str, Any]] = [{"query": "first refresh/load", "p50_ms": (time.monotonic() - t0) * 1000}]
    last = DAY0 + timedelta(days=args.days)
    for label, q, mode, days in shapes(args, samples):
        window = {"start": last - timedelta(days=days), "end": last}
        hits = svc.plates(q, mode=mode, limit=100, **window)  # type: ignore[arg-type]
        times, reads, cpu = [], [], []
        for _ in range(args.repeats):
            r0, t0, c0 = rchar(), time.monotonic(), time.process_time()
            svc.plates(q, mode=mode, limit=100, **window)  # type: ignore[arg-type]
            times.append((time.monotonic() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            reads.append(rchar() - r0)
        times.sort()
        tp = svc.table_plates
        rows.append({"query": label, "p50_ms": statistics.median(times),
                     "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))], "cpu_ms": statistics.median(cpu),
                     "bytes_read": int(statistics.median(reads)), "hits": len(hits),
                     "files": tp.last.files if tp is not None else None,
                     "row_groups": tp.last.row_groups if tp is not None else None,
                     "candidates": tp.last.candidates if tp is not None and tp.index is not None else None})
    return {"path": path, "rows": rows, "peak_rss_mib": peak_rss_mib()}


def run_child(args: argparse.Namespace, path: str) -> dict[str, Any] | None:
    cmd = [sys.executable, "-m", "benchmarks.catalog.plates_bench", "--measure", path, "--rows", str(args.rows),
           "--days", str(args.days), "--cameras", str(args.cameras), "--repeats", str(args.repeats), "--data", args.data]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  {path}: failed ({proc.returncode}): {proc.stderr[-2000:]}", flush=True)
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- main ------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--cameras", type=int, default=10_000)
    ap.add_argument("--old-max", type=int, default=10_000_000, help="largest size today's in-memory path runs at")
    ap.add_argument("--noindex-max", type=int, default=10_000_000, help="largest size the no-index scan runs at")
    ap.add_argument("--writer-max", type=int, default=10_000_000,
                    help="largest size the commit/compaction step runs at (it compacts one full day)")
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--workers", type=int, default=3, help="processes writing days in parallel")
    ap.add_argument("--data", default="var/catalog-bench")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--prepare-only", action="store_true", help="write the data, index and writer figures; no queries")
    ap.add_argument("--measure", choices=["delta", "delta-noindex", "memory"], default=None)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure_path(args, args.measure)))
        return
    root = folder(args)
    root.mkdir(parents=True, exist_ok=True)
    old = args.rows <= args.old_max
    print(f"load average before: {load()}", flush=True)
    data = cached(root, "data", lambda: write_data(args, root, old))
    if old and not data["segments"]:
        print("  (the cached data has no Parquet segments: today's path is skipped; delete the folder to redo)")
        old = False
    index = cached(root, "index", lambda: build_index(root))
    writer = cached(root, "writer", lambda: writer_costs(args, root)) if args.rows <= args.writer_max else None
    if args.prepare_only:
        print(json.dumps({"data": {k: v for k, v in data.items() if k != "samples"}, "index": index, "writer": writer}))
        return
    paths = ["delta"] + (["delta-noindex"] if args.rows <= args.noindex_max else []) + (["memory"] if old else [])
    results = [r for r in (run_child(args, p) for p in paths) if r is not None]
    report = {"rows": data["rows"], "days": args.days, "cameras": args.cameras, "load_after": load(),
              "data": {k: v for k, v in data.items() if k != "samples"}, "index": index, "writer": writer,
              "paths": results}
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


def print_report(r: dict[str, Any]) -> None:
    d, ix, w = r["data"], r["index"], r["writer"] or {}
    print(f"\n{r['rows']:,} plate reads, {r['days']} days, {r['cameras']:,} cameras; vehicles {d['population']:,}; "
          f"table {d['table_bytes'] / 2**30:.2f} GiB in {d['files']} files; load average after: {r['load_after']}")
    print(f"write (one delta-rs commit per day, {d.get('days_written', r['days'])} days written by this run): "
          f"{d['rows'] * d.get('days_written', r['days']) / r['days'] / d['table_write_s']:,.0f} rows/s per process; "
          f"index: {ix['day_index_s_median']:.2f} s per day (median), vocabulary {ix['vocab_plates']:,} plates, "
          f"{ix['vocab_scratch_s']:.1f} s from scratch, {ix['vocab_merge_one_day_s']:.1f} s to merge a day; "
          f"index {ix['index_bytes'] / 2**20:.0f} MiB")
    if not w:
        print("indexer commits and compaction: not run at this size (--writer-max)")
    else:
        print(f"indexer commits (exactly-once append, {w['commit_rows']} rows): {w['commit_ms_median']:.0f} ms each, "
              f"{w['commit_rows_per_s']:,.0f} rows/s; one {w['big_commit_rows']:,}-row commit {w['big_commit_rows_per_s']:,.0f} rows/s; "
              f"compaction of that day ({w['compact_rows']:,} rows, {w['files_before']} → {w['files_after']} files, "
              f"index + vocabulary included) {w['compact_s']:.1f} s; vacuum {w['vacuum_s']:.1f} s, "
              f"{w['bytes_before_vacuum'] / 2**20:.0f} → {w['bytes_after_vacuum'] / 2**20:.0f} MiB")
    print("\n| path | query | p50 ms | p99 ms | CPU ms | files | row groups | bytes read | hits |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for p in r["paths"]:
        for row in p["rows"]:
            if "hits" not in row:
                print(f"| {p['path']} | {row['query']} | {row['p50_ms']:.0f} | | | | | | |")
                continue
            files = "-" if row["files"] is None else row["files"]
            groups = "-" if row["row_groups"] is None else row["row_groups"]
            print(f"| {p['path']} | {row['query']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row.get('cpu_ms', 0):.1f} | "
                  f"{files} | {groups} | "
                  f"{row['bytes_read'] / 2**20:.2f} MiB | {row['hits']} |")
    for p in r["paths"]:
        print(f"peak RSS, {p['path']} process: {p['peak_rss_mib']:,.0f} MiB")


if __name__ == "__main__":
    main()
