"""One skeleton for the workers that enrich object crops (the plate and the face worker).

A :class:`CropWorker` consumes ``tubeline.objects.v1`` (a subclass may add topics it handles itself, as
the plate worker does with checkpoint cameras' frames). Per object message it parses the crop (not one: the
dead-letter topic), counts it, skips classes the worker does not handle (``settings.classes``), the
worker's own early skips (:meth:`CropWorker.skip`) and crops captured more than ``settings.max_lag_s``
ago (counted and logged: a worker that fell behind catches up instead of reading stale crops), then
fetches and decodes the crop (missing or undecodable: the dead-letter topic) and hands it to
:meth:`CropWorker.handle_crop`. See :mod:`pipeline.crops` for those steps.

Delivery: **at-least-once**. Per batch: handle → flush outputs → :meth:`CropWorker.persist` (whatever
state the worker keeps in the store) → commit offsets, so a crash anywhere before the commit delivers
the batch again. Per-track state lives in a bounded :class:`~pipeline.tracking.table.TrackTable`;
every few seconds idle tracks are evicted and :meth:`CropWorker.refresh` runs, and once a minute the
worker logs its counters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Generic, Protocol, Required, TypedDict, TypeVar

import numpy as np

from pipeline import crops, metrics
from pipeline.bus.base import Bus, Message, TopicSpec, dead_letter_topic
from pipeline.config import TubelineConfig
from pipeline.runtime.worker import ConsumerWorker
from pipeline.store.base import ObjectStore
from pipeline.tracking.table import HasLastSeen, TrackTable
from schemas.objects import ObjectCrop
from schemas.topics import OBJECTS, get_topic
from schemas.topics import TopicSpec as Topic

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 5.0
REPORT_S = 60.0


class CropSettings(Protocol):
    """The settings every crop worker has (``plate`` and ``face`` sections of the configuration)."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    @property
    def max_lag_s(self) -> float: ...

    @property
    def max_tracks(self) -> int: ...

    @property
    def track_idle_s(self) -> float: ...


class CropWorkerArgs(TypedDict, total=False):
    """The keyword arguments every crop worker passes through to :class:`CropWorker`."""

    bus: Required[Bus]
    store: Required[ObjectStore]
    stop_event: threading.Event | None
    clock: Callable[[], datetime] | None


C = TypeVar("C", bound=CropSettings)
S = TypeVar("S", bound=HasLastSeen)


class CropWorker(ConsumerWorker, Generic[C, S]):
    """Object crops in, per-track state in memory; subclasses implement :meth:`handle_crop` (see the module
    docstring) and name the topics they produce in ``outputs``."""

    topics: ClassVar[Sequence[str]] = (OBJECTS.name,)
    outputs: ClassVar[Sequence[Topic]] = ()

    def __init__(
        self,
        config: TubelineConfig,
        *,
        bus: Bus,
        store: ObjectStore,
        settings: C,
        new_track: Callable[[str, str], S],
        stop_event: threading.Event | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(config, bus=bus, store=store, stop_event=stop_event)
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.margin = config.detect.crop_margin  # the detect worker's, to place crops in the frame
        self.tracks: TrackTable[S] = TrackTable(new_track, settings.max_tracks, settings.track_idle_s)
        self.stats: Counter[str] = Counter()
        self._next_housekeeping = 0.0
        self._next_report = 0.0

    # -- hooks ------------------------------------------------------------------------------------
    def load_models(self) -> None:
        """Load (and warm up) the models that were not injected; runs first in setup."""

    def skip(self, crop: ObjectCrop) -> str | None:
        """The counter to bump when this crop is skipped before it is fetched, else None."""
        return None

    def handle_crop(self, crop: ObjectCrop, image: np.ndarray) -> None:
        """Enrich one crop (``image``: BGR, as cut from the frame) and produce the outputs."""
        msg = f"{type(self).__name__} must implement handle_crop()"
        raise NotImplementedError(msg)

    def persist(self) -> None:
        """After the batch's outputs are flushed and before its offsets are committed."""

    def refresh(self) -> None:
        """Periodic work besides evicting idle tracks (e.g. re-read lists)."""

    # -- lifecycle --------------------------------------------------------------------------------
    def topic_specs(self) -> Sequence[TopicSpec]:
        """Inputs (``topics``: objects, plus what a subclass adds), ``outputs``, a dead-letter topic per input."""
        inputs = [get_topic(name) for name in self.topics]
        specs = [TopicSpec(t.name, t.partitions, t.retention_ms) for t in (*inputs, *self.outputs)]
        return [*specs, *(TopicSpec(dead_letter_topic(t.name), 1) for t in inputs)]

    def setup(self) -> None:
        self.load_models()
        super().setup()
        self._next_report = time.monotonic() + REPORT_S

    def step(self) -> None:
        """poll → handle → flush outputs → persist → commit, then housekeeping."""
        assert self.consumer is not None and self.producer is not None
        batch = self.poll(self.max_batch)  # outage-tolerant: a broker that blinks degrades, never fails, the worker
        if batch:
            with metrics.timed(metrics.BATCH_SECONDS, self.name):
                self.handle(batch)
                self.producer.flush()
            self.persist()
            if self.commit(batch):
                self.processed += len(batch)
            self.observe_batch(batch)
        else:
            self.idle()
        self._housekeeping()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_S
        self.tracks.evict_idle()
        self.refresh()
        if now >= self._next_report:
            self._next_report = now + REPORT_S
            log.info("%s: %s", self.name, ", ".join(f"{k} {v}" for k, v in sorted(self.stats.items())) or "idle")

    # -- one message ------------------------------------------------------------------------------
    def handle_message(self, message: Message) -> None:
        crop = crops.parse_object(message)
        self.stats["objects"] += 1
        if crop.class_name not in self.settings.classes:
            self.stats["skipped_class"] += 1
            return
        skipped = self.skip(crop)
        if skipped is not None:
            self.stats[skipped] += 1
            return
        if crops.is_stale(crop, self.clock(), self.settings.max_lag_s):
            crops.count_stale(self.stats, self.name, crop, self.clock(), self.settings.max_lag_s)
            return
        self.handle_crop(crop, crops.load_image(self.store, crop))
