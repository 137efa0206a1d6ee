"""The rules worker (``tubeline worker rules``): detections and camera status in, alerts out.

Consumes ``tubeline.detections.v1`` and ``tubeline.camera-status.v1`` in the consumer group
``tubeline-rules``, runs every message through one :class:`workers.rules.engine.RuleEngine` and
produces each alert as JSON on ``tubeline.alerts.v1``, keyed by camera ID.

Delivery: **at-least-once with deterministic replays** (like the detect worker). Alerts are flushed
after every batch; every ``rules.commit_interval_s`` the engine state of each camera touched since
(tracks, dwell, crowding and offline timers, cool-downs, the last message taken in) is saved to the
store (:mod:`workers.rules.state`) and only then are the offsets committed. A worker that takes over
a camera (restart, crash, rebalance) loads that state first; redelivered messages it already covers
are skipped and the rest are processed from the same state, so they raise the same alerts with the
same ``alert_id`` (derived from rule, camera, subject and event time) and no others. A message that
is not a valid detections or status document goes to ``<topic>.dlq`` with the reason.

Rules: the configuration's ``rules`` section until an admin saves the rules document in the object store
(:mod:`pipeline.rulesdoc`); the worker checks it every ``rules.document_poll_s`` and swaps a new version in
without a restart (tracks and timers are kept).

Offline timers fire in event time when later status events of the same camera pass the grace
period, and on the wall clock when the worker is caught up (a poll returned nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from pipeline.bus.base import Message, TopicPartition, TopicSpec, dead_letter_topic
from pipeline.config.rules import RulesConfig
from pipeline.rulesdoc import RulesDocument
from pipeline.runtime.worker import BadMessage, ConsumerWorker
from schemas.alerts import Alert
from schemas.cameras import CameraStatus
from schemas.detections import Detections
from schemas.topics import ALERTS, CAMERA_STATUS, DETECTIONS
from workers.rules.engine import RuleEngine
from workers.rules.state import RulesStateStore

if TYPE_CHECKING:
    import threading

    from pipeline.bus.base import Bus
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)

GROUP = "tubeline-rules"


class RulesWorker(ConsumerWorker):
    """Evaluates zone, line, loitering, crowding and camera-offline rules; publishes alerts."""

    name = "rules"
    topics: ClassVar = (DETECTIONS.name, CAMERA_STATUS.name)
    group: ClassVar = GROUP

    def __init__(
        self,
        config: TubelineConfig,
        *,
        bus: Bus,
        store: ObjectStore,
        stop_event: threading.Event | None = None,
        rules: RulesConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(config, bus=bus, store=store, stop_event=stop_event)
        self.rules = rules if rules is not None else config.rules
        self.engine = RuleEngine(self.rules)
        self.documents = None if rules is not None else RulesDocument(store)
        self.rules_version = 0
        self._next_poll = 0.0
        self.clock = clock or (lambda: datetime.now(UTC))
        self.alerts_sent = 0
        self.saved = RulesStateStore(self.store, self.rules.state_prefix)
        self.partitions: dict[str, dict[str, TopicPartition]] = {}  # camera -> its topics' partitions here
        self.touched: set[str] = set()
        self.pending: list[Message] = []
        self.next_checkpoint = 0.0

    def topic_specs(self) -> Sequence[TopicSpec]:
        specs = [TopicSpec(t.name, t.partitions, t.retention_ms) for t in (DETECTIONS, CAMERA_STATUS, ALERTS)]
        specs += [TopicSpec(dead_letter_topic(t.name), 1) for t in (DETECTIONS, CAMERA_STATUS)]
        return specs

    def reload(self) -> bool:
        """Swap in a newer saved rules document; True when the rules changed."""
        if self.documents is None or time.monotonic() < self._next_poll:
            return False
        self._next_poll = time.monotonic() + self.rules.document_poll_s
        try:
            saved = self.documents.load()
        except Exception as exc:  # a broken document must not stop the alerts: keep the current rules
            log.warning("rules: the rules document cannot be read (keeping version %d): %s", self.rules_version, exc)
            return False
        if saved is None or saved.version == self.rules_version:
            return False
        self.rules, self.rules_version = saved.rules, saved.version
        self.engine.replace_rules(saved.rules)
        log.info("rules: version %d of the rules document (saved by %s) in force", saved.version, saved.updated_by)
        return True

    def setup(self) -> None:
        self.reload()
        if not self.rules.cameras:
            log.warning("rules: no rules configured (rules.cameras is empty); no alert will be raised")
        super().setup()
        self.next_checkpoint = time.monotonic() + self.rules.commit_interval_s

    def step(self) -> None:
        """poll → handle → flush alerts; every ``commit_interval_s``: save touched states, then commit."""
        assert self.producer is not None
        batch = self.poll(self.max_batch)
        if batch:
            self.handle(batch)
            self.producer.flush()
            self.pending.extend(batch)
        else:
            self.idle()
        if time.monotonic() >= self.next_checkpoint:
            self.checkpoint()

    def drain(self) -> None:
        self.checkpoint()

    def checkpoint(self) -> None:
        """Save the engine state of every camera touched since the last checkpoint, then commit."""
        assert self.consumer is not None and self.producer is not None
        self.producer.flush()
        assigned = self.consumer.assignment()
        for camera in sorted(self.touched):
            state = self.engine.camera_state(camera)
            for topic, tp in self.partitions.get(camera, {}).items():
                if state is not None and tp in assigned:
                    self.saved.save(camera, topic, state)
        covered = [m for m in self.pending if m.tp in assigned]  # as the detect worker: only what was saved
        if covered and self.commit(covered):
            self.processed += len(covered)
        self.pending.clear()
        self.touched.clear()
        for camera, tps in list(self.partitions.items()):
            for topic, tp in list(tps.items()):
                if tp not in assigned:  # the partition moved: its next owner continues from the saved state
                    tps.pop(topic)
            if not tps:
                self.engine.forget(camera)
                self.partitions.pop(camera)
        self.next_checkpoint = time.monotonic() + self.rules.commit_interval_s

    def handle_message(self, message: Message) -> None:
        self.reload()
        kinds: dict[str, type[Detections] | type[CameraStatus]] = {
            DETECTIONS.name: Detections,
            CAMERA_STATUS.name: CameraStatus,
        }
        kind = kinds.get(message.topic)
        if kind is None:
            msg = f"unexpected topic {message.topic!r}"
            raise BadMessage(msg)
        try:
            parsed = kind.from_json(message.value)
        except ValueError as exc:
            msg = f"invalid {message.topic} message: {exc}"
            raise BadMessage(msg) from None
        camera = parsed.camera_id
        held = self.partitions.setdefault(camera, {})
        if message.topic not in held and self.engine.watches(camera):
            if self.engine.camera_state(camera) is None and (
                    state := self.saved.load(camera, message.topic)) is not None:
                log.info("rules: camera %s continues from its saved state", camera)
                self.engine.restore(camera, state)
            held[message.topic] = message.tp
        self._send(self.engine.process(parsed))
        self.touched.add(camera)

    def idle(self) -> None:
        """Caught up: let offline timers fire on the wall clock."""
        self.reload()
        alerts = self.engine.advance(self.clock())
        if alerts:
            self._send(alerts)
            assert self.producer is not None
            self.producer.flush()
            self.touched.update(a.camera_id for a in alerts)

    def _send(self, alerts: list[Alert]) -> None:
        assert self.producer is not None
        for alert in alerts:
            log.info(
                "alert %s %s camera %s rule %s: %s",
                alert.alert_type, alert.severity, alert.camera_id, alert.rule_id, alert.message,
            )
            self.producer.send(ALERTS.name, alert.to_json(), key=alert.camera_id)
            self.alerts_sent += 1
