"""``index.catalog_format: delta`` end to end on the in-memory bus and a local folder: the indexer commits every kind
to its Delta table (crashing once between a table's data files and its commit, and once between the table commits
and the bus offset commit), and the search service and the API answer track, vehicle, person, trajectory, alert,
camera-status and plate-timeline queries from pruned scans of the tables exactly as the Parquet path answers
them from the same messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from benchmarks.search import synthetic as syn
from pipeline.access import ScopedStore, access_matrix
from pipeline.bus.memory import MemoryBus
from pipeline.catalog.format import KIND_BY_TOPIC
from pipeline.config import TubelineConfig, with_overrides
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore
from schemas.common import WireMessage
from schemas.topics import ALERTS, CAMERA_STATUS, FACES, PLATES, TRACKS
from tests.unit.test_api_support import add_users, login, register_cameras
from workers.api.app import create_app
from workers.api.context import build_context
from workers.index.worker import IndexWorker

T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
CAMS = ("cam-a", "cam-b", "cam-c")
PLATE = "川AF058Y"


def scene(cams: tuple[str, ...] = CAMS) -> list[tuple[str, WireMessage]]:
    """Three cameras (by default) over two UTC days (the evening of one, the morning of the next): vehicles of two types and
    colours with plates (PLATE on every camera each day), people with clothing colours and faces, an alert per
    camera and day, and status events."""
    rng = np.random.default_rng(21)
    people = syn.identities(rng, 3, 64)
    out: list[tuple[str, WireMessage]] = []
    for day in range(2):
        for c, cam in enumerate(cams):
            at0 = T0 + timedelta(hours=10 * day, minutes=7 * c)
            offline = day == 1 and c == 1
            out.append((CAMERA_STATUS.name, syn.status(cam, at0, "offline" if offline else "online",
                                                       reason="timeout" if offline else None)))
            for i in range(4):
                at = at0 + timedelta(minutes=i)
                car = syn.track(cam, 10 * day + i, at, colour=("white", "red")[i % 2],
                                vehicle_type=("car", "van")[(i + c) % 2], session=f"d{day}")
                text = PLATE if i == 1 else syn.random_plate(rng)
                out += [(TRACKS.name, car), (PLATES.name, syn.plate(car, text))]
            walker = syn.track(cam, 100 + day, at0, class_name="person", vehicle_type=None,
                               upper=("red", "black")[day], lower="grey", session=f"d{day}")
            vector = syn.faces_of(rng, people, np.array([c % len(people)]))[0]
            out += [(TRACKS.name, walker), (FACES.name, syn.face(walker, 0, vector))]
            out.append((ALERTS.name, syn.alert(cam, day, at0 + timedelta(seconds=30),
                                               alert_type=("zone_intrusion", "loitering")[day])))
    return out


def publish(bus: MemoryBus, messages: list[tuple[str, WireMessage]]) -> None:
    with bus.producer() as producer:
        for topic, message in messages:
            producer.send(topic, message.to_json(), key=message.camera_id)  # type: ignore[attr-defined]
        producer.flush()


class Crash(RuntimeError):
    """The indexer process dies here."""


def index(config: TubelineConfig, bus: MemoryBus, store: LocalStore, count: int,
          fault: Callable[[IndexWorker], None] | None = None) -> IndexWorker:
    """Step a fresh indexer until ``count`` messages are committed (``fault`` arms it first)."""
    worker = IndexWorker(config, bus=bus, store=store)
    worker.setup()
    if fault is not None:
        fault(worker)
    try:
        for _ in range(400):
            if worker.processed >= count:
                break
            worker.step()
        worker.drain()
    except Crash:
        assert worker.consumer is not None
        worker.consumer.close()  # the process is gone: the group forgets it, nothing more is committed
        raise
    worker.teardown()
    return worker


def _configs(tmp: Path) -> tuple[TubelineConfig, TubelineConfig]:
    base = with_overrides(TubelineConfig(), {
        "runtime.poll_timeout_s": 0.02, "store.backend": "local", "index.flush_max_records": 25,
        "index.flush_interval_s": 0.05, "index.compact_after_parts": 0, "index.table_buckets": 4,
        "api.port": 0, "api.cache_dir": str(tmp / "api-cache"),
    })
    parquet = with_overrides(base, {"store.local.root": str(tmp / "parquet"), "index.cache_dir": str(tmp / "cp")})
    delta = with_overrides(base, {"store.local.root": str(tmp / "delta"), "index.cache_dir": str(tmp / "cd"),
                                  "index.catalog_format": "delta"})
    return parquet, delta


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[TubelineConfig, TubelineConfig, int]:
    tmp = tmp_path_factory.mktemp("delta-flow")
    parquet, delta = _configs(tmp)
    messages = scene()
    for config in (parquet, delta):
        store = LocalStore(Path(config.store.local.root))
        register_cameras(store)
        add_users(store)
    bus_p, bus_d = MemoryBus(default_partitions=3), MemoryBus(default_partitions=3)
    for bus in (bus_p, bus_d):
        bus.ensure_topics(IndexWorker(parquet, bus=bus, store=LocalStore(tmp / "x")).topic_specs())
        publish(bus, messages)
    index(parquet, bus_p, LocalStore(tmp / "parquet"), len(messages))

    store = LocalStore(tmp / "delta")

    def die_before_the_plates_commit(worker: IndexWorker) -> None:
        def fault(kind: str) -> None:
            if kind == "plates":
                raise Crash(kind)
        assert worker.tables is not None
        worker.tables.before_commit = fault

    def die_before_the_offset_commit(worker: IndexWorker) -> None:
        def fault(messages: object = None) -> None:
            raise Crash(str(messages))
        worker.consumer.commit = fault  # type: ignore[method-assign,union-attr]

    for fault in (die_before_the_plates_commit, die_before_the_offset_commit):
        with pytest.raises(Crash):
            index(delta, bus_d, store, len(messages), fault)
    replay = index(delta, bus_d, store, len(messages))
    assert replay.processed == len(messages)  # nothing was committed to the bus before
    assert replay.writer.duplicates_skipped > 0  # the replay met rows the tables already held
    return parquet, delta, len(messages)


def test_every_kind_lands_in_its_table_once(indexed: tuple[TubelineConfig, TubelineConfig, int]) -> None:
    _, delta, _ = indexed
    from pipeline.catalog.table import TableCatalog

    tables = TableCatalog(delta.store, delta.index)
    wanted: dict[str, int] = {}
    for topic, _message in scene():
        wanted[KIND_BY_TOPIC[topic].name] = wanted.get(KIND_BY_TOPIC[topic].name, 0) + 1
    for kind, count in wanted.items():
        ikeys = tables.read(kind).column("ikey").to_pylist()
        assert len(ikeys) == len(set(ikeys)) == count, kind


QUERIES: list[tuple[str, Callable[[SearchService], Any]]] = [
    ("vehicles", lambda s: s.vehicles(limit=1000)),
    ("red cars, one camera", lambda s: s.vehicles(vehicle_type="car", colour="red", cameras=["cam-b"])),
    ("cars of the second day", lambda s: s.vehicles(vehicle_type="car", start=T0 + timedelta(hours=9))),
    ("tracks around midnight", lambda s: s.tracks(start=T0 + timedelta(minutes=10), end=T0 + timedelta(hours=10, minutes=9),
                                                  limit=5)),
    ("persons in red", lambda s: s.persons(upper="red", lower="dark")),
    ("trajectory", lambda s: s.plate_trajectory(PLATE)),
    ("trajectory, two cameras, day two", lambda s: s.plate_trajectory(PLATE, cameras=["cam-a", "cam-c"],
                                                                       start=T0 + timedelta(hours=2))),
    ("alerts", lambda s: s.alerts()),
    ("loitering alerts of cam-c", lambda s: s.alerts(alert_type="loitering", cameras=["cam-c"])),
    ("alerts of the first day", lambda s: s.alerts(end=T0 + timedelta(hours=2), limit=2)),
    ("camera status", lambda s: s.camera_status()),
    ("plate timeline", lambda s: s.plate_reads(cameras=["cam-a"], start=T0 + timedelta(hours=10))),
    ("track sighting", lambda s: s.sighting("track", "cam-b:d1:11")),
    ("plate sighting", lambda s: s.sighting("plate", s.plate_reads(limit=1)[0].read_id)),
    ("nothing out of scope", lambda s: s.vehicles(cameras=[])),
]


@pytest.fixture(scope="module")
def services(indexed: tuple[TubelineConfig, TubelineConfig, int]) -> tuple[SearchService, SearchService]:
    """The search service over the Parquet catalog and over the Delta tables of the same messages."""
    return tuple(SearchService(LocalStore(Path(c.store.local.root)), c) for c in indexed[:2])  # type: ignore[return-value]


@pytest.mark.parametrize(("name", "query"), QUERIES, ids=[q[0] for q in QUERIES])
def test_the_tables_answer_as_the_parquet_catalog(services: tuple[SearchService, SearchService], name: str,
                                                  query: Callable[[SearchService], Any]) -> None:
    want = query(services[0])
    service = services[1]
    got = query(service)
    assert got == want
    assert got or name == "nothing out of scope", name
    assert all("/faces/" in key for key in service.catalog.refs)  # the delta store's Parquet segments: faces only


def test_a_day_and_a_camera_read_only_their_files(services: tuple[SearchService, SearchService]) -> None:
    service = services[1]
    assert service.table_scan is not None
    service.alerts()
    every = service.table_scan.last_files["alerts"]
    service.alerts(cameras=["cam-a"], start=T0 + timedelta(hours=9))
    assert service.table_scan.last_files["alerts"] == 1 < every  # one date, one bucket (of 2 dates x 3 cameras)
    hits = service.vehicles(cameras=["cam-a"], start=T0 + timedelta(hours=9), end=T0 + timedelta(hours=11))
    assert hits and {h.camera_id for h in hits} == {"cam-a"}
    # the window starts on day two; a track may have started up to detect.max_track_s before: day one too
    assert service.table_scan.last_files["tracks"] == 2


def _unsigned(value: Any) -> Any:
    """An API answer without its media links (signed with each store's own media key)."""
    if isinstance(value, dict):
        return {k: _unsigned(v) for k, v in value.items() if not k.endswith("_url")}
    if isinstance(value, list):
        return [_unsigned(v) for v in value]
    return value


def test_the_api_answers_from_the_tables_as_from_the_parquet_catalog(
        indexed: tuple[TubelineConfig, TubelineConfig, int]) -> None:
    answers = []
    for config in indexed[:2]:
        store = LocalStore(Path(config.store.local.root))
        ctx = build_context(config, store=ScopedStore(store, access_matrix(config)["api"]))
        with TestClient(create_app(ctx, start_background=False)) as client:
            login(client, "ivy")  # cam-a and cam-b only
            answers.append([_unsigned(client.get(path, params=params).json()) for path, params in [
                ("/api/search/vehicles", {"vehicle_type": "van"}),
                ("/api/search/vehicles", {"colour": "white", "start": (T0 + timedelta(hours=9)).isoformat()}),
                ("/api/alerts", {}),
                ("/api/alerts", {"end": (T0 + timedelta(hours=3)).isoformat()}),
            ]])
    parquet, delta = answers
    assert delta == parquet
    assert all(a.get("count", len(a.get("hits", a.get("alerts", [])))) for a in delta), delta
    assert not any("cam-c" in str(a) for a in delta)  # ivy's scope holds cam-a and cam-b
