"""Face index options against exact search, through the shard search path the API uses, at 10^5 and 10^6 × 128.

For each data set (``synthetic`` and ``real``, see ``benchmarks/search/face_vectors.py``) and size, every option is
built with the production code (``pipeline.catalog.shards.build_index`` / ``configure``) and queried one query at a
time through ``Shard.search`` (FAISS proposes ``k × rerank_factor`` candidates, they are re-scored exactly) — the
path ``SearchService.faces`` takes for an unfiltered query. The reference is exact search (``Flat``, the same
path) in the same run; recall@10 is the share of the exact top 10 returned.

Columns: build s (train + add with ``--build-threads`` threads, or "cached" when the index came from the cache), index MB (serialised size),
recall@10, p50 / p99 wall ms of single queries, the p50 of the CPU milliseconds each query took (``process_time``: what
the query costs, much less sensitive than wall time to the other engineers sharing the two cores), its ratio to exact
search's, and the 1-minute load average when the option finished. Wall latency under a load average of 10–20 is
mostly waiting for a core.

    nice -n 10 .venv/bin/python benchmarks/search/face_index_bench.py                     # both sets, 10^5 and 10^6
    nice -n 10 .venv/bin/python benchmarks/search/face_index_bench.py --sizes 100000 --data synthetic  # ~1 min

The vectors, the exact ground truth and the slow indexes (HNSW: ~8 minutes for 10^6 on two shared cores) are cached
under ``var/bench/face-index/`` (``--cache``), so reruns take a few minutes; ``--rebuild`` ignores the cached indexes.
Cached index files are written and read by this benchmark only (the shard code never reads them).
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
import faiss  # noqa: E402
import numpy as np
from common import ROOT, machine, percentile, save, table  # noqa: E402

from benchmarks.search import face_vectors as fv  # noqa: E402
from pipeline.catalog.shards import Manifest, Shard, build_index, configure, nlist_for  # noqa: E402
from pipeline.config.index import IndexConfig  # noqa: E402

K = 10
TESTDATA = ROOT.parent / "shared" / "testdata"


@dataclass
class Option:
    label: str
    factory: str
    settings: dict[str, object] = field(default_factory=dict)
    cache: bool = False  # slow to build: keep the built index under the cache folder


def options(n: int, dim: int, hnsw_max: int) -> list[Option]:
    nlist = nlist_for(n)
    pq = f"PQ{dim // 2}x4fs,RFlat"
    out = [Option("exact (Flat)", "Flat")]
    if n <= hnsw_max:
        out += [Option(f"HNSW32 efC80 efSearch={e}", "HNSW32,Flat", {"hnsw_ef_search": e}, cache=True)
                for e in (128, 256, 512)]
    out += [Option(f"IVF{nlist},Flat nprobe=128", f"IVF{nlist},Flat", {"ivf_nprobe": 128})]
    out += [Option(f"{pq} k_factor={f}", pq, {"refine_k_factor": f}) for f in (4, 8, 16)]
    out += [Option(f"PQ{dim // 4}x4fs,RFlat k_factor=16", f"PQ{dim // 4}x4fs,RFlat", {"refine_k_factor": 16})]
    out += [Option(f"IVF{nlist},{pq} nprobe={p} k_factor=8", f"IVF{nlist},{pq.split(',')[0]},RFlat",
                   {"ivf_nprobe": p, "refine_k_factor": 8}) for p in (nlist // 4, nlist // 2)]
    return out


def dataset(kind: str, n: int, queries: int, cache: Path, real_identities: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "synthetic":
        base, q = fv.cached(cache, f"synthetic-{n}-{queries}", lambda: fv.synthetic(n, queries))
        return base, q
    emb, labels = fv.cached(cache, f"real-dlib-{real_identities}x{fv.FACES_PER_PERSON + 1}",
                            lambda: fv.real_embeddings(TESTDATA, real_identities, fv.FACES_PER_PERSON + 1))
    base, q = fv.cached(cache, f"real-{n}-{queries}-{real_identities}", lambda: fv.grow(emb, labels, n, queries))
    return base, q


def set_threads(n: int) -> None:
    """FAISS's OpenMP threads; 0 = its default (every core)."""
    faiss.omp_set_num_threads(n or os.cpu_count() or 1)


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(shard: Shard, settings: IndexConfig, queries: np.ndarray, truth: np.ndarray
            ) -> tuple[float, list[float], list[float]]:
    """recall@10, wall ms and CPU ms (this process, all its threads) of each single query."""
    hits, lat, cpu = 0, [], []
    for q, t in zip(queries, truth, strict=True):
        start, start_cpu = time.perf_counter(), time.process_time()
        ids, _ = shard.search(q, K, settings)
        lat.append((time.perf_counter() - start) * 1000.0)
        cpu.append((time.process_time() - start_cpu) * 1000.0)
        hits += len(set(ids.tolist()) & set(t.tolist()))
    return hits / (K * len(queries)), lat, cpu


def bench(kind: str, n: int, args: argparse.Namespace) -> list[list[object]]:
    base, queries = dataset(kind, n, args.queries, args.cache, args.real_identities)
    dim = base.shape[1]
    tag = f"-{args.real_identities}" if kind == "real" else ""
    (truth,) = fv.cached(args.cache, f"truth-{kind}-{n}-{args.queries}{tag}",
                         lambda: (faiss_exact(base, queries),))
    print(f"# {kind} {n:,} × {dim}: effective dimension {fv.effective_dimension(base):.1f}; "
          f"load average {load_avg()}", flush=True)
    rows: list[list[object]] = []
    exact_p50 = exact_cpu = float("nan")
    for option in options(n, dim, args.hnsw_max):
        if args.only and not any(s in option.label for s in args.only.split(";")):
            continue
        settings = IndexConfig(hnsw_ef_construction=80, **option.settings)  # type: ignore[arg-type]
        gc.collect()
        index, build = get_index(option, kind, n, base, settings, args)
        configure(index, settings)
        shard = Shard(Manifest(model_id="bench", window="2024-05-01", dimension=dim, factory=option.factory), index)
        size_mb = faiss.serialize_index(index).nbytes / 2**20
        shard.search(queries[0], K, settings)  # warm-up
        recall, lat, cpu = measure(shard, settings, queries, truth)
        p50, p99, cpu50 = percentile(lat, 50), percentile(lat, 99), percentile(cpu, 50)
        if option.factory == "Flat":
            exact_p50 = p50
        if option.factory == "Flat":
            exact_cpu = cpu50
        row = [kind, f"{n:,}", option.label, build, f"{size_mb:.0f}", f"{recall:.3f}", f"{p50:.2f}", f"{p99:.2f}",
               f"{cpu50:.2f}", f"{cpu50 / exact_cpu:.3f}", load_avg().split()[0]]
        print("  " + " | ".join(str(c) for c in row), flush=True)
        rows.append(row)
        save(args.json, "face_index", {"data": kind, "n": n, "dim": dim, "option": option.label, "build": build,
                                       "index_mb": size_mb, "recall10": recall, "p50_ms": p50, "p99_ms": p99, "cpu_p50_ms": cpu50,
                                       "exact_p50_ms": exact_p50, "load": load_avg()})
        del shard, index
    print(f"# {kind} {n:,}: done; load average {load_avg()}", flush=True)
    return rows


def faiss_exact(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    return flat.search(queries, K)[1]


def get_index(option: Option, kind: str, n: int, base: np.ndarray, settings: IndexConfig,
              args: argparse.Namespace) -> tuple[faiss.Index, str]:
    path = args.cache / f"index-{kind}-{n}-{option.factory.replace(',', '_')}.faiss"
    if option.cache and path.exists() and not args.rebuild:
        return faiss.read_index(str(path)), "cached"
    start = time.monotonic()
    set_threads(args.build_threads)
    index = build_index(base, option.factory, settings)
    set_threads(args.search_threads)
    build = f"{time.monotonic() - start:.1f}"
    if option.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(path))
    return index, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated base sizes")
    parser.add_argument("--data", default="synthetic,real", help="synthetic, real or both")
    parser.add_argument("--queries", type=int, default=200, help="queries (recall and latency, one at a time)")
    parser.add_argument("--real-identities", type=int, default=300,
                        help="pseudo-identities embedded by dlib for the real set (6 faces each)")
    parser.add_argument("--hnsw-max", type=int, default=1_000_000, help="build HNSW only up to this size")
    parser.add_argument("--only", default="", help="semicolon-separated label substrings: run only those options")
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "bench" / "face-index")
    parser.add_argument("--search-threads", type=int, default=IndexConfig().search_threads,
                        help="OpenMP threads while searching (default: index.search_threads, as the query layer)")
    parser.add_argument("--build-threads", type=int, default=2, help="OpenMP threads while building")
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached indexes")
    parser.add_argument("--json", type=Path, default=None, help="append raw results to this JSON-lines file")
    args = parser.parse_args()
    set_threads(args.search_threads)
    print(f"machine: {machine()}; FAISS {faiss.__version__}, {args.search_threads} search thread(s); "
          f"load average {load_avg()}", flush=True)
    rows: list[list[object]] = []
    for kind in args.data.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            rows += bench(kind, n, args)
    print()
    print(table(["data", "vectors", "index", "build s", "index MB", "recall@10", "p50 ms", "p99 ms",
                 "CPU p50 ms", "CPU / exact", "load"], rows))


if __name__ == "__main__":
    main()
