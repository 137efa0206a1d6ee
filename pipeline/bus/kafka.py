"""Kafka bus backend (kafka-python 3.0.x): Apache Kafka in production, Tansu locally.

Only the plain Kafka API is used, so the same code runs against both. Consumers
never auto-commit and start from ``earliest`` when their group has no committed
offset (Tansu reports the latest offset wrongly, so ``latest`` is not relied on).
Producers use ``acks=all`` and :meth:`KafkaProducer.flush` surfaces any failed
send as :class:`BusError`, so a caller that flushes before committing its input
keeps the at-least-once guarantee described in :mod:`pipeline.bus.base`.

Topic names are mapped through ``topic_prefix`` (``"<prefix>.<name>"``) on the way
out and back, so workers only ever see canonical names.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTP
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from pipeline.bus.base import (
    Bus,
    BusError,
    Consumer,
    Headers,
    Message,
    Producer,
    TopicPartition,
    TopicSpec,
    normalize_headers,
)
from pipeline.config.bus import KafkaConfig
from pipeline.retry import RetryPolicy

log = logging.getLogger(__name__)

_MAX_RETAINED_BYTES = 256 << 20


def _client_settings(config: KafkaConfig) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in config.bootstrap_servers.split(",") if s.strip()],
        "security_protocol": config.security_protocol,
        "request_timeout_ms": config.request_timeout_ms,
    }
    if config.sasl_mechanism:
        settings["sasl_mechanism"] = config.sasl_mechanism
        settings["sasl_plain_username"] = config.sasl_username
        settings["sasl_plain_password"] = config.sasl_password.get_secret_value() if config.sasl_password else None
    return settings


class KafkaBus(Bus):
    name = "kafka"

    def __init__(self, config: KafkaConfig, *, topic_prefix: str = "", default_partitions: int = 6) -> None:
        self.config = config
        self.topic_prefix = topic_prefix
        self.default_partitions = default_partitions

    def external(self, topic: str) -> str:
        return f"{self.topic_prefix}.{topic}" if self.topic_prefix else topic

    def internal(self, topic: str) -> str:
        prefix = f"{self.topic_prefix}." if self.topic_prefix else ""
        return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic

    def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        specs = list(specs)
        if not specs:
            return
        try:
            admin = KafkaAdminClient(client_id=f"{self.config.client_id}-admin", **_client_settings(self.config))
        except KafkaError as exc:
            msg = f"cannot reach Kafka at {self.config.bootstrap_servers}: {exc}"
            raise BusError(msg) from exc
        try:
            existing = set(admin.list_topics())
            new = []
            for spec in specs:
                name = self.external(spec.name)
                if name in existing:
                    continue
                configs = dict(spec.config)
                if spec.retention_ms is not None:
                    configs["retention.ms"] = str(spec.retention_ms)
                new.append(NewTopic(name, spec.partitions, self.config.replication_factor, topic_configs=configs))
            for topic in new:
                try:
                    admin.create_topics([topic])
                except TopicAlreadyExistsError:
                    pass
                log.info("created topic %s (%d partitions)", topic.name, topic.num_partitions)
        except KafkaError as exc:
            msg = f"cannot create topics on {self.config.bootstrap_servers}: {exc}"
            raise BusError(msg) from exc
        finally:
            admin.close()

    def producer(self) -> Producer:
        return KafkaBusProducer(self)

    def consumer(self, topics: Sequence[str], group: str, *, client_id: str | None = None) -> Consumer:
        return KafkaBusConsumer(self, list(topics), group, client_id=client_id)


@dataclass(frozen=True)
class _Record:
    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]


class KafkaBusProducer(Producer):
    """Keeps every message until the broker acknowledged it and sends failed ones again.

    kafka-python retries a batch on its own while the broker is away (up to ``delivery_timeout_ms``); a batch
    that fails anyway (the broker stayed away longer, or a connection died mid-request) comes back here and is
    sent again on the next ``send`` or ``flush``. An acknowledgement without a valid offset (seen from Tansu
    when it was killed mid-request: the message was not stored) counts as a failure. ``flush`` returns once
    every message sent before it is acknowledged. Failed messages kept for resending are bounded
    (``_MAX_RETAINED_BYTES``); past that the oldest are dropped and counted in ``dropped``.
    """

    def __init__(self, bus: KafkaBus) -> None:
        self._bus = bus
        cfg = bus.config
        try:
            self._producer = KafkaProducer(
                client_id=f"{cfg.client_id}-producer-{uuid.uuid4().hex[:8]}",
                acks="all",
                linger_ms=5,
                max_request_size=cfg.max_message_bytes + 64 * 1024,
                compression_type=None if cfg.compression == "none" else cfg.compression,
                **_client_settings(cfg),
            )
        except KafkaError as exc:
            msg = f"cannot connect producer to {cfg.bootstrap_servers}: {exc}"
            raise BusError(msg) from exc
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._unacked: dict[int, _Record] = {}
        self._failed: dict[int, BaseException] = {}
        self._last_error: BaseException | None = None
        self._retry = RetryPolicy(0.2, 5.0)
        self._next_resend = 0.0
        self._attempt = 0
        self._blocked = False
        self.resent = 0
        self.dropped = 0

    @property
    def degraded(self) -> str | None:
        with self._lock:
            if self._blocked:
                return f"bus: cannot send (no broker metadata or buffer space): {self._last_error!r}"
            if not self._failed:
                return None
            return f"bus: {len(self._failed)} message(s) not acknowledged yet; last error {self._last_error!r}"

    def send(self, topic: str, value: bytes, key: bytes | str | None = None, headers: Headers = None) -> None:
        key_bytes = key.encode("utf-8") if isinstance(key, str) else key
        if len(value) > self._bus.config.max_message_bytes:
            msg = f"message of {len(value)} bytes exceeds max_message_bytes={self._bus.config.max_message_bytes}"
            raise BusError(msg)
        if self._failed and time.monotonic() >= self._next_resend:
            self._resend_failed()
        record = _Record(self._bus.external(topic), bytes(value), key_bytes, normalize_headers(headers))
        rid = next(self._ids)
        with self._lock:
            self._unacked[rid] = record
        self._send(rid, record)

    def _send(self, rid: int, record: _Record) -> None:
        while True:
            try:
                future = self._producer.send(record.topic, value=record.value, key=record.key, headers=record.headers)
            except KafkaTimeoutError as exc:  # no metadata or no buffer space within max_block_ms
                if self.stop_event is None or self.stop_event.is_set():
                    with self._lock:
                        self._unacked.pop(rid, None)
                    msg = f"send to {record.topic} failed: {exc}"
                    raise BusError(msg) from exc
                self._failure(None, exc)
                self._blocked = True
                continue
            except KafkaError as exc:
                with self._lock:
                    self._unacked.pop(rid, None)
                msg = f"send to {record.topic} failed: {exc}"
                raise BusError(msg) from exc
            self._blocked = False
            future.add_callback(self._on_ack, rid)
            future.add_errback(self._on_error, rid)
            return

    def _on_ack(self, rid: int, metadata: Any) -> None:
        if getattr(metadata, "offset", 0) < 0:
            self._failure(rid, BusError(f"acknowledged without an offset: {metadata!r}"))
            return
        with self._lock:
            self._unacked.pop(rid, None)
            self._failed.pop(rid, None)

    def _on_error(self, rid: int, exc: BaseException) -> None:
        self._failure(rid, exc)

    def _failure(self, rid: int | None, exc: BaseException) -> None:
        with self._lock:
            self._last_error = exc
            if rid is not None and rid in self._unacked:
                self._failed[rid] = exc
                self._bound_retained()

    def _bound_retained(self) -> None:
        retained = sum(len(self._unacked[r].value) for r in self._failed)
        for rid in sorted(self._failed):
            if retained <= _MAX_RETAINED_BYTES:
                break
            record = self._unacked.pop(rid)
            self._failed.pop(rid)
            retained -= len(record.value)
            self.dropped += 1
            log.error("bus: dropped an unacknowledged message to %s (failed messages over %d MB)",
                      record.topic, _MAX_RETAINED_BYTES >> 20)

    def _resend_failed(self) -> None:
        with self._lock:
            again = [(rid, self._unacked[rid]) for rid in sorted(self._failed) if rid in self._unacked]
            self._failed.clear()
        if not again:
            return
        self._attempt += 1
        self._next_resend = time.monotonic() + self._retry.delay(self._attempt)
        log.warning("bus: sending %d unacknowledged message(s) again (last error %r)", len(again), self._last_error)
        for rid, record in again:
            self.resent += 1
            self._send(rid, record)

    def flush(self, timeout: float | None = None) -> None:
        """Return once every message sent so far is acknowledged; BusError after ``timeout`` or on stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                self._producer.flush(timeout=min(5.0, remaining) if remaining is not None else 5.0)
            except KafkaTimeoutError:
                pass  # still waiting for the broker; kafka-python keeps retrying these batches
            except KafkaError as exc:
                msg = f"flush failed: {exc}"
                raise BusError(msg) from exc
            with self._lock:
                waiting, failed = len(self._unacked), len(self._failed)
            if not waiting:
                self._attempt = 0
                return
            stopping = self.stop_event is not None and self.stop_event.is_set()
            if stopping or (deadline is not None and time.monotonic() >= deadline):
                msg = f"{waiting} message(s) were not acknowledged; last error: {self._last_error!r}"
                raise BusError(msg)
            if failed and time.monotonic() >= self._next_resend:
                self._resend_failed()
            elif failed:
                time.sleep(min(0.2, max(0.0, self._next_resend - time.monotonic())))

    def close(self) -> None:
        try:
            self.flush(timeout=10)
        finally:
            self._producer.close(timeout=5)


class KafkaBusConsumer(Consumer):
    def __init__(self, bus: KafkaBus, topics: list[str], group: str, *, client_id: str | None = None) -> None:
        self._bus = bus
        self.group = group
        cfg = bus.config
        try:
            self._consumer = KafkaConsumer(
                *[bus.external(t) for t in topics],
                group_id=bus.external(group),
                client_id=client_id or f"{cfg.client_id}-{group}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=cfg.session_timeout_ms,
                heartbeat_interval_ms=cfg.heartbeat_interval_ms,
                max_poll_interval_ms=cfg.max_poll_interval_ms,
                fetch_max_wait_ms=cfg.fetch_max_wait_ms,
                fetch_max_bytes=max(52428800, cfg.max_message_bytes * 2),
                max_partition_fetch_bytes=cfg.max_message_bytes + 64 * 1024,
                **_client_settings(cfg),
            )
        except KafkaError as exc:
            msg = f"cannot connect consumer to {cfg.bootstrap_servers}: {exc}"
            raise BusError(msg) from exc

    def _tp(self, tp: TopicPartition) -> KafkaTP:
        return KafkaTP(self._bus.external(tp.topic), tp.partition)

    def poll(self, timeout: float = 1.0, max_records: int = 500) -> list[Message]:
        try:
            records = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        except KafkaError as exc:
            msg = f"poll failed: {exc}"
            raise BusError(msg) from exc
        out: list[Message] = []
        for ktp in sorted(records, key=lambda t: (t.topic, t.partition)):
            topic = self._bus.internal(ktp.topic)
            for r in records[ktp]:
                out.append(
                    Message(
                        topic=topic,
                        partition=r.partition,
                        offset=r.offset,
                        key=r.key,
                        value=r.value if r.value is not None else b"",
                        headers=tuple((k, v if v is not None else b"") for k, v in (r.headers or [])),
                        timestamp_ms=r.timestamp,
                    )
                )
        return out

    def commit(self, messages: Iterable[Message] | None = None) -> None:
        try:
            if messages is None:
                self._consumer.commit()
                return
            offsets: dict[KafkaTP, OffsetAndMetadata] = {}
            for m in messages:
                ktp = self._tp(m.tp)
                current = offsets.get(ktp)
                if current is None or current.offset < m.offset + 1:
                    offsets[ktp] = OffsetAndMetadata(m.offset + 1, "", -1)
            if offsets:
                self._consumer.commit(offsets)
        except KafkaError as exc:
            msg = f"commit failed: {exc}"
            raise BusError(msg) from exc

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(self._tp(tp), offset)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(self._bus.internal(t.topic), t.partition) for t in self._consumer.assignment()}

    def committed(self, tp: TopicPartition) -> int | None:
        try:
            return self._consumer.committed(self._tp(tp))
        except KafkaError as exc:
            msg = f"committed() failed: {exc}"
            raise BusError(msg) from exc

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        wanted = {self._tp(tp): tp for tp in tps}
        try:
            ends = self._consumer.end_offsets(list(wanted))
        except KafkaError as exc:
            msg = f"end_offsets failed: {exc}"
            raise BusError(msg) from exc
        # Tansu answers ListOffsets(latest) with the newest batch's first offset + 1 (ENVIRONMENT.md), while its
        # fetch responses carry the true high-water mark: take the larger of what the broker said either way.
        return {tp: max(int(ends[ktp]), self._consumer.highwater(ktp) or 0) for ktp, tp in wanted.items()}

    def caught_up(self, tp: TopicPartition) -> bool:
        ktp = self._tp(tp)
        try:
            high = self._consumer.highwater(ktp)  # of the last fetch response; None before the first
            position = self._consumer.position(ktp, timeout_ms=200) if high is not None else None
        except KafkaError:  # not assigned (any more): nothing of it waits for this member
            return True
        return high is not None and position is not None and position >= high

    def close(self) -> None:
        self._consumer.close(autocommit=False)
