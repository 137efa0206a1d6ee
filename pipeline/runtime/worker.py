"""One lifecycle for every worker: setup → loop until a stop event → ordered teardown.

``Worker.run`` sets health to ``starting`` while ``setup`` runs (models load and warm
up here, before the worker reports ready), ``running`` while ``step`` is called in a
loop, ``stopping`` during ``drain`` and ``teardown``, then ``stopped`` — or
``failed`` if anything raised. SIGTERM and SIGINT set the stop event when ``run``
owns the main thread. Health can be read in-process (``health``), over HTTP (see
:mod:`pipeline.runtime.health`) and as the process title.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pipeline import metrics
from pipeline.bus.base import Bus, Consumer, DeadLetter, Message, Producer, TopicSpec

if TYPE_CHECKING:
    from types import FrameType

    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)


class Health(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class BadMessage(ValueError):
    """A message that can never be processed (malformed, undecodable): it goes to the dead-letter topic."""


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
        return self._health

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
        try:
            self.setup()
            self._set_health(Health.RUNNING)
            while not self.stop_event.is_set() and not self.finished():
                self.step()
            self._set_health(Health.STOPPING)
            self.drain()
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
        self.bus.ensure_topics(self.topic_specs())
        self.producer = self.bus.producer()
        self.dead_letter = DeadLetter(self.producer, self.group or self.name)
        self.consumer = self.bus.consumer(list(self.topics), self.group or self.name)

    def step(self) -> None:
        assert self.consumer is not None and self.producer is not None and self.dead_letter is not None
        batch = self.consumer.poll(timeout=self.config.runtime.poll_timeout_s, max_records=self.max_batch)
        if not batch:
            self.idle()
            return
        with metrics.timed(metrics.BATCH_SECONDS, self.name):
            self.handle(batch)
            self.producer.flush()
        self.consumer.commit(batch)
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
        if self.producer is not None:
            try:
                self.producer.flush(timeout=self.config.runtime.drain_timeout_s)
            finally:
                self.producer.close()
        if self.consumer is not None:
            self.consumer.close()
