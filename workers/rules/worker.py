"""The rules worker (``tubeline worker rules``): detections and camera status in, alerts out.

Consumes ``tubeline.detections.v1`` and ``tubeline.camera-status.v1`` in the consumer group
``tubeline-rules``, runs every message through one :class:`workers.rules.engine.RuleEngine` and
produces each alert as JSON on ``tubeline.alerts.v1``, keyed by camera ID.

Delivery: **at-least-once** (see :class:`pipeline.runtime.ConsumerWorker`): input offsets are
committed only after the batch's alerts were flushed. A redelivered message raises the same alert
again with the same ``alert_id`` (derived from rule, camera, subject and event time), so
downstream consumers that key by ``alert_id`` stay idempotent. A message that is not a valid
detections or status document goes to ``<topic>.dlq`` with the reason.

Rules: the configuration's ``rules`` section until an admin saves the rules document in the object store
(:mod:`pipeline.rulesdoc`); the worker checks it every ``rules.document_poll_s`` and swaps a new version in
without a restart (tracks and timers are kept).

State: tracks, dwell timers, crowding timers, offline timers and cool-downs live in the engine,
in memory. After a restart or a rebalance the new owner of a partition starts empty and rebuilds
the state from the messages it reads; what that means for each rule is in ``docs/rules.md``
(in short: a loitering or crowding timer restarts, an offline timer restarts at the next
``reconnecting`` event, and a track already inside a zone can raise a second intrusion alert).

Offline timers fire in event time when later status events of the same camera pass the grace
period, and on the wall clock when the worker is caught up (a poll returned nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from pipeline.bus.base import Message, TopicSpec, dead_letter_topic
from pipeline.config.rules import RulesConfig
from pipeline.rulesdoc import RulesDocument
from pipeline.runtime.worker import BadMessage, ConsumerWorker
from schemas.alerts import Alert
from schemas.cameras import CameraStatus
from schemas.detections import Detections
from schemas.topics import ALERTS, CAMERA_STATUS, DETECTIONS
from workers.rules.engine import RuleEngine

if TYPE_CHECKING:
    import threading

    from pipeline.bus.base import Bus
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)

GROUP = "tubeline-rules"


def rules_section(config: TubelineConfig) -> RulesConfig:
    """The ``rules`` section of the configuration tree (empty when the tree has none)."""
    section = getattr(config, "rules", None)
    return section if isinstance(section, RulesConfig) else RulesConfig.model_validate({})


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
        self.rules = rules if rules is not None else rules_section(config)
        self.engine = RuleEngine(self.rules)
        self.documents = None if rules is not None else RulesDocument(store)
        self.rules_version = 0
        self._next_poll = 0.0
        self.clock = clock or (lambda: datetime.now(UTC))
        self.alerts_sent = 0

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
        self._send(self.engine.process(parsed))

    def idle(self) -> None:
        """Caught up: let offline timers fire on the wall clock."""
        self.reload()
        alerts = self.engine.advance(self.clock())
        if alerts:
            self._send(alerts)
            assert self.producer is not None
            self.producer.flush()

    def _send(self, alerts: list[Alert]) -> None:
        assert self.producer is not None
        for alert in alerts:
            log.info(
                "alert %s %s camera %s rule %s: %s",
                alert.alert_type, alert.severity, alert.camera_id, alert.rule_id, alert.message,
            )
            self.producer.send(ALERTS.name, alert.to_json(), key=alert.camera_id)
            self.alerts_sent += 1
