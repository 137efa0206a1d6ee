"""The indexer worker (``tubeline worker index``): result topics in, Parquet catalog and FAISS shards out.

Consumes ``tracks.v1``, ``plates.v1``, ``faces.v1``, ``alerts.v1``, ``camera-status.v1`` and ``camera-health.v1`` in the
consumer group ``tubeline-index`` and appends the records to the Parquet catalog in the object store
(:mod:`pipeline.catalog.format`), one segment per kind, UTC date, camera and bus partition, flushed
when ``index.flush_max_records`` records or ``index.flush_max_bytes`` bytes are buffered or the
oldest buffered record is ``index.flush_interval_s`` old. Face embeddings also go into FAISS
shards per model and window (:mod:`workers.index.faces`), snapshotted every
``index.shard_snapshot_interval_s``.

Delivery: **at-least-once, one row per idempotency key**. Offsets are committed only after every
segment holding the polled messages was acknowledged by the object store — or spooled to local disk
through a store outage (:mod:`pipeline.spool`) — and dead letters were flushed; a crash before that
replays the uncommitted messages. A replayed record whose idempotency key (for plates: key and
``revision``) the catalog partition already holds is not written again (:mod:`workers.index.writer`),
so redeliveries — an indexer restart, or a detect worker replaying track summaries after a crash —
add no rows. Where that check cannot see a copy (a partition written by two indexers during a
rebalance) the query layer and compaction still keep one row per key. FAISS shards skip face IDs they already hold. A message that is not valid JSON
of its topic's schema goes to ``<topic>.dlq`` with the reason and is committed with the batch.
Commits refused after a rebalance are logged; the partition's new owner replays those messages.

With ``index.catalog_format: delta`` every kind goes to its Delta table instead (``docs/design/catalog.md``): a
flush is one commit per kind, carrying per bus partition the last offset it holds (``txn`` app id
``{group}:{topic}:{partition}``); rows at or below an offset a table already recorded are dropped before writing.
So a crash between a table's data files and its commit (the files are in no log), or between the table commits
and the Kafka offset commit (the replay is below the recorded offsets), adds no row and loses none; the Kafka
offset commit, which follows the table commits, is only where a restart resumes. Face rows are also written as
Parquet segments, as before, because the FAISS shards are built from those. There is no local spool on this
path: a store outage fails the flush and the bus replays after the restart.

Compaction: after ``index.compact_after_parts`` segments written by this worker to one
kind/date/camera partition (faces excepted: shard manifests name face segments), the partition is
merged into one deduplicated segment (:mod:`workers.index.compact`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from pipeline import metrics
from pipeline.bus.base import Message, TopicSpec, dead_letter_topic
from pipeline.catalog.format import FACE_KIND, KIND_BY_TOPIC, KINDS, RowMeta
from pipeline.catalog.shards import ShardError
from pipeline.catalog.table import TableCatalog
from pipeline.config.index import IndexConfig
from pipeline.runtime.worker import BadMessage, ConsumerWorker
from pipeline.spool import spool_of
from pipeline.store.base import StoreError
from workers.index.compact import compact_partition
from workers.index.faces import FaceShardKeeper
from workers.index.writer import CatalogWriter, Written

if TYPE_CHECKING:
    import threading

    from pipeline.bus.base import Bus
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)

GROUP = "tubeline-index"


class IndexWorker(ConsumerWorker):
    """Writes tracks, plates, faces, alerts, camera status and health into the Parquet catalog and FAISS shards.

    The delivery guarantee: see the module docstring.
    """

    name = "index"
    topics: ClassVar = tuple(k.topic.name for k in KINDS)
    group: ClassVar = GROUP
    max_batch: ClassVar = 500

    def __init__(
        self,
        config: TubelineConfig,
        *,
        bus: Bus,
        store: ObjectStore,
        stop_event: threading.Event | None = None,
        settings: IndexConfig | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, bus=bus, store=store, stop_event=stop_event)
        self.settings = settings if settings is not None else config.index
        self.monotonic = monotonic
        self.writer = CatalogWriter(store, self.settings, monotonic=monotonic)
        self.tables: TableCatalog | None = None
        """The Delta tables (``index.catalog_format: delta``), written with the worker's own store credentials."""
        if self.settings.catalog_format == "delta":
            self.tables = TableCatalog(config.store, self.settings)
        if self.settings.build_threads:  # process-wide in FAISS; the indexer owns its process's FAISS use
            import faiss

            faiss.omp_set_num_threads(self.settings.build_threads)
        self.faces = FaceShardKeeper(store, self.settings, monotonic=monotonic)
        self.pending: list[Message] = []
        self.pending_times: list[tuple[str, datetime]] = []
        """(kind, event time) of the buffered records, for the capture → indexed latency."""
        self.pending_since: float | None = None
        self.parts_written: Counter[tuple[str, str, str]] = Counter()
        self.flushes = 0
        self.compactions = 0

    def topic_specs(self) -> Sequence[TopicSpec]:
        specs = [TopicSpec(k.topic.name, k.topic.partitions, k.topic.retention_ms) for k in KINDS]
        specs += [TopicSpec(dead_letter_topic(k.topic.name), 1) for k in KINDS]
        return specs

    # -- the loop --------------------------------------------------------------------------------
    def step(self) -> None:
        room = max(1, self.settings.flush_max_records - self.writer.records)  # segments never exceed the flush size
        batch = self.poll(min(self.max_batch, room))
        if batch:
            self.handle(batch)
            self.pending.extend(batch)
            self.observe_batch(batch)
            if self.pending_since is None:
                self.pending_since = self.monotonic()
        if self._flush_due():
            self.flush()
        if self.faces.snapshot_due() and not self._store_degraded():
            self.faces.snapshot()

    def handle_message(self, message: Message) -> None:
        kind = KIND_BY_TOPIC.get(message.topic)
        if kind is None:
            msg = f"unexpected topic {message.topic!r}"
            raise BadMessage(msg)
        try:
            parsed = kind.message.from_json(message.value)
        except ValueError as exc:
            msg = f"invalid {message.topic} message: {exc}"
            raise BadMessage(msg) from None
        meta = RowMeta(message.partition, message.offset, datetime.now(UTC))
        self.writer.add(kind, parsed, meta, len(message.value))
        # A track is complete when it ends: its capture → indexed latency counts from there.
        ready = getattr(parsed, "ended_at", None) or kind.event_time(parsed)
        self.pending_times.append((kind.name, ready))

    def _flush_due(self) -> bool:
        if not self.pending:
            return False
        if self.writer.due():
            return True
        assert self.pending_since is not None
        return self.monotonic() - self.pending_since >= self.settings.flush_interval_s

    def flush(self) -> list[Written]:
        """Write the buffered segments (or commit the tables), index the faces, flush dead letters, then commit."""
        assert self.consumer is not None and self.producer is not None
        if self.tables is not None:
            written = self.writer.flush_tables(self.tables, self.group or self.name)
        else:
            written = self.writer.flush()
        self.producer.flush()
        if self.pending and self.commit(self.pending):
            self.processed += len(self.pending)
        indexed_at = datetime.now(UTC)
        for kind_name, event_time in self.pending_times:
            metrics.observe_latency(f"indexed_{kind_name.replace('-', '_')}", event_time, indexed_at)
        self.pending_times.clear()
        self.pending.clear()
        self.pending_since = None
        self.flushes += 1
        if self._store_degraded():
            # Segments are spooled, not listed by the store yet: the shards catch up from the catalog later.
            self.faces.shards.clear()
            return written
        try:
            self.faces.add(written)
        except (StoreError, ShardError, RuntimeError, ValueError, OSError):
            # Shards are derived from the catalog, which is already written: forget them and let the
            # next open catch up (or rebuild) from the segments.
            log.exception("index: face shards not updated; they will catch up from the catalog")
            self.faces.shards.clear()
        self._compact(written)
        return written

    def _store_degraded(self) -> bool:
        spooled = spool_of(self.store)
        return spooled is not None and bool(spooled.degraded)

    def _compact(self, written: list[Written]) -> None:
        every = self.settings.compact_after_parts
        if every <= 0:
            return
        for w in written:
            if w.ref.kind == FACE_KIND.name:
                continue
            part = (w.ref.kind, w.ref.date, w.ref.camera_id)
            self.parts_written[part] += 1
            if self.parts_written[part] >= every:
                try:
                    compact_partition(self.store, self.settings, *part)
                except StoreError as exc:  # the segments stay as they are; the next round merges them
                    log.warning("index: compaction of %s postponed: %s", "/".join(part), exc)
                    continue
                self.parts_written[part] = 0
                self.compactions += 1

    def drain(self) -> None:
        if self.pending:
            self.flush()
        if not self._store_degraded():
            self.faces.snapshot()

    def teardown(self) -> None:
        try:
            if self.consumer is not None and self.writer.records:
                log.info("index: stopping with %d unflushed record(s); they will be replayed", self.writer.records)
        finally:
            super().teardown()
