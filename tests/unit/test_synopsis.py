"""Synopsis units without video: requests and IDs, track selection, tubes (interpolation, scaling, time-lapse,
groups), the arrangement's energy terms, the exact metrics, the index's click lookup, mattes, config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.config.synopsis import ArrangeConfig, MatteConfig, SynopsisConfig
from pipeline.synopsis.index import SynopsisIndex, SynopsisMetrics, SynopsisObject, object_at
from pipeline.synopsis.request import SynopsisRequest, parse_zone
from schemas.plates import PlateRead
from schemas.tracks import TrackSummary
from workers.synopsis.arrange import arrange, speed_factors
from workers.synopsis.matte import object_matte
from workers.synopsis.metrics import collision_ratio, reversed_pairs
from workers.synopsis.render import schedule
from workers.synopsis.sources import MemoryTrackSource, clip_path, join_segments, select_tracks
from workers.synopsis.tubes import build_tubes, group_paths, motion_rate
from workers.synopsis.worker import SynopsisWorker

CAM = "cam-01"
T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
W, H = 640, 480


def summary(n: int, start_s: float, boxes: list[tuple[float, float, float, float]], *, cls: str = "person",
            colour: str = "unknown", segment: int = 0, step: float = 0.2, camera: str = CAM) -> TrackSummary:
    """A track of ``len(boxes)`` path points ``step`` seconds apart, starting ``start_s`` after T0."""
    start = T0 + timedelta(seconds=start_s)
    path = tuple((round(i * step, 3), *box) for i, box in enumerate(boxes))
    return TrackSummary(
        track_id=f"{camera}:s1:{n}", segment=segment, camera_id=camera, class_name=cls, class_id=0,
        started_at=start, ended_at=start + timedelta(seconds=path[-1][0]), frame_width=W, frame_height=H,
        path=path, mean_score=0.8, best_crop_key=None, colour=colour,  # type: ignore[arg-type]
        colour_confidence=0.5 if colour != "unknown" else 0.0,
        vehicle_type="car" if cls == "car" else None, closed_reason="lost",
    )


def walk(x0: float, y0: float, dx: float, points: int, w: float = 40, h: float = 100) -> list[tuple[float, float, float, float]]:
    return [(x0 + i * dx, y0, x0 + i * dx + w, y0 + h) for i in range(points)]


def request(**kw: object) -> SynopsisRequest:
    base: dict[str, object] = {"camera_id": CAM, "start": T0, "end": T0 + timedelta(minutes=10)}
    base.update(kw)
    return SynopsisRequest(**base)  # type: ignore[arg-type]


# -- requests ---------------------------------------------------------------------------------------------
def test_request_id_is_stable_and_depends_only_on_what_is_shown() -> None:
    a = request(classes=("person", "car"), length_s=30.0, requested_by="alice")
    b = request(classes=("car", "person"), length_s=30.0, requested_by="bob")
    assert a.synopsis_id() == b.synopsis_id()
    assert len(a.synopsis_id()) == 32
    assert request(classes=("person",), length_s=30.0).synopsis_id() != a.synopsis_id()
    assert request(length_s=31.0).synopsis_id() != request(length_s=30.0).synopsis_id()
    assert SynopsisRequest.from_json(a.to_json()) == a


@pytest.mark.parametrize(("kw", "message"), [
    ({"end": T0}, "must be after start"),
    ({"zone": ((0.1, 0.1), (0.2, 0.2), (0.3, 0.3))}, "no area"),
    ({"start": datetime(2024, 5, 1, 8, 0)}, "timezone"),  # noqa: DTZ001 - the naive time is the point
    ({"colours": ("purple",)}, "colours"),
])
def test_bad_requests_are_rejected(kw: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        request(**kw)


@pytest.mark.parametrize(("text", "points"), [
    ("0.1,0.2,0.5,0.6", ((0.1, 0.2), (0.5, 0.2), (0.5, 0.6), (0.1, 0.6))),
    ("0,0, 1,0, 0.5,1", ((0.0, 0.0), (1.0, 0.0), (0.5, 1.0))),
])
def test_parse_zone(text: str, points: tuple) -> None:
    assert parse_zone(text) == points


@pytest.mark.parametrize("text", ["0.1,0.2,0.3", "0.1,0.2,1.5,0.6", "a,b,c,d"])
def test_parse_zone_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="zone"):
        parse_zone(text)


# -- selection --------------------------------------------------------------------------------------------
def test_duplicates_are_removed_and_segments_joined() -> None:
    first = summary(1, 0.0, walk(0, 100, 5, 6))
    second = summary(1, 1.2, walk(30, 100, 5, 6), segment=1)
    paths = join_segments([first, second, first, summary(2, 3.0, walk(300, 50, 0, 3))])
    assert [p.track_id for p in paths] == [f"{CAM}:s1:1", f"{CAM}:s1:2"]
    joined = paths[0]
    assert joined.segments == (0, 1)
    assert len(joined.times) == 12
    assert joined.started_at == first.started_at and joined.ended_at == second.ended_at
    assert np.all(np.diff(joined.times) >= 0)


def test_clip_path_keeps_the_inside_only() -> None:
    path = join_segments([summary(1, 0.0, walk(0, 100, 5, 11))])[0]  # 0 .. 2 s
    clipped = clip_path(path, T0 + timedelta(seconds=0.5), T0 + timedelta(seconds=1.5))
    assert clipped is not None and clipped.clipped
    assert clipped.started_at == T0 + timedelta(seconds=0.6)
    assert clipped.ended_at == T0 + timedelta(seconds=1.4)
    assert clip_path(path, T0 + timedelta(seconds=5), T0 + timedelta(seconds=6)) is None


def _plate(track: int, text: str) -> PlateRead:
    example = PlateRead.example()
    return example.model_copy(update={"track_id": f"{CAM}:s1:{track}", "camera_id": CAM, "text": text,
                                      "char_confidences": (0.9,) * len(text), "read_id": f"r{track}"})


SOURCE = MemoryTrackSource(
    [
        summary(1, 0.0, walk(10, 300, 4, 10)),                            # person, bottom left
        summary(2, 5.0, walk(400, 50, 4, 10), cls="car", colour="red"),   # red car, top right
        summary(3, 9.0, walk(400, 300, 4, 10), cls="truck", colour="white"),
        summary(4, 12.0, walk(10, 50, 4, 10), colour="red"),               # red person, top left
        summary(5, 1.0, walk(10, 300, 4, 10), camera="cam-02"),          # other camera
    ],
    [_plate(2, "川AF058Y"), _plate(3, "京B12345")],
)


@pytest.mark.parametrize(("kw", "expected"), [
    ({}, [1, 2, 3, 4]),
    ({"classes": ("person",)}, [1, 4]),
    ({"classes": ("vehicle",)}, [2, 3]),
    ({"classes": ("truck",)}, [3]),
    ({"colours": ("red",)}, [2, 4]),
    ({"classes": ("vehicle",), "colours": ("red",)}, [2]),
    ({"plate": "af058"}, [2]),
    ({"plate": "ZZZ"}, []),
    ({"zone": ((0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5))}, [2]),  # top-right quarter (ground points)
    ({"end": T0 + timedelta(seconds=8)}, [1, 2]),
])
def test_select_tracks_filters(kw: dict, expected: list[int]) -> None:
    chosen = select_tracks(SOURCE, request(**kw))
    assert [int(p.track_id.rsplit(":", 1)[1]) for p in chosen] == expected


def test_jsonl_source_round_trip(tmp_path) -> None:  # noqa: ANN001
    file = tmp_path / "tracks.jsonl"
    file.write_bytes(b"\n".join([summary(1, 0.0, walk(0, 0, 1, 3)).to_json(), _plate(1, "AB123").to_json()]) + b"\n")
    source = MemoryTrackSource.from_jsonl(file)
    assert len(source.tracks(CAM, T0, T0 + timedelta(minutes=1))) == 1
    assert source.plates(CAM, T0, T0 + timedelta(minutes=1)) == {f"{CAM}:s1:1": "AB123"}
    file.write_text("{not json}\n")
    with pytest.raises(ValueError, match=":1:"):
        MemoryTrackSource.from_jsonl(file)


# -- tubes ------------------------------------------------------------------------------------------------
def test_tube_boxes_are_interpolated_to_the_synopsis_rate_and_scaled() -> None:
    path = join_segments([summary(1, 0.0, [(0, 0, 10, 20), (20, 40, 30, 60), (40, 80, 50, 100)])])[0]  # 0.4 s
    tubes, groups = build_tubes([path], fps=10.0, size=(2 * W, 2 * H), length_frames=100, settings=ArrangeConfig())
    tube = tubes[0]
    assert tube.frames == 5 and tube.speed == 1.0
    assert np.allclose(tube.times - tube.times[0], [0.0, 0.1, 0.2, 0.3, 0.4])
    assert np.allclose(tube.boxes[1], [20, 40, 40, 80])      # halfway between points 0 and 1, doubled
    assert np.allclose(tube.boxes[4], [80, 160, 100, 200])
    assert groups[0].frames == 5


def test_tubes_longer_than_the_synopsis_are_time_lapsed() -> None:
    long = join_segments([summary(1, 0.0, walk(0, 100, 2, 101))])[0]  # 20 s
    tubes, groups = build_tubes([long], fps=10.0, size=(W, H), length_frames=51, settings=ArrangeConfig())
    tube = tubes[0]
    assert tube.frames == 51
    assert tube.speed == pytest.approx(4.0)
    assert tube.times[0] == long.start_s and tube.times[-1] == pytest.approx(long.end_s)


def test_objects_walking_together_are_grouped_and_others_not() -> None:
    a = summary(1, 0.0, walk(100, 200, 3, 20))
    b = summary(2, 0.4, walk(150, 200, 3, 20))      # beside a for ~3.4 s
    c = summary(3, 0.0, walk(500, 50, 3, 20))       # far away at the same time
    paths = join_segments([a, b, c])

    def groups(cfg: ArrangeConfig) -> list[list[int]]:
        return sorted(sorted(int(paths[i].track_id[-1]) for i in g) for g in group_paths(paths, cfg))

    assert groups(ArrangeConfig()) == [[1, 2], [3]]
    assert groups(ArrangeConfig(group_interacting=False)) == [[1], [2], [3]]
    assert groups(ArrangeConfig(max_group_s=3.0)) == [[1], [2], [3]]  # merged span 4.2 s


# -- arrangement ------------------------------------------------------------------------------------------
def _arrange(summaries: list[TrackSummary], length_frames: int, **settings: object):  # noqa: ANN202
    paths = join_segments(summaries)
    cfg = ArrangeConfig(**settings)  # type: ignore[arg-type]
    tubes, groups = build_tubes(paths, fps=10.0, size=(W, H), length_frames=length_frames, settings=cfg)
    window = (min(p.start_s for p in paths), max(p.end_s for p in paths))
    result = arrange(tubes, groups, fps=10.0, size=(W, H), length_frames=length_frames, settings=cfg, window=window)
    return result.tubes, result  # as shown (a group the optimiser sped up is shorter)


def test_objects_on_the_same_spot_are_shifted_apart_when_there_is_room() -> None:
    same = [summary(i, 10.0 * i, walk(200, 200, 0, 11)) for i in range(3)]  # 2 s each, same place
    tubes, result = _arrange(same, length_frames=80)
    starts = sorted(result.tube_start(t) for t in tubes)
    assert result.collision == 0.0
    assert all(b - a >= 20 for a, b in zip(starts, starts[1:], strict=False))
    assert result.chronology == 0  # no collision cost forces reordering, so the order is kept


def test_chronology_is_kept_when_nothing_collides() -> None:
    apart = [summary(i, 20.0 * i, walk(20 + 120 * i, 50 + 60 * i, 0, 6)) for i in range(5)]
    tubes, result = _arrange(apart, length_frames=40)
    assert result.collision == 0.0 and result.chronology == 0
    starts = [result.tube_start(t) for t in tubes]
    assert starts == sorted(starts)


def test_annealing_never_ends_worse_than_greedy_and_is_deterministic() -> None:
    crowd = [summary(i, 3.0 * i, walk(50 + 37 * (i % 7), 100 + 23 * (i % 5), 6, 25)) for i in range(20)]
    tubes, first = _arrange(crowd, length_frames=60)
    _, second = _arrange(crowd, length_frames=60)
    assert first.energy <= first.greedy_energy + 1e-9
    assert np.array_equal(first.starts, second.starts)
    assert all(0 <= first.tube_start(t) <= 60 - t.frames for t in tubes)


def test_left_out_only_when_allowed() -> None:
    same = [summary(i, 10.0 * i, walk(200, 200, 0, 41)) for i in range(4)]  # 8 s each, one place
    _, kept = _arrange(same, length_frames=81, max_speedup=1.0, max_still_speedup=1.0)
    assert (kept.starts >= 0).all() and kept.activity_loss == 0.0
    _, dropped = _arrange(same, length_frames=81, drop_objects=True, activity_weight=0.2, max_speedup=1.0,
                          max_still_speedup=1.0)
    assert (dropped.starts < 0).any() and dropped.activity_loss > 0
    assert dropped.energy < kept.energy


def _shown_collision(tubes: list, result) -> float:  # noqa: ANN001
    """The index's exact collision ratio of an arrangement (boxes as shown, every synopsis frame)."""
    shown, _ = schedule(tubes, result)
    return collision_ratio(np.array([t.boxes[k] for t, k in shown[f]]) for f in sorted(shown))


@pytest.mark.parametrize(("max_speedup", "expected"), [
    (1.0, [1.0]), (2.0, [1.0, 2 ** 0.5, 2.0]), (4.0, [1.0, 2 ** 0.5, 2.0, 2 ** 1.5, 4.0]), (3.0, None),
])
def test_speed_ladder(max_speedup: float, expected: list[float] | None) -> None:
    ladder = speed_factors(max_speedup)
    assert ladder[0] == 1.0 and ladder[-1] == pytest.approx(max_speedup)
    assert all(b / a <= 2 ** 0.5 + 1e-9 for a, b in zip(ladder, ladder[1:], strict=False))
    if expected is not None:
        assert ladder == pytest.approx(expected)


def test_a_crowd_on_one_path_is_sped_up_instead_of_overlapped() -> None:
    # six people walk the same 4-s path; a 4-s synopsis at real time must stack them all
    crowd = [summary(i, 30.0 * i, walk(100, 200, 15, 21)) for i in range(6)]
    slow_tubes, slow = _arrange(crowd, length_frames=40, max_speedup=1.0)
    fast_tubes, fast = _arrange(crowd, length_frames=40)
    before, after = _shown_collision(slow_tubes, slow), _shown_collision(fast_tubes, fast)
    assert before > 0.9 and after < before - 0.3, (before, after)
    assert (fast.speeds > 1.0).any() and fast.speed_loss > 0
    for tube in fast_tubes:  # still every object once, whole, with the exact original time of each frame
        assert 0 <= fast.tube_start(tube) <= 40 - tube.frames
        assert tube.times[0] == tube.path.start_s and tube.times[-1] >= tube.path.end_s - tube.speed / 10.0
        assert np.allclose(np.diff(tube.times), tube.speed / 10.0)
        assert tube.speed <= 4.0 + 1e-9


def test_a_quiet_scene_stays_at_real_time() -> None:
    apart = [summary(i, 20.0 * i, walk(20 + 120 * i, 50 + 60 * i, 3, 11)) for i in range(5)]
    tubes, result = _arrange(apart, length_frames=40)
    assert result.collision == 0.0 and (result.speeds == 1.0).all() and all(t.speed == 1.0 for t in tubes)


def test_motion_rate_separates_still_from_walking() -> None:
    parked = join_segments([summary(1, 0.0, [(300 + (i % 2), 200, 400, 260) for i in range(51)])])[0]  # jitter
    walker = join_segments([summary(2, 0.0, walk(0, 100, 10, 26))])[0]  # 50 px/s, 100 px tall
    assert motion_rate(parked) < 0.05
    assert motion_rate(walker) == pytest.approx(0.5, rel=0.02)


def test_still_objects_may_be_sped_up_beyond_max_speedup_moving_ones_not() -> None:
    # three parked cars (10 s each, same spot) and three walkers (4 s each, same path), 4-s synopsis
    cars = [summary(i, 40.0 * i, [(300 + k % 2, 200, 500, 320) for k in range(51)], cls="car") for i in range(3)]
    people = [summary(10 + i, 40.0 * i + 20, walk(0, 300, 15, 21)) for i in range(3)]
    tubes, result = _arrange(cars + people, length_frames=40, max_speedup=2.0, max_still_speedup=16.0)
    factor = {cls: [result.speeds[t.group] for t in tubes if t.path.class_name == cls] for cls in ("car", "person")}
    assert max(factor["person"]) <= 2.0 + 1e-9 < max(factor["car"])
    assert all(t.speed >= (t.path.end_s - t.path.start_s) * 10 / 39 - 1e-9 for t in tubes)  # never slower than fits
    _, capped = _arrange(cars + people, length_frames=40, max_speedup=2.0, max_still_speedup=16.0, still_motion=0.0)
    assert capped.speeds.max() <= 2.0 + 1e-9


def test_speed_ups_are_priced() -> None:
    crowd = [summary(i, 30.0 * i, walk(100, 200, 15, 21)) for i in range(6)]
    tubes, priced = _arrange(crowd, length_frames=40, speed_cost=1000.0)
    assert (priced.speeds == 1.0).all() and priced.speed_loss == 0.0
    _, free = _arrange(crowd, length_frames=40, speed_cost=0.0)
    assert free.collision <= priced.collision


# -- metrics ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("frames", "expected"), [
    ([np.array([[0, 0, 10, 10]])], 0.0),
    ([np.array([[0, 0, 10, 10], [0, 0, 10, 10]])], 1.0),                       # each fully covered by the other
    ([np.array([[0, 0, 10, 10], [5, 0, 15, 10]])], 100 / 200),                 # half of each
    ([np.array([[0, 0, 10, 10]] * 3)], 1.0),
    ([np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 10, 10], [0, 0, 10, 10]])], 200 / 400),
    ([np.array([[0, 0, 10, 10], [5, 5, 15, 15], [30, 30, 40, 40]])], (25 + 25) / 300),
    ([np.array([[0, 0, 10, 10], [5, 5, 15, 15], [0, 5, 15, 10]])], (50 + 50 + 75) / 275),  # 2-3 deep
    ([], 0.0),
])
def test_collision_ratio(frames: list[np.ndarray], expected: float) -> None:
    assert collision_ratio(frames) == pytest.approx(expected)


@pytest.mark.parametrize(("original", "shown", "expected"), [
    ([1, 2, 3], [0, 5, 9], 0),
    ([1, 2, 3], [9, 5, 0], 3),
    ([1, 2, 3], [5, 5, 0], 2),
    ([1, 1, 3], [5, 0, 9], 0),
])
def test_reversed_pairs(original: list[float], shown: list[float], expected: int) -> None:
    assert reversed_pairs(np.array(original, float), np.array(shown, float)) == expected


# -- index ------------------------------------------------------------------------------------------------
def _object(track: int, first: int, boxes: list[tuple[int, int, int, int]], speed: float = 1.0) -> SynopsisObject:
    start = T0 + timedelta(seconds=100 * track)
    return SynopsisObject(
        track_id=f"{CAM}:s1:{track}", segments=(0,), camera_id=CAM, class_name="person", colour="unknown",
        original_start=start, original_end=start + timedelta(seconds=len(boxes) * speed / 10),
        clipped=False, speed=speed, group=track, first_frame=first, first_frame_time=start,
        synopsis_start_s=first / 10, synopsis_end_s=(first + len(boxes)) / 10, boxes=tuple(boxes),
    )


def _index(objects: list[SynopsisObject]) -> SynopsisIndex:
    metrics = SynopsisMetrics.model_validate(
        {name: 0 if field.annotation is int else 0.0 for name, field in SynopsisMetrics.model_fields.items()}
    )
    return SynopsisIndex(
        synopsis_id="0" * 32, camera_id=CAM, request=request(), created_at=T0, video_key="synopsis/x.mp4",
        window_start=T0, window_end=T0 + timedelta(minutes=10), fps=10.0, width=W, height=H, frames=50,
        source_width=W, source_height=H, metrics=metrics, objects=tuple(objects),
    )


def test_object_at_finds_the_object_and_its_original_time() -> None:
    a = _object(1, 0, [(0, 0, 50, 100)] * 20)
    b = _object(2, 10, [(30, 20, 80, 140)] * 20, speed=3.0)   # overlaps a, lower bottom → drawn on top
    index = SynopsisIndex.from_json(_index([a, b]).to_json())
    hit = object_at(index, 0.55, 10, 10)                       # frame 5: only a
    assert hit is not None and hit.object.track_id == a.track_id and hit.frame == 5
    assert hit.original_time == a.original_start + timedelta(seconds=0.5)
    top = object_at(index, 1.25, 40, 50)                       # frame 12: both contain (40, 50)
    assert top is not None and top.object.track_id == b.track_id
    assert top.original_time == b.original_start + timedelta(seconds=2 * 3.0 / 10)
    assert object_at(index, 1.25, 200, 200) is None
    assert object_at(index, 3.05, 40, 50) is None               # frame 30: b ended at frame 29
    assert object_at(index, -1, 10, 10) is None


# -- mattes -----------------------------------------------------------------------------------------------
def test_matte_separates_the_object_and_feathers_its_edge() -> None:
    rng = np.random.default_rng(0)
    background = rng.integers(90, 110, (120, 80, 3), dtype=np.uint8)
    crop = background.copy()
    crop[30:90, 25:55] = (20, 40, 200)                          # the object: a red block inside its box
    alpha = object_matte(crop, background, (20, 25, 60, 95), MatteConfig())
    assert alpha[60, 40] > 240                                  # body
    assert alpha[5, 5] == 0 and alpha[110, 70] == 0             # far background
    assert 0 < alpha[60, 25] < 255 or 0 < alpha[60, 24] < 255   # feathered edge


def test_matte_falls_back_to_an_ellipse_when_the_object_looks_like_the_background() -> None:
    background = np.full((100, 60, 3), 100, np.uint8)
    alpha = object_matte(background.copy(), background, (10, 10, 50, 90), MatteConfig())
    assert alpha[50, 30] > 200 and alpha[12, 12] < 60 and alpha[2, 2] == 0


# -- config and worker windows ----------------------------------------------------------------------------
def test_config_is_strict_and_bounded() -> None:
    assert SynopsisConfig().render.preset == "veryfast"
    with pytest.raises(ValidationError):
        SynopsisConfig.model_validate({"render": {"unknown": 1}})
    with pytest.raises(ValidationError, match="min_length_s"):
        SynopsisConfig(min_length_s=100, max_length_s=50)
    with pytest.raises(ValidationError, match="window_cameras"):
        SynopsisConfig.model_validate({"worker": {"window_cameras": ["bad camera"]}})
    with pytest.raises(ValidationError, match="time zone"):
        SynopsisConfig.model_validate({"render": {"label_timezone": "Mars/Olympus"}})


class _Config:
    def __init__(self, synopsis: SynopsisConfig) -> None:
        self.synopsis = synopsis


def test_per_window_requests_cover_closed_windows_only() -> None:
    settings = SynopsisConfig.model_validate(
        {"worker": {"window_cameras": ["cam-01", "cam-02"], "window_s": 3600, "window_delay_s": 300, "windows_back": 2}}
    )
    worker = SynopsisWorker(_Config(settings), bus=None, store=None, source=MemoryTrackSource())  # type: ignore[arg-type]
    now = datetime(2024, 5, 1, 10, 4, 0, tzinfo=UTC)  # 10:00 window closed 4 min ago, still in its delay
    got = [(r.camera_id, r.start.hour, r.end.hour) for r in worker.window_requests(now)]
    assert got == [("cam-01", 8, 9), ("cam-02", 8, 9), ("cam-01", 7, 8), ("cam-02", 7, 8)]
    later = [(r.start.hour, r.end.hour) for r in worker.window_requests(now + timedelta(minutes=2))]
    assert later[0] == (9, 10)


# -- the catalog as a track source --------------------------------------------------------------------------
def test_catalog_source_reads_what_the_indexer_wrote(tmp_path) -> None:  # noqa: ANN001
    from pipeline.catalog.format import PLATE_KIND, TRACK_KIND, RowMeta
    from pipeline.config.index import IndexConfig
    from pipeline.store.local import LocalStore
    from workers.index.writer import CatalogWriter
    from workers.synopsis.catalog import CatalogTrackSource

    store = LocalStore(tmp_path / "store")
    writer = CatalogWriter(store, IndexConfig(cache_dir=tmp_path / "cache"))
    first = summary(1, 0.0, walk(10, 300, 4, 10))
    redelivered = first.model_copy(update={"colour": "red", "colour_confidence": 0.7})
    writer.add(TRACK_KIND, first, RowMeta(0, 1, T0))
    writer.add(TRACK_KIND, redelivered, RowMeta(0, 7, T0 + timedelta(seconds=5)))
    writer.add(TRACK_KIND, summary(2, 3600.0, walk(10, 300, 4, 10)), RowMeta(0, 8, T0))  # an hour later
    writer.add(PLATE_KIND, _plate(1, "AB123"), RowMeta(1, 1, T0))
    writer.add(PLATE_KIND, _plate(1, "AB128").model_copy(update={"revision": 2}), RowMeta(1, 2, T0))
    writer.flush()

    source = CatalogTrackSource(store)
    got = source.tracks(CAM, T0, T0 + timedelta(minutes=10))
    assert [(s.track_id, s.colour) for s in got] == [(first.track_id, "red")]
    assert got[0].path == first.path and got[0].started_at == first.started_at
    assert source.plates(CAM, T0, T0 + timedelta(minutes=10)) == {first.track_id: "AB128"}
    assert source.tracks("cam-02", T0, T0 + timedelta(minutes=10)) == []


def test_every_config_field_is_titled_and_described() -> None:
    schema = SynopsisConfig.model_json_schema()
    for section in [schema, *schema.get("$defs", {}).values()]:
        for name, prop in section.get("properties", {}).items():
            assert prop.get("title") and prop.get("description"), f"{section.get('title')}.{name}"
