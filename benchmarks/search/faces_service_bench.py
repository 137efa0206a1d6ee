"""Face search through SearchService: shard build from Parquet, snapshot load, query latency with filters.

Writes ``--faces`` synthetic faces (one day, ``--cameras`` cameras, five faces per person) as catalog
segments, then measures: building the day's shard from the Parquet segments (what happens when a
shard is lost), loading it from its snapshot (a restart), and ``SearchService.faces`` latency with no
filter, with a one-camera scope and with a one-hour window — the selector path — including the exact
re-ranking and the result rows.

    .venv/bin/python benchmarks/search/faces_service_bench.py                      # 10^5 × 512
    .venv/bin/python benchmarks/search/faces_service_bench.py --faces 20000 --dim 128
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
import numpy as np
import pyarrow as pa
from common import machine, percentile, save, table, timed

from benchmarks.search import synthetic as syn  # noqa: E402
from pipeline.catalog.format import FACE_KIND, segment_key, table_bytes  # noqa: E402
from pipeline.config import TubelineConfig  # noqa: E402
from pipeline.config.index import IndexConfig  # noqa: E402
from pipeline.search.service import SearchService  # noqa: E402
from pipeline.store.local import LocalStore  # noqa: E402

DAY = datetime(2024, 5, 1, tzinfo=UTC)
MODEL = "arcface-r50@1"


def face_table(vectors: np.ndarray, camera: str, first: int) -> pa.Table:
    n = len(vectors)
    seconds = np.sort(np.random.default_rng(first).integers(0, 86_400, size=n))
    at = [DAY + timedelta(seconds=int(s)) for s in seconds]
    ids = [f"{camera}:s:{first + i}" for i in range(n)]
    cols = {
        "face_id": [f"{t}.face.0" for t in ids], "track_id": ids, "camera_id": [camera] * n, "captured_at": at,
        "model_id": [MODEL] * n, "dimension": np.full(n, vectors.shape[1], np.int32),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]).cast(
            pa.list_(pa.float32())),
        "quality": np.full(n, 0.8), "sharpness": np.full(n, 0.8), "brightness": np.full(n, 0.8),
        "frontality": np.full(n, 0.8), "resolution": np.full(n, 1.0), "detection": np.full(n, 0.9),
        "crop_key": [f"faces/{camera}/{t}.jpg" for t in ids], "box": [[1.0, 2.0, 30.0, 40.0]] * n,
        "landmarks": [[0.0] * 10] * n, "ikey": [f"{t}.face.0" for t in ids], "ingested_at": at,
        "src_partition": np.zeros(n, np.int32), "src_offset": np.arange(first, first + n, dtype=np.int64),
    }
    return pa.table(cols, schema=FACE_KIND.schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--cameras", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--flat-max", type=int, default=None, help="index.flat_max_vectors (default: the config's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="tubeline-faces-bench-"))
    try:
        rng = np.random.default_rng(0)
        centres = syn.identities(rng, args.faces // 5, args.dim)
        vectors = syn.faces_of(rng, centres, rng.integers(0, len(centres), size=args.faces))
        store = LocalStore(work / "store")
        per = args.faces // args.cameras
        for c in range(args.cameras):
            t = face_table(vectors[c * per:(c + 1) * per], f"cam-{c:02d}", c * per)
            store.put(segment_key("catalog", "faces", f"cam-{c:02d}", "2024-05-01", 0, c * per, (c + 1) * per - 1,
                                  f"{c:012d}"), table_bytes(t))
        extra = {} if args.flat_max is None else {"flat_max_vectors": args.flat_max}
        settings = IndexConfig(cache_dir=work / "cache", **extra)
        service = SearchService(store, TubelineConfig(), settings=settings)
        service.refresh()
        queries = syn.faces_of(rng, centres, rng.integers(0, len(centres), size=args.repeat))
        t = time.monotonic()
        service.faces(queries[0], model_id=MODEL)
        build_s = time.monotonic() - t
        shard = next(iter(service.face_index.shards.values()))
        factory = shard.manifest.factory
        again = SearchService(store, TubelineConfig(), settings=settings)
        again.refresh()
        t = time.monotonic()
        again.faces(queries[0], model_id=MODEL)
        load_s = time.monotonic() - t
        rows = [["build shard from Parquet (lost shard)", f"{build_s * 1000:.0f}", "-"],
                ["open shard from its snapshot", f"{load_s * 1000:.0f}", "-"]]
        hour = DAY + timedelta(hours=12)
        cases = {
            "faces(k=20), no filter": {},
            "faces(k=20), 1 camera in scope": {"cameras": ["cam-03"]},
            f"faces(k=20), {args.cameras // 2} cameras in scope": {"cameras": [f"cam-{i:02d}" for i in range(0, args.cameras, 2)]},
            "faces(k=20), 1-hour window": {"start": hour, "end": hour + timedelta(hours=1)},
        }
        for name, kwargs in cases.items():
            it = iter(queries)
            lat = timed(lambda it=it, kwargs=kwargs: again.faces(next(it), model_id=MODEL, k=20, **kwargs),
                        args.repeat)
            rows.append([name, f"{percentile(lat, 50):.1f}", f"{percentile(lat, 99):.1f}"])
            print("  " + " | ".join(rows[-1]), flush=True)
            save(args.json, "faces_service", {"faces": args.faces, "dim": args.dim, "case": name,
                                              "factory": factory, "p50_ms": percentile(lat, 50),
                                              "p99_ms": percentile(lat, 99)})
        print()
        print(f"{args.faces:,} faces × {args.dim}-d in {args.cameras} cameras, one day; shard index {factory}")
        print(table(["operation", "p50 ms (or once)", "p99 ms"], rows))
        service.close()
        again.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
