"""FAISS recall@10 against exact search, and single-query latency, for each index type the shards use.

Synthetic faces (``benchmarks/search/synthetic.py``): ``n / 5`` identities, each face its identity's
centre plus noise; queries are fresh faces of identities in the base (the case an investigator has:
another photo of someone who was filmed). Ground truth is exact inner-product search (IndexFlatIP).
Every index is built with the production code (``pipeline.catalog.shards.build_index``): Flat, IVF with
``nlist`` = the power of two nearest sqrt(n) at a few ``nprobe`` values, HNSW32 at a few
``efSearch`` values.

Two recalls: **recall@10** against the exact top 10 (what FAISS's own evaluations report), and
**match recall@10**, the share of the exact top 10 with a cosine of at least 0.5 — the faces of the
same person — that the index returns. With about five faces per person the rest of the exact top 10
is near-random strangers at cosine ≈ 0.3 whose order no approximate index keeps, so recall@10
understates what an investigator sees; match recall is the number that matters for face search.

    .venv/bin/python benchmarks/search/faiss_bench.py                    # 10^5 and 10^6, 128-d and 512-d
    .venv/bin/python benchmarks/search/faiss_bench.py --sizes 100000 --dims 128   # quick

HNSW construction is the slow part on a small machine (about 7 min for 10^6 × 512 on 2 cores), so
HNSW is built only where n × dim ≤ ``--hnsw-max-cells`` (default 1.3e8: every size at 128-d, 10^5 at
512-d); raise it to build the rest.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
import faiss  # noqa: E402
import numpy as np
from common import machine, percentile, save, table, timed

from benchmarks.search import synthetic as syn  # noqa: E402
from pipeline.catalog.shards import build_index, nlist_for  # noqa: E402
from pipeline.config.index import IndexConfig  # noqa: E402

K = 10
MATCH = 0.5


def dataset(n: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    people = max(1, n // 5)
    centres = syn.identities(rng, people, dim)
    base = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for i in range(0, n, step):  # in chunks: the noise matrix of 10^6 × 512 alone would be 2 GB more
        m = min(step, n - i)
        base[i:i + m] = syn.faces_of(rng, centres, rng.integers(0, people, size=m))
    q = syn.faces_of(rng, centres, rng.integers(0, people, size=queries))
    return base, q


def ground_truth(base: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, list[set[int]]]:
    """Exact top-10 IDs, and per query the IDs among them with cosine ≥ MATCH (the same person)."""
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    scores, ids = flat.search(queries, K)
    return ids, [set(i[s >= MATCH].tolist()) for s, i in zip(scores, ids, strict=True)]


def recall(found: np.ndarray, truth: list[set[int]] | np.ndarray) -> float:
    hits = sum(len(set(f[:K].tolist()) & set(t)) for f, t in zip(found, truth, strict=True))
    return hits / max(1, sum(len(t) for t in truth))


def measure(index: faiss.Index, queries: np.ndarray, truth: np.ndarray, matches: list[set[int]],
            latency_queries: int) -> tuple[float, float, float, float]:
    found = index.search(queries, K)[1]
    it = iter(range(10**9))
    lat = timed(lambda: index.search(queries[next(it) % len(queries)][None], K), latency_queries)
    return recall(found, truth), recall(found, matches), percentile(lat, 50), percentile(lat, 99)


def configs(n: int, dim: int, hnsw_max_cells: float) -> list[tuple[str, str, str, dict]]:
    """(label, factory, parameter label, search parameters)."""
    out: list[tuple[str, str, str, dict]] = [("Flat", "Flat", "-", {})]
    nlist = nlist_for(n)
    out += [("IVF", f"IVF{nlist},Flat", f"nlist={nlist} nprobe={p}", {"nprobe": p}) for p in (8, 32, 128)]
    if n * dim <= hnsw_max_cells:
        out += [("HNSW", "HNSW32,Flat", f"M=32 efC=80 efSearch={e}", {"efSearch": e}) for e in (64, 128)]
    return out


def bench(n: int, dim: int, args: argparse.Namespace) -> list[list[object]]:
    t = time.monotonic()
    base, queries = dataset(n, dim, args.queries)
    truth, matches = ground_truth(base, queries)
    per_query = sum(len(m) for m in matches) / len(matches)
    print(f"# {n} × {dim}: data and ground truth in {time.monotonic() - t:.1f} s; "
          f"{per_query:.1f} same-person faces per query in the exact top {K}", flush=True)
    rows: list[list[object]] = []
    built: dict[str, tuple[faiss.Index, float]] = {}
    for label, factory, params, search in configs(n, dim, args.hnsw_max_cells):
        if factory not in built:
            built.clear()
            gc.collect()
            t = time.monotonic()
            built[factory] = (build_index(base, factory, IndexConfig(hnsw_ef_construction=80)), time.monotonic() - t)
        index, build_s = built[factory]
        if "nprobe" in search:
            faiss.extract_index_ivf(index).nprobe = search["nprobe"]
        if "efSearch" in search:
            index.hnsw.efSearch = search["efSearch"]
        raw, rr, p50, p99 = measure(index, queries, truth, matches, args.latency_queries)
        row = [dim, f"{n:,}", label, params, f"{build_s:.1f}", f"{raw:.3f}", f"{rr:.3f}", f"{p50:.2f}", f"{p99:.2f}"]
        print("  " + " | ".join(str(c) for c in row), flush=True)
        rows.append(row)
        save(args.json, "faiss", {"n": n, "dim": dim, "index": label, "params": params, "build_s": build_s,
                                  "recall10": raw, "match_recall10": rr, "p50_ms": p50, "p99_ms": p99})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated base sizes")
    parser.add_argument("--dims", default="128,512", help="comma-separated dimensions (dlib 128, ArcFace 512)")
    parser.add_argument("--queries", type=int, default=200, help="queries for recall")
    parser.add_argument("--latency-queries", type=int, default=100, help="single queries timed per index")
    parser.add_argument("--hnsw-max-cells", type=float, default=1.3e8, help="build HNSW only where n × dim ≤ this")
    parser.add_argument("--json", type=Path, default=None, help="append raw results to this JSON-lines file")
    args = parser.parse_args()
    print(f"machine: {machine()}; FAISS {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads")
    rows = []
    for dim in (int(d) for d in args.dims.split(",")):
        for n in (int(s) for s in args.sizes.split(",")):
            rows += bench(n, dim, args)
    print()
    print(table(["dim", "vectors", "index", "parameters", "build s", "recall@10", "match recall@10",
                 "p50 ms", "p99 ms"], rows))


if __name__ == "__main__":
    main()
