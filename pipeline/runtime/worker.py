"""One lifecycle for every worker: setup → loop until a stop event → ordered teardown.

``Worker.run`` sets health to ``starting`` while ``setup`` runs (models load and warm
up here, before the worker reports ready), ``running`` while ``step`` is called in a
loop, ``stopping`` during ``drain`` and ``teardown``, then ``stopped`` — or
``failed`` if anything raised. A running worker whose store or bus is failing reads
``degraded`` (with the reasons in :meth:`Worker.degraded_reasons`): it stays up, waits
and retries, and is ready again once they answer. SIGTERM and SIGINT set the stop event
when ``run`` owns the main thread. Health can be read in-process (``health``), over HTTP
(see :mod:`pipeline.runtime.health`) and as the process title.

A worker whose store is a :class:`pipeline.spool.SpooledStore` starts its uploader
before ``setup`` (writes left in the spool by a previous run are stored first), gives it
up to ``runtime.drain_timeout_s`` after ``drain`` to store what is pending, and stops it
after ``teardown``; what is still pending stays on disk for the next start.

``ConsumerWorker`` adds the consume → handle → produce → flush → commit loop with
at-least-once delivery and a dead-letter topic for messages that cannot be handled.
"""

from __future__ import annotations

import abc
import enum
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pipeline import metrics
from pipeline.bus.base import BadMessage, Bus, BusError, Consumer, DeadLetter, Message, Producer, TopicSpec
from pipeline.retry import RetryPolicy
from pipeline.spool.store import spool_of

if TYPE_CHECKING:
    from types import FrameType

    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)

T = TypeVar("T")


class Health(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


def set_process_title(title: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except ImportError:  # pragma: no cover - optional at run time
        pass


class Worker(abc.ABC):
    """Base class of every worker. Subclasses implement ``step`` and optionally the other hooks."""

    name: ClassVar[str] = "worker"

    def __init__(
        self,
        config: TubelineConfig,
        *,
        bus: Bus,
        store: ObjectStore,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.store = store
        self.stop_event = stop_event or threading.Event()
        self._health = Health.STARTING
        self._reasons: dict[str, str] = {}
        self.error: BaseException | None = None
        self.started_at = time.monotonic()

    # -- lifecycle hooks ----------------------------------------------------------------------------
    def setup(self) -> None:
        """Open consumers/producers, load and warm up models. Runs before the worker reports ready."""

    @abc.abstractmethod
    def step(self) -> None:
        """One short iteration (bounded by a poll timeout). Called until the stop event is set."""

    def drain(self) -> None:
        """Finish in-flight work after stop was requested (bounded by ``runtime.drain_timeout_s``)."""

    def teardown(self) -> None:
        """Release resources in reverse order of ``setup``. Called even after a failure."""

    def finished(self) -> bool:
        """True when the worker has no more work by nature (a file source at its end)."""
        return False

    # -- state --------------------------------------------------------------------------------------
    @property
    def health(self) -> Health:
        if self._health == Health.RUNNING and self.degraded_reasons():
            return Health.DEGRADED
        return self._health

    def degraded_reasons(self) -> list[str]:
        """What keeps this worker from working normally right now (store, spool or bus failing)."""
        reasons = [self._reasons[k] for k in sorted(self._reasons)]
        for part in (spool_of(self.store), getattr(self, "producer", None)):
            reason = getattr(part, "degraded", None)
            if isinstance(reason, str) and reason:
                reasons.append(reason)
        return reasons

    def set_degraded(self, what: str, reason: str | None) -> None:
        """Record (or, with None, clear) a reason this worker is degraded."""
        before = self._reasons.get(what)
        if reason is None:
            self._reasons.pop(what, None)
        else:
            self._reasons[what] = reason
        if (before is None) != (reason is None):
            log.warning("%s: %s", self.name, f"degraded: {reason}" if reason else f"{what} recovered")
            set_process_title(f"tubeline-{self.name} [{self.health.value}]")

    def retry_bus(self, what: str, action: Callable[[], T], policy: RetryPolicy | None = None) -> T:
        """Run ``action`` until the bus answers (degraded meanwhile); raises BusError once stop is requested."""
        policy = policy or RetryPolicy(0.5, 10.0)
        attempt = 0
        while True:
            try:
                result = action()
            except BusError as exc:
                self.set_degraded("bus", f"bus unavailable ({what}): {exc}")
                if self.stop_event.wait(policy.delay(attempt)):
                    raise
                attempt += 1
                continue
            self.set_degraded("bus", None)
            return result

    def _set_health(self, state: Health) -> None:
        if state != self._health:
            log.info("%s: %s -> %s", self.name, self._health.value, state.value)
        self._health = state
        metrics.set_state(self.name, state.value)
        set_process_title(f"tubeline-{self.name} [{state.value}]")

    def stop(self) -> None:
        self.stop_event.set()

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, *, install_signals: bool | None = None) -> None:
        """The whole lifecycle. Raises whatever made the worker fail, after teardown."""
        if install_signals is None:
            install_signals = threading.current_thread() is threading.main_thread()
        previous = self._install_signals() if install_signals else {}
        self._set_health(Health.STARTING)
        spooled = spool_of(self.store)
        if spooled is not None:
            spooled.start()
        try:
            self.setup()
            self._set_health(Health.RUNNING)
            while not self.stop_event.is_set() and not self.finished():
                self.step()
            self._set_health(Health.STOPPING)
            self.drain()
            if spooled is not None and spooled.pending:
                # A clean stop stores what the store takes now (producer still open for announcements);
                # whatever it does not take stays on disk for the next start.
                if not spooled.wait_drained(self.config.runtime.drain_timeout_s):
                    log.warning("%s: stopping with %d write(s) spooled in %s", self.name, spooled.pending,
                                spooled.spool.folder)
        except BaseException as exc:
            self.error = exc
            metrics.count_error(self.name, exc)
            self._set_health(Health.FAILED)
            log.exception("%s failed", self.name)
            raise
        finally:
            try:
                self.teardown()
            finally:
                if spooled is not None:
                    spooled.stop()
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            if self._health is not Health.FAILED:
                self._set_health(Health.STOPPED)

    def _install_signals(self) -> dict[signal.Signals, Any]:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("%s: received %s, stopping", self.name, signal.Signals(signum).name)
            self.stop_event.set()

        previous: dict[signal.Signals, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        return previous


class ConsumerWorker(Worker):
    """Consume topics in a group, handle each batch, then flush outputs and commit.

    Guarantee: **at-least-once**. Offsets are committed only after ``handle`` returned
    and the producer was flushed (every output acknowledged by the broker) and any
    dead letters were flushed. A crash anywhere before the commit means the batch is
    delivered again, so ``handle`` must write with idempotent keys.

    ``handle_message`` raising :class:`BadMessage` sends that message to ``<topic>.dlq``
    with the reason and carries on; any other exception fails the worker without
    committing the batch (it will be redelivered after restart).

    Bus outages do not stop the worker: creating topics, polling and flushing are retried
    with backoff while the worker reads ``degraded`` (a flush returns only once every output
    is acknowledged, so nothing is committed before its outputs are durable); a refused
    commit is logged and left to the next commit (which covers it) or to redelivery.
    Outputs written to a spooled store count as durable once spooled (fsynced local disk).
    """

    topics: ClassVar[Sequence[str]] = ()
    group: ClassVar[str] = ""
    max_batch: ClassVar[int] = 64

    def __init__(self, config: TubelineConfig, *, bus: Bus, store: ObjectStore, **kwargs: object) -> None:
        super().__init__(config, bus=bus, store=store, **kwargs)  # type: ignore[arg-type]
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.dead_letter: DeadLetter | None = None
        self.processed = 0

    def topic_specs(self) -> Sequence[TopicSpec]:
        """Topics this worker needs to exist (inputs and outputs)."""
        return [TopicSpec(t, self.config.bus.default_partitions) for t in self.topics]

    def setup(self) -> None:
        self.retry_bus("creating topics", lambda: self.bus.ensure_topics(self.topic_specs()))
        self.producer = self.retry_bus("connecting the producer", self.bus.producer)
        self.producer.bind_stop(self.stop_event)
        if (spooled := spool_of(self.store)) is not None:
            spooled.bind_producer(self.producer)
        self.dead_letter = DeadLetter(self.producer, self.group or self.name)
        self.consumer = self.retry_bus("joining the group",
                                       lambda: self.bus.consumer(list(self.topics), self.group or self.name))

    def step(self) -> None:
        assert self.consumer is not None and self.producer is not None and self.dead_letter is not None
        batch = self.poll(self.max_batch)
        if not batch:
            self.idle()
            return
        with metrics.timed(metrics.BATCH_SECONDS, self.name):
            self.handle(batch)
            self.producer.flush()
        self.commit(batch)
        self.processed += len(batch)
        self.observe_batch(batch)

    def observe_batch(self, batch: list[Message]) -> None:
        """Count a handled batch in the metrics: messages per topic and the approximate lag."""
        newest: dict[str, int] = {}
        for message in batch:
            newest[message.topic] = max(newest.get(message.topic, 0), message.timestamp_ms)
        for topic, ts in newest.items():
            metrics.MESSAGES.labels(self.name, topic).inc(sum(1 for m in batch if m.topic == topic))
            metrics.observe_lag(self.name, topic, ts)
        lag = getattr(self.bus, "lag", None)
        if callable(lag):
            metrics.LAG_MESSAGES.labels(self.name).set(lag(self.group or self.name))

    def poll(self, max_records: int, timeout: float | None = None) -> list[Message]:
        """One poll; a bus failure marks the worker degraded and returns nothing (the loop tries again)."""
        assert self.consumer is not None
        try:
            batch = self.consumer.poll(timeout=self.config.runtime.poll_timeout_s if timeout is None else timeout,
                                       max_records=max_records)
        except BusError as exc:
            self.set_degraded("poll", f"bus unavailable (poll): {exc}")
            self.stop_event.wait(1.0)
            return []
        self.set_degraded("poll", None)
        return batch

    def commit(self, messages: Sequence[Message]) -> bool:
        """Commit past ``messages``; a refusal is logged (a later commit covers these offsets; a restart
        before it redelivers them, which idempotent outputs absorb). True when committed."""
        assert self.consumer is not None
        try:
            self.consumer.commit(messages)
        except BusError as exc:
            log.warning("%s: commit of %d message(s) refused (%s); a later commit or a redelivery covers them",
                        self.name, len(messages), exc)
            return False
        return True

    def handle(self, batch: list[Message]) -> None:
        """Handle a batch; the default calls ``handle_message`` for each, dead-lettering bad ones."""
        assert self.dead_letter is not None
        for message in batch:
            try:
                self.handle_message(message)
            except BadMessage as exc:
                log.warning(
                    "%s: dead-lettering %s[%d]@%d: %s", self.name, message.topic, message.partition, message.offset, exc
                )
                self.dead_letter.send(message, str(exc))
                metrics.DEAD_LETTERS.labels(self.name, message.topic).inc()

    def handle_message(self, message: Message) -> None:
        msg = f"{type(self).__name__} must implement handle() or handle_message()"
        raise NotImplementedError(msg)

    def idle(self) -> None:
        """Called when a poll returned nothing (flush timers here)."""

    def teardown(self) -> None:
        if (spooled := spool_of(self.store)) is not None:
            spooled.bind_producer(None)  # announcements still spooled go out with the next run's producer
        if self.producer is not None:
            try:
                self.producer.flush(timeout=self.config.runtime.drain_timeout_s)
            finally:
                self.producer.close()
        if self.consumer is not None:
            self.consumer.close()
