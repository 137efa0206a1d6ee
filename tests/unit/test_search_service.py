"""SearchService over a catalog written by the indexer's writer: results, dedupe, revisions and camera scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks.search import synthetic as syn
from pipeline.cameras.registry import CameraRegistry
from pipeline.catalog.format import KIND_BY_NAME, RowMeta
from pipeline.config import TubelineConfig
from pipeline.config.index import IndexConfig
from pipeline.config.ingest import CameraSpec
from pipeline.search.hits import QueryError
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore
from workers.index.compact import compact_partition
from workers.index.writer import CatalogWriter

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)
MODEL = "arcface-r50@1"
PLATE = "川AF058Y"
POSITIONS = {"cam-1": (30.65, 104.06), "cam-2": (30.66, 104.07), "cam-3": (30.67, 104.08)}


@dataclass
class World:
    store: LocalStore
    settings: IndexConfig
    service: SearchService
    person: np.ndarray
    writer: CatalogWriter


def _add(writer: CatalogWriter, kind: str, message: object, offset: int) -> None:
    writer.add(KIND_BY_NAME[kind], message, RowMeta(0, offset, T0 + timedelta(seconds=offset)))


def _populate(writer: CatalogWriter, person: np.ndarray, rng: np.random.Generator) -> None:
    others = syn.identities(rng, 20, 128)
    n = 0
    for i, cam in enumerate(("cam-1", "cam-2", "cam-3")):
        car = syn.track(cam, 1, T0 + timedelta(minutes=10 * i), colour="white" if i < 2 else "red",
                        vehicle_type="van" if i == 1 else "car")
        _add(writer, "tracks", car, n := n + 1)
        _add(writer, "plates", syn.plate(car, PLATE), n := n + 1)
        walker = syn.track(cam, 2, T0 + timedelta(minutes=10 * i, seconds=30), class_name="person", vehicle_type=None,
                           upper=("red", "red", "white")[i], lower=("black", "blue", "grey")[i])
        _add(writer, "tracks", walker, n := n + 1)
        for seq in range(2):  # two faces of the same person per camera
            _add(writer, "faces", syn.face(walker, seq, syn.faces_of(rng, person[None], np.array([0]))[0],
                                           seconds=1 + seq), n := n + 1)
        stranger = syn.track(cam, 3, T0 + timedelta(minutes=10 * i, seconds=40), class_name="person",
                             vehicle_type=None)
        _add(writer, "faces", syn.face(stranger, 0, others[i]), n := n + 1)
        _add(writer, "alerts", syn.alert(cam, 1, T0 + timedelta(minutes=10 * i), track_id=walker.track_id),
             n := n + 1)
    _add(writer, "camera-status", syn.status("cam-1", T0, "offline", reason="network"), n := n + 1)
    _add(writer, "camera-status", syn.status("cam-1", T0 + timedelta(minutes=1), "online"), n := n + 1)
    _add(writer, "camera-status", syn.status("cam-1", T0 + timedelta(minutes=2), "stats", fps=4.5), n := n + 1)
    _add(writer, "camera-status", syn.status("cam-2", T0 + timedelta(minutes=3), "offline", reason="timeout"),
         n := n + 1)
    revised = syn.track("cam-2", 9, T0 + timedelta(hours=1))
    _add(writer, "tracks", revised, n := n + 1)
    _add(writer, "plates", syn.plate(revised, "京B12345", revision=1), n := n + 1)
    _add(writer, "plates", syn.plate(revised, "京B12346", revision=0), n := n + 1)  # late, older revision
    writer.flush()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = LocalStore(tmp_path / "store")
    settings = IndexConfig(cache_dir=tmp_path / "cache")
    registry = CameraRegistry(store)
    for cam, (lat, lon) in POSITIONS.items():
        registry.put(CameraSpec(id=cam, name=f"Gate {cam[-1]}", kind="file", url="/dev/null", latitude=lat,
                                longitude=lon, admin_unit="510104"))
    rng = np.random.default_rng(11)
    person = syn.identities(rng, 1, 128)[0]
    writer = CatalogWriter(store, settings)
    _populate(writer, person, rng)
    service = SearchService(store, TubelineConfig(), settings=settings)
    yield World(store, settings, service, person, writer)
    service.close()


def test_plate_search_modes(world: World) -> None:
    s = world.service
    exact = s.plates(PLATE)
    assert [h.camera_id for h in exact] == ["cam-3", "cam-2", "cam-1"]  # newest first
    assert s.plates("川a f058y") == exact
    assert {h.read_id for h in s.plates("川A*58?", mode="wildcard")} == {h.read_id for h in exact}
    assert s.plates("川A*58", mode="wildcard") == []
    fuzzy = s.plates("川AF058", mode="fuzzy", max_edits=1)
    assert len(fuzzy) == 3 and {h.edits for h in fuzzy} == {1}
    assert s.plates("川AF05", mode="fuzzy", max_edits=1) == []
    ranked = s.plates("京B12346", mode="fuzzy", max_edits=2)
    assert [(h.text, h.edits) for h in ranked] == [("京B12345", 1)]
    assert s.plates(PLATE, start=T0 + timedelta(minutes=5), end=T0 + timedelta(minutes=15))[0].camera_id == "cam-2"
    assert len(s.plates(PLATE, limit=2)) == 2


def test_latest_plate_revision_wins(world: World) -> None:
    s = world.service
    assert s.plates("京B12346") == []  # revision 0 arrived later but is superseded
    (hit,) = s.plates("京B12345")
    assert hit.revision == 1
    assert s.sighting("track", f"{hit.track_id}/0").text == "京B12345"


def test_redelivered_records_are_not_duplicated(world: World) -> None:
    rng = np.random.default_rng(11)
    person = syn.identities(rng, 1, 128)[0]
    before = (world.service.plates(PLATE), world.service.vehicles(), world.service.alerts(),
              world.service.faces(world.person, model_id=MODEL))
    _populate(CatalogWriter(world.store, world.settings), person, rng)  # the whole batch again, same keys
    writer = CatalogWriter(world.store, world.settings)
    for kind, msg in [("plates", syn.plate(syn.track("cam-1", 1, T0), PLATE)),
                      ("tracks", syn.track("cam-1", 1, T0))]:
        _add(writer, kind, msg, 1000)  # and single records again, in other segments
    writer.flush()
    world.service.refresh()
    after = (world.service.plates(PLATE), world.service.vehicles(), world.service.alerts(),
             world.service.faces(world.person, model_id=MODEL))
    assert [len(x) for x in after] == [len(x) for x in before] == [3, 4, 3, 9]
    assert [h.read_id for h in after[0]] == [h.read_id for h in before[0]]


def test_persons_by_clothing_colours(world: World) -> None:
    s = world.service
    assert {h.camera_id for h in s.persons()} == {"cam-1", "cam-2", "cam-3"}
    assert {h.camera_id for h in s.persons(upper="red")} == {"cam-1", "cam-2"}
    red_dark = s.persons(upper="red", lower="dark")  # dark = black or grey
    assert [(h.camera_id, h.upper_colour, h.lower_colour) for h in red_dark] == [("cam-1", "red", "black")]
    assert [h.camera_id for h in s.persons(lower="dark")] == ["cam-3", "cam-1"]  # newest first
    assert s.persons(upper="light", lower="grey")[0].camera_id == "cam-3"
    assert s.persons(upper="green") == []
    assert all(h.class_name == "person" for h in s.persons())
    with pytest.raises(QueryError, match="upper colour"):
        s.persons(upper="mauve")


def test_vehicles_filter_by_type_colour_and_time(world: World) -> None:
    s = world.service
    assert {h.camera_id for h in s.vehicles()} == {"cam-1", "cam-2", "cam-3"}
    assert [h.camera_id for h in s.vehicles(vehicle_type="van")] == ["cam-2"]
    assert {h.camera_id for h in s.vehicles(colour="white")} == {"cam-1", "cam-2"}
    assert [h.plate for h in s.vehicles(colour="red")] == [PLATE]
    window = s.vehicles(start=T0 + timedelta(minutes=10, seconds=2), end=T0 + timedelta(minutes=11))
    assert [h.camera_id for h in window] == ["cam-2"]  # overlaps the track's 4 s span
    with pytest.raises(QueryError):
        s.vehicles(colour="mauve")


def test_face_search_and_trajectory(world: World) -> None:
    s = world.service
    hits = s.faces(world.person, model_id=MODEL, k=6)
    assert len(hits) == 6 and all(h.track_id.endswith(":2") for h in hits)
    assert hits[0].score > 0.8 and all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    assert len(s.faces(world.person, model_id=MODEL, k=20, threshold=0.5)) == 6
    trajectory = s.face_trajectory(world.person, model_id=MODEL, threshold=0.5)
    assert [x.camera_id for x in trajectory] == ["cam-1", "cam-2", "cam-3"]  # one sighting per track, in time
    assert trajectory[0].lat == POSITIONS["cam-1"][0] and trajectory[0].camera_name == "Gate 1"
    assert s.faces(world.person, model_id="other@1") == []
    with pytest.raises(QueryError):
        s.faces(world.person[:64], model_id=MODEL)


def test_plate_trajectory_and_sightings(world: World) -> None:
    s = world.service
    trajectory = s.plate_trajectory("川A F058Y")
    assert [x.camera_id for x in trajectory] == ["cam-1", "cam-2", "cam-3"]
    assert [x.time for x in trajectory] == sorted(x.time for x in trajectory)
    first = trajectory[0]
    assert (first.lat, first.lon) == POSITIONS["cam-1"] and first.text == PLATE and first.kind == "plate"
    assert first.clip_start == T0 - timedelta(seconds=5) and first.clip_end == T0 + timedelta(seconds=9)
    assert s.sighting("plate", first.id) == first
    track = s.sighting("track", first.track_id)
    assert track is not None and track.crop_key and track.time == T0
    face = s.faces(world.person, model_id=MODEL, k=1)[0]
    detail = s.sighting("face", face.face_id)
    assert detail is not None and detail.crop_key == face.crop_key and detail.track_id == face.track_id
    assert s.sighting("plate", "nope") is None and s.sighting("track", "x/abc") is None


def test_alerts_and_camera_status(world: World) -> None:
    s = world.service
    assert [a.camera_id for a in s.alerts()] == ["cam-3", "cam-2", "cam-1"]
    assert s.alerts(alert_type="loitering") == []
    assert s.alerts(start=T0 + timedelta(minutes=5))[-1].camera_id == "cam-2"
    states = {c.camera_id: c for c in s.camera_status()}
    assert set(states) == {"cam-1", "cam-2", "cam-3"}
    assert states["cam-1"].status == "online" and states["cam-1"].fps_out == 4.5
    assert states["cam-2"].status == "offline" and states["cam-2"].reason == "timeout"
    assert states["cam-3"].status == "unknown" and states["cam-3"].latitude == POSITIONS["cam-3"][0]


SCOPE = ["cam-1", "cam-3"]


def _everything(s: SearchService, person: np.ndarray, cameras: list[str] | None) -> dict[str, list]:
    return {
        "plates": s.plates(PLATE, cameras=cameras),
        "wildcard": s.plates("?*", mode="wildcard", cameras=cameras),
        "fuzzy": s.plates(PLATE, mode="fuzzy", max_edits=3, cameras=cameras),
        "vehicles": s.vehicles(cameras=cameras),
        "faces": s.faces(person, model_id=MODEL, k=50, cameras=cameras),
        "plate_trajectory": s.plate_trajectory(PLATE, cameras=cameras),
        "face_trajectory": s.face_trajectory(person, model_id=MODEL, threshold=-1.0, cameras=cameras),
        "alerts": s.alerts(cameras=cameras),
        "camera_status": s.camera_status(cameras=cameras),
    }


def test_nothing_outside_the_camera_scope_is_returned(world: World) -> None:
    s = world.service
    everything = _everything(s, world.person, None)
    scoped = _everything(s, world.person, SCOPE)
    for name, hits in everything.items():
        assert {h.camera_id for h in hits} == {"cam-1", "cam-2", "cam-3"}, name
        assert hits and {h.camera_id for h in scoped[name]} == set(SCOPE), name
    for name, hits in _everything(s, world.person, []).items():
        assert hits == [], name
    cam2_read = next(h for h in everything["plates"] if h.camera_id == "cam-2")
    cam2_face = next(h for h in everything["faces"] if h.camera_id == "cam-2")
    for kind, ident in [("plate", cam2_read.read_id), ("track", cam2_read.track_id),
                        ("track", f"{cam2_read.track_id}/0"), ("face", cam2_face.face_id)]:
        assert s.sighting(kind, ident, cameras=SCOPE) is None
        assert s.sighting(kind, ident, cameras=["cam-2"]) is not None
    with pytest.raises(QueryError):
        s.plates(PLATE, cameras="cam-1")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.plates(PLATE, start=datetime(2024, 5, 1)),  # noqa: DTZ001 - the point of the test
        lambda s: s.alerts(end=datetime(2024, 5, 1)),  # noqa: DTZ001
        lambda s: s.plates(PLATE, mode="regex"),
        lambda s: s.plates("川A%", mode="wildcard"),
        lambda s: s.plates(PLATE, mode="fuzzy", max_edits=4),
        lambda s: s.plates(PLATE, limit=0),
        lambda s: s.vehicles(vehicle_type="spaceship"),
        lambda s: s.alerts(alert_type="sneezing"),
        lambda s: s.faces(np.zeros(128), model_id=MODEL),
        lambda s: s.faces(np.ones(128), model_id=MODEL, threshold=2.0),
        lambda s: s.sighting("boat", "x"),
    ],
)
def test_bad_queries_raise_query_error(world: World, call) -> None:  # noqa: ANN001
    with pytest.raises(QueryError):
        call(world.service)


def test_refresh_follows_new_compacted_and_corrupt_segments(world: World) -> None:
    s = world.service
    assert len(s.plates(PLATE)) == 3
    t = syn.track("cam-4", 1, T0 + timedelta(hours=2))
    _add(world.writer, "tracks", t, 5000)
    _add(world.writer, "plates", syn.plate(t, PLATE), 5001)
    world.writer.flush()
    assert len(s.plates(PLATE)) == 3  # not yet refreshed
    s.refresh()
    assert len(s.plates(PLATE)) == 4
    _add(world.writer, "plates", syn.plate(t, PLATE, revision=1), 5002)  # a newer revision: another segment
    world.writer.flush()
    assert compact_partition(world.store, world.settings, "plates", "2024-05-01", "cam-4") is not None
    world.store.put("catalog/plates/date=2024-05-01/camera=cam-5/part-c-000000000000.parquet", b"not parquet")
    s.refresh()
    assert len(s.plates(PLATE)) == 4
    assert sum(1 for k in s.catalog.loaded if "camera=cam-4" in k and "/plates/" in k) == 1
    assert list(s.catalog.bad) == ["catalog/plates/date=2024-05-01/camera=cam-5/part-c-000000000000.parquet"]


def test_a_new_service_reuses_the_cache(world: World) -> None:
    again = SearchService(world.store, TubelineConfig(), settings=world.settings)
    again.refresh()
    assert again.plates(PLATE) == world.service.plates(PLATE)
    assert (again.catalog.root / "_etags.json").is_file()
    again.close()


def test_face_segments_of_another_model_stay_apart(world: World) -> None:
    walker = syn.track("cam-1", 77, T0 + timedelta(hours=3), class_name="person", vehicle_type=None)
    _add(world.writer, "faces", syn.face(walker, 0, world.person[:32], model_id="dlib@1"), 7000)
    world.writer.flush()
    world.service.refresh()
    assert [h.model_id for h in world.service.faces(world.person[:32], model_id="dlib@1")] == ["dlib@1"]
    assert len(world.service.faces(world.person, model_id=MODEL, k=50)) == 9


def test_deleted_days_leave_the_results_and_memory(world: World) -> None:
    s = world.service
    assert len(s.faces(world.person, model_id=MODEL, k=50)) == 9 and s.face_index.shards
    for info in list(world.store.list("catalog/")):  # retention: the whole day goes
        world.store.delete(info.key)
    s.refresh()
    assert s.faces(world.person, model_id=MODEL, k=50) == [] and not s.face_index.shards
    assert s.plates(PLATE) == [] and s.vehicles() == [] and s.alerts() == []


@pytest.mark.parametrize(
    ("query", "found", "edits"),
    [
        ("川AF058Y", 3, 0),  # the true plate: exact
        ("川AFO58Y", 3, 1),  # read with O for 0
        ("川AF05BY", 3, 1),  # 8/B
        ("川AFQ5BY", 3, 2),  # two look-alikes (0/Q, 8/B)
        ("川AF057Y", 0, None),  # 7 is nobody's look-alike
        ("川AF058", 0, None),  # a missing character is an edit, not a look-alike
        ("京BI2345", 1, 1),  # 1/I
        ("京BT2345", 1, 1),  # 1/T
    ],
)
def test_exact_plate_search_with_lookalikes(world: World, query: str, found: int, edits: int | None) -> None:
    s = world.service
    hits = s.plates(query, lookalikes=True)
    assert len(hits) == found
    assert all(h.edits == edits for h in hits)
    if query not in (PLATE, "京B12345"):
        assert s.plates(query) == []  # without look-alikes nothing matches


def test_lookalike_hits_come_after_exact_ones(world: World) -> None:
    revised = syn.track("cam-1", 12, T0 + timedelta(hours=2))
    _add(world.writer, "tracks", revised, 900)
    _add(world.writer, "plates", syn.plate(revised, "川AFO58Y"), 901)
    world.writer.flush()
    world.service.refresh()
    hits = world.service.plates(PLATE, lookalikes=True)
    assert [h.text for h in hits] == [PLATE] * 3 + ["川AFO58Y"]  # the newer look-alike read comes last
