"""The indexer on ``index.catalog_format: delta`` on the real Kafka-protocol broker and S3 server, each process under
its own store identity (the indexer writes the tables, the API only reads them).

* An indexer dies after writing the plates table's data files but before committing them, a second one dies after
  the table commits but before the Kafka offset commit, a third finishes: the tables then hold exactly the rows of
  a fault-free run of the same messages, one per idempotency key, and the API's identity answers track and alert
  queries from them as from the fault-free tables (and may not write there).
* Two indexers in one consumer group, each holding some of the partitions, commit to the same tables at once:
  every row once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.bus import open_bus
from pipeline.catalog.format import KIND_BY_NAME, KIND_BY_TOPIC
from pipeline.catalog.table import TableCatalog
from pipeline.config import TubelineConfig, with_overrides
from pipeline.search.service import SearchService
from pipeline.store import open_store
from schemas.common import WireMessage
from tests.flow.test_index_delta_flow import PLATE, T0, scene
from workers.index.worker import IndexWorker
from workers.index.writer import row_identities

pytestmark = pytest.mark.integration

INDEX = {"runtime.poll_timeout_s": 0.2, "index.catalog_format": "delta", "index.flush_max_records": 40,
         "index.flush_interval_s": 0.3, "index.compact_after_parts": 0, "index.table_buckets": 4}


class Crash(RuntimeError):
    """The indexer process dies here."""


def as_index(real_stack: Any, prefix: str, tables: str, tmp: Path) -> TubelineConfig:
    """The indexer's configuration: its own store identity, topics under ``prefix``, tables under ``tables/…``
    (inside the ``tables/`` prefix its grant names)."""
    return with_overrides(real_stack.as_service("index", prefix),
                          {**INDEX, "index.table_prefix": f"tables/{tables}", "index.cache_dir": str(tmp / "c")})


def publish(config: TubelineConfig, messages: list[tuple[str, WireMessage]]) -> None:
    bus = open_bus(config)
    bus.ensure_topics(IndexWorker(config, bus=bus, store=open_store(config)).topic_specs())
    with bus.producer() as producer:
        for topic, message in messages:
            producer.send(topic, message.to_json(), key=message.camera_id)  # type: ignore[attr-defined]
        producer.flush()


def group_position(worker: IndexWorker) -> int:
    """Messages the worker's group has committed: the sum of its committed offsets over the worker's partitions
    (it is the group's only member, and every partition's offsets start at 0)."""
    assert worker.consumer is not None
    return sum(worker.consumer.committed(tp) or 0 for tp in worker.consumer.assignment())


def run(worker: IndexWorker, count: int, stall: float = 60.0, cap: float = 300.0) -> None:
    """Steps ``worker`` until its group has committed all ``count`` messages (an earlier member may have
    committed some: under load the first crashed indexer's first flush can hold no plate and commit). Fails when
    the worker commits nothing for ``stall`` seconds or takes over ``cap`` in all."""
    started = last_move = time.monotonic()
    seen, position = worker.processed, -1
    try:
        while position < count:
            now = time.monotonic()
            if worker.processed != seen or position < 0:
                seen, last_move = worker.processed, now
                position = group_position(worker)
                continue
            assert now - last_move < stall and now - started < cap, (
                f"{position} of {count} messages committed ({worker.processed} by this worker) after "
                f"{now - started:.0f} s, none for {now - last_move:.0f} s")
            worker.step()
        worker.drain()
    except Crash:
        assert worker.consumer is not None
        worker.consumer.close()  # the process is gone; nothing more is committed
        raise
    worker.teardown()


def rows_of(config: TubelineConfig) -> dict[str, list[str]]:
    """Per kind, the sorted identities (idempotency key + content) of the table's rows."""
    tables = TableCatalog(config.store, config.index)
    return {kind: sorted(row_identities(tables.read(kind))) for kind in
            sorted({KIND_BY_TOPIC[t].name for t, _ in scene()})}


def test_indexer_killed_between_write_and_commit_leaves_the_rows_of_a_fault_free_run(
        real_stack: Any, unique_name: str, tmp_path: Path) -> None:
    messages = scene()
    reference = as_index(real_stack, f"{unique_name}r", f"{unique_name}-ref", tmp_path / "ref")
    faulted = as_index(real_stack, f"{unique_name}f", f"{unique_name}-run", tmp_path / "run")
    for config in (reference, faulted):
        publish(config, messages)
    def worker(config: TubelineConfig = faulted) -> IndexWorker:
        w = IndexWorker(config, bus=open_bus(config), store=open_store(config))
        w.setup()
        return w

    run(worker(reference), len(messages))

    def die(*_: object) -> None:
        raise Crash

    first = worker()
    assert first.tables is not None
    first.tables.before_commit = lambda kind: die() if kind == "plates" else None  # data files written, no commit
    with pytest.raises(Crash):
        run(first, len(messages))
    second = worker()
    second.consumer.commit = die  # type: ignore[method-assign,union-attr]  # tables committed, offsets not
    with pytest.raises(Crash):
        run(second, len(messages))
    third = worker()
    run(third, len(messages))
    assert third.writer.duplicates_skipped > 0  # it replayed what the second had committed to the tables

    want, got = rows_of(reference), rows_of(faulted)
    assert got == want
    assert sum(len(v) for v in got.values()) == len(messages)
    for kind, identities in got.items():
        assert len({i.split("#")[0] for i in identities}) == len(identities), kind  # one row per ikey

    # the API's identity reads the tables (plans from the log, reads the files) and answers as from the reference
    answers = []
    for tables in (f"{unique_name}-ref", f"{unique_name}-run"):
        api = with_overrides(real_stack.as_service("api", f"{unique_name}x"),
                             {**INDEX, "index.table_prefix": f"tables/{tables}",
                              "index.cache_dir": str(tmp_path / tables)})
        search = SearchService(open_store(api), api)
        answers.append((search.vehicles(limit=1000), search.alerts(), search.plate_trajectory(PLATE),
                        search.tracks(start=T0, end=T0 + timedelta(hours=1))))
        search.close()
    assert answers[1] == answers[0]
    assert len(answers[1][0]) == 24 and len(answers[1][1]) == 6 and len(answers[1][2]) == 6
    # ... and may not write them
    with pytest.raises(Exception, match="(?i)denied|forbidden|403"):  # PyArrow's S3 client refuses the data file
        TableCatalog(api.store, api.index).append(KIND_BY_NAME["alerts"], TableCatalog(
            faulted.store, faulted.index).read("alerts").drop_columns(["date", "bucket"]), group="api")


def test_two_indexers_in_one_group_commit_their_partitions_safely(
        real_stack: Any, unique_name: str, tmp_path: Path) -> None:
    messages = scene(tuple(f"cam-{i}" for i in range(8)))  # eight cameras: spread over both members' partitions
    config = as_index(real_stack, unique_name, unique_name, tmp_path)
    publish(config, [])
    workers = [IndexWorker(config, bus=open_bus(config), store=open_store(config)) for _ in range(2)]
    for w in workers:
        w.setup()
    reader = TableCatalog(config.store, config.index)
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(w: IndexWorker) -> None:
        try:
            while not stop.is_set():
                w.step()
            w.drain()
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    # each member polls on its own thread from the start, as in a deployment: stepped in turn from one thread, a
    # member blocked in its poll held up the other's rejoin, and the group took over 45 s to settle under load
    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    try:
        while not all(w.consumer is not None and w.consumer.assignment() for w in workers):
            assert time.monotonic() < deadline and not errors, f"the group never gave both members partitions {errors}"
            time.sleep(0.2)
    except BaseException:
        stop.set()
        for t in threads:
            t.join(30)
        for w in workers:
            w.teardown()
        raise
    publish(config, messages)
    want = Counter(KIND_BY_TOPIC[t].name for t, _ in messages)
    deadline = time.monotonic() + 120
    try:
        while Counter({k: reader.read(k).num_rows for k in want}) != want:
            assert time.monotonic() < deadline and not errors, "the tables never held every message"
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for w in workers:
            w.teardown()
    assert errors == []
    for kind, count in want.items():
        ikeys = reader.read(kind).column("ikey").to_pylist()
        assert len(ikeys) == len(set(ikeys)) == count, kind
    assert all(w.writer.records_written > 0 for w in workers)  # both members committed rows to the tables
