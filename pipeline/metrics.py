"""Prometheus metrics of the pipeline: one set of metric families per process, labelled by worker.

Every worker process serves them at ``/metrics`` on its health port (:mod:`pipeline.runtime.health`) and
the API at ``/metrics`` on its own port; ``tubeline up`` runs every worker in one process, so one scrape
shows them all. Families (``docs/metrics.md`` has the full list and the Grafana dashboard):

- ``tubeline_frames_total{worker, camera, outcome}``: frames ``in`` (consumed or decoded), ``out``
  (published or analysed) and ``dropped`` (skipped under back-pressure or sampling) per camera.
- ``tubeline_stage_latency_seconds{stage}``: event time (capture) to the moment a stage finished a
  message — ``detect``, ``quality``, ``rules``, ``plate``, ``face``, and ``indexed_<kind>`` for the
  catalog (capture → indexed, the figure that sizes a deployment).
- ``tubeline_batch_seconds{worker}`` and ``tubeline_messages_total{worker, topic}``: work per polled batch.
- ``tubeline_consumer_lag_seconds{worker, topic}``: wall clock minus the broker timestamp of the newest
  message consumed (works on every broker; offset lag is unreliable on Tansu, see ENVIRONMENT.md), and
  ``tubeline_consumer_lag_messages{worker}`` where the bus can count it exactly (the in-memory bus).
- ``tubeline_model_inference_seconds{model}`` and ``tubeline_model_batch_size{model}``.
- ``tubeline_dead_letters_total{worker, topic}``, ``tubeline_errors_total{worker, kind}`` (``store``,
  ``bus``, ``other``) and ``tubeline_worker_state{worker, state}``.
- ``tubeline_spool_depth{spool}``: whatever callables were registered with :func:`register_spool`.

Camera IDs are label values: one series per camera and worker, which is fine for thousands of cameras.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
WORKER_STATES = ("starting", "running", "stopping", "stopped", "failed")

FRAMES = Counter("tubeline_frames", "Frames per worker and camera: in, out (published/analysed), dropped.",
                 ["worker", "camera", "outcome"])
STAGE_LATENCY = Histogram("tubeline_stage_latency_seconds", "Capture (event) time to the end of a stage.",
                          ["stage"], buckets=LATENCY_BUCKETS)
BATCH_SECONDS = Histogram("tubeline_batch_seconds", "Time a worker spent handling one polled batch.", ["worker"],
                          buckets=INFERENCE_BUCKETS + (5.0, 10.0, 30.0))
MESSAGES = Counter("tubeline_messages", "Messages consumed.", ["worker", "topic"])
LAG_SECONDS = Gauge("tubeline_consumer_lag_seconds",
                    "Wall clock minus the broker timestamp of the newest consumed message (approximate lag).",
                    ["worker", "topic"])
LAG_MESSAGES = Gauge("tubeline_consumer_lag_messages", "Messages not yet consumed by the worker's group (exact "
                     "only on the in-memory bus; not exported on Kafka).", ["worker"])
INFERENCE = Histogram("tubeline_model_inference_seconds", "Time of one model call (a batch).", ["model"],
                      buckets=INFERENCE_BUCKETS)
BATCH_SIZE = Histogram("tubeline_model_batch_size", "Inputs per model call.", ["model"], buckets=BATCH_BUCKETS)
DEAD_LETTERS = Counter("tubeline_dead_letters", "Messages sent to a dead-letter topic.", ["worker", "topic"])
ERRORS = Counter("tubeline_errors", "Errors by kind (store, bus, other).", ["worker", "kind"])
WORKER_STATE = Gauge("tubeline_worker_state", "1 for the state each worker is in.", ["worker", "state"])

_spools: dict[str, Callable[[], float]] = {}
_spool_lock = threading.Lock()


class _SpoolCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("tubeline_spool_depth", "Items waiting in a local spool.", labels=["spool"])
        with _spool_lock:
            items = list(_spools.items())
        for name, depth in items:
            try:
                family.add_metric([name], float(depth()))
            except Exception:  # noqa: BLE001 - a broken hook must not break the scrape
                continue
        yield family


_SPOOL_COLLECTOR = _SpoolCollector()
REGISTRY.register(_SPOOL_COLLECTOR)


def register_spool(name: str, depth: Callable[[], float]) -> None:
    """Export ``depth()`` as ``tubeline_spool_depth{spool=name}`` at every scrape (a spool's hook)."""
    with _spool_lock:
        _spools[name] = depth


def unregister_spool(name: str) -> None:
    with _spool_lock:
        _spools.pop(name, None)


def observe_latency(stage: str, event_time: datetime, now: datetime | None = None) -> None:
    """Record event time → now for ``stage`` (negative spans, from skewed clocks, count as 0)."""
    now = now or datetime.now(UTC)
    STAGE_LATENCY.labels(stage).observe(max(0.0, (now - event_time).total_seconds()))


def observe_lag(worker: str, topic: str, timestamp_ms: int) -> None:
    if timestamp_ms > 0:
        LAG_SECONDS.labels(worker, topic).set(max(0.0, time.time() - timestamp_ms / 1000.0))


def set_state(worker: str, state: str) -> None:
    for s in WORKER_STATES:
        WORKER_STATE.labels(worker, s).set(1.0 if s == state else 0.0)


def count_error(worker: str, exc: BaseException) -> None:
    from pipeline.bus.base import BusError
    from pipeline.store.base import StoreError

    kind = "store" if isinstance(exc, StoreError) else "bus" if isinstance(exc, BusError) else "other"
    ERRORS.labels(worker, kind).inc()


class timed:  # noqa: N801 - used like a function: ``with timed(INFERENCE, model): ...``
    """Observe the duration of a ``with`` block into a histogram with the given labels."""

    def __init__(self, histogram: Histogram, *labels: str) -> None:
        self._child = histogram.labels(*labels)
        self._started = 0.0

    def __enter__(self) -> timed:
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self._child.observe(time.monotonic() - self._started)


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The text exposition of every metric and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class StageSummary:
    stage: str
    count: int
    mean_s: float
    p50_s: float
    p95_s: float


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` (cumulative (le, count) pairs)."""
    total = buckets[-1][1] if buckets else 0.0
    for le, count in buckets:
        if total and count >= q * total:
            return le
    return float("inf")


def stage_summary(registry: CollectorRegistry = REGISTRY) -> list[StageSummary]:
    """Per stage: samples, mean and bucket-resolution p50/p95 of ``tubeline_stage_latency_seconds``."""
    out: list[StageSummary] = []
    for family in registry.collect():
        if family.name != "tubeline_stage_latency_seconds":
            continue
        by_stage: dict[str, dict[str, object]] = {}
        for s in family.samples:
            entry = by_stage.setdefault(s.labels["stage"], {"buckets": []})
            if s.name.endswith("_bucket"):
                entry["buckets"].append((float(s.labels["le"]), s.value))  # type: ignore[attr-defined]
            elif s.name.endswith("_count"):
                entry["count"] = s.value
            elif s.name.endswith("_sum"):
                entry["sum"] = s.value
        for stage, e in sorted(by_stage.items()):
            count = int(e.get("count", 0))  # type: ignore[call-overload]
            if not count:
                continue
            buckets = sorted(e["buckets"])  # type: ignore[call-overload]
            total = float(e.get("sum", 0.0))  # type: ignore[arg-type]
            out.append(StageSummary(stage, count, total / count, _quantile(buckets, 0.5), _quantile(buckets, 0.95)))
    return out
