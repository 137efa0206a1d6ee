"""Indexer throughput: records per second from the bus into Parquet segments (and face shards).

Publishes ``--records`` messages of one kind (or a realistic mix) to the in-memory bus, then times
one IndexWorker consuming all of them into a local-folder store: decode and validate (pydantic),
buffer, write Parquet (zstd), add faces to the FAISS shard, commit. Publishing is not timed. The
Kafka and S3 backends add network time on top; the CPU work is this.

    .venv/bin/python benchmarks/search/indexer_bench.py
    .venv/bin/python benchmarks/search/indexer_bench.py --records 5000   # quick
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import common  # noqa: F401 - puts the repository on sys.path
import numpy as np
from common import machine, save, table

from benchmarks.search import synthetic as syn  # noqa: E402
from pipeline.bus.memory import MemoryBus  # noqa: E402
from pipeline.config import TubelineConfig  # noqa: E402
from pipeline.config.index import IndexConfig  # noqa: E402
from pipeline.store.local import LocalStore  # noqa: E402
from schemas.topics import ALERTS, FACES, PLATES, TRACKS  # noqa: E402
from workers.index.worker import IndexWorker  # noqa: E402

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)
CONFIG = TubelineConfig.model_validate({"runtime": {"poll_timeout_s": 0.01}})


def messages(kind: str, count: int, dim: int, seed: int = 0) -> Iterator[tuple[str, str, bytes]]:
    """(topic, camera, JSON) of ``count`` messages of a kind, or a mix like a busy road with walkers."""
    rng = np.random.default_rng(seed)
    people = syn.identities(rng, 500, dim)
    for i in range(count):
        cam = f"cam-{i % 50:02d}"
        at = T0 + timedelta(seconds=i)
        pick = kind if kind != "mix" else ("tracks", "plates", "tracks", "faces", "faces", "plates", "alerts")[i % 7]
        if pick == "tracks":
            yield TRACKS.name, cam, syn.track(cam, i, at).to_json()
        elif pick == "plates":
            yield PLATES.name, cam, syn.plate(syn.track(cam, i, at), syn.random_plate(rng)).to_json()
        elif pick == "faces":
            walker = syn.track(cam, i, at, class_name="person", vehicle_type=None)
            v = syn.faces_of(rng, people, rng.integers(0, len(people), size=1))[0]
            yield FACES.name, cam, syn.face(walker, 0, v).to_json()
        else:
            yield ALERTS.name, cam, syn.alert(cam, i, at).to_json()


def run(kind: str, count: int, dim: int, work: Path) -> tuple[float, int, int]:
    """Seconds to index ``count`` messages, segments written, bytes stored."""
    bus = MemoryBus(default_partitions=6)
    store = LocalStore(work / kind / "store")
    with bus.producer() as producer:
        for topic, cam, value in messages(kind, count, dim):
            producer.send(topic, value, key=cam)
        producer.flush()
    worker = IndexWorker(CONFIG, bus=bus, store=store,
                         settings=IndexConfig(cache_dir=work / "cache", flush_max_records=5000))
    worker.setup()
    t = time.monotonic()
    while worker.processed + worker.writer.records < count:
        worker.step()
    worker.drain()
    elapsed = time.monotonic() - t
    worker.teardown()
    infos = list(store.list("catalog/"))
    return elapsed, len(infos), sum(i.size for i in infos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="messages per run")
    parser.add_argument("--dim", type=int, default=512, help="face embedding size")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="tubeline-indexer-bench-"))
    rows = []
    try:
        for kind in ("tracks", "plates", "faces", "alerts", "mix"):
            count = args.records if kind != "faces" else max(1000, args.records // 4)
            elapsed, segments, size = run(kind, count, args.dim, work)
            label = f"faces ({args.dim}-d)" if kind == "faces" else kind
            rows.append([label, f"{count:,}", f"{elapsed:.1f}", f"{count / elapsed:,.0f}", segments,
                         f"{size / count:.0f}"])
            print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
            save(args.json, "indexer", {"kind": kind, "records": count, "seconds": elapsed,
                                        "records_per_s": count / elapsed, "segments": segments, "bytes": size})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(["records", "messages", "seconds", "records/s", "segments", "stored bytes/record"], rows))


if __name__ == "__main__":
    main()
