"""The indexer's flush on the real S3 server: Parquet segments (today's default) against Delta table commits, same run.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python -m benchmarks.index.delta_flush --records 2000 --cameras 50 --rounds 7

Starts a private local stack (SeaweedFS S3 + broker, free ports), then for ``--rounds`` rounds buffers the same
shape of batch — ``--records`` track summaries and as many plate reads over ``--cameras`` cameras on one UTC day,
one bus partition per camera — into :class:`workers.index.writer.CatalogWriter` and times one flush of each path,
alternating which goes first, one writer per path for the whole run: ``flush()`` (one Parquet segment per kind, camera and partition) and
``flush_tables()`` (one Delta commit per kind, one data file per date and bucket, offsets recorded per
partition). Each path runs as the indexer's own store identity. Prints medians of wall and CPU seconds, the
objects each flush wrote, records per second and the ratio, and the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from benchmarks.search import synthetic as syn
from pipeline.catalog.format import PLATE_KIND, TRACK_KIND, RowMeta
from pipeline.catalog.table import TableCatalog
from pipeline.config import with_overrides
from pipeline.config.stack import StackConfig
from pipeline.stack import LocalStack, free_port_block
from pipeline.store import open_store
from workers.index.writer import CatalogWriter

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def fill(writer: CatalogWriter, records: int, cameras: int, first_offset: int, rng: np.random.Generator) -> None:
    for i in range(records):
        cam = f"cam-{i % cameras:04d}"
        at = T0 + timedelta(seconds=(first_offset + i) * 0.5)
        car = syn.track(cam, first_offset + i, at, colour="white", vehicle_type="car")
        meta = RowMeta(i % cameras, first_offset + i, datetime.now(UTC))
        writer.add(TRACK_KIND, car, meta)
        writer.add(PLATE_KIND, syn.plate(car, syn.random_plate(rng)), meta)


def start_stack(state: Path) -> LocalStack:
    seaweed = free_port_block(4, also_grpc=True)
    s3 = free_port_block(1, also_grpc=True)
    kafka = free_port_block(1)
    stack = LocalStack(StackConfig(state_dir=state, kafka_port=kafka, s3_port=s3, seaweed_base_port=seaweed,
                                   start_timeout_s=60))
    stack.up()
    return stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000, help="track summaries per flush (as many plate reads)")
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp) / "stack")
        try:
            config = with_overrides(stack.client_config(as_="index"), {"index.table_buckets": 16})
            store = open_store(config)
            tables = TableCatalog(config.store, config.index)
            results: dict[str, list[tuple[float, float, int]]] = {"parquet segments": [], "delta commits": []}
            offset = 0
            # one writer per path for the whole run, as in a running indexer (the Parquet writer reads a partition's
            # identities once, on first touch, and keeps them)
            writers = {path: CatalogWriter(store, config.index) for path in results}
            for r in range(args.rounds):
                order = ["parquet segments", "delta commits"] if r % 2 == 0 else ["delta commits", "parquet segments"]
                for path in order:
                    writer = writers[path]
                    fill(writer, args.records, args.cameras, offset, rng)
                    offset += args.records
                    wall, cpu = time.perf_counter(), time.process_time()
                    if path == "parquet segments":
                        objects = len(writer.flush())
                    else:
                        before = {k: len(tables.files(k)) for k in ("tracks", "plates")}
                        writer.flush_tables(tables, "bench")
                        objects = sum(len(tables.files(k)) - before[k] for k in ("tracks", "plates"))
                    results[path].append((time.perf_counter() - wall, time.process_time() - cpu, objects))
        finally:
            stack.down()
    rows = 2 * args.records
    print(f"load average {os.getloadavg()}; {rows} rows per flush ({args.records} tracks + {args.records} plate "
          f"reads, {args.cameras} cameras, 1 day), {args.rounds} rounds, SeaweedFS S3 as the index identity")
    print("| path | wall p50 s | CPU p50 s | files per flush | rows/s (wall p50) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    medians = {}
    for path, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        medians[path] = (wall, cpu)
        print(f"| {path} | {wall:.3f} | {cpu:.3f} | {statistics.median(r[2] for r in runs):.0f} | {rows / wall:,.0f} |")
    (pw, pc), (dw, dc) = medians["parquet segments"], medians["delta commits"]
    print(f"delta / parquet: wall {dw / pw:.2f}x, CPU {dc / pc:.2f}x")


if __name__ == "__main__":
    main()
