"""The detect worker's choice of crops, its suppression of duplicate boxes and its voted track class, driven by a
scripted detector over the in-memory bus (no model): which moments of a track become ``objects.v1`` crops, that
the held best moment is announced at the track's end, before its summary, and survives a hand-over through the
state snapshot unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.core import Detections
from pipeline.store.local import LocalStore
from schemas.detections import Detections as DetectionsMessage
from schemas.objects import ObjectCrop
from schemas.topics import DETECTIONS, OBJECTS, TRACKS
from schemas.tracks import TrackSummary
from tests.contract.test_bus_contract import drain
from tests.detect_helpers import publish_frames, run_until
from workers.detect.attributes import crop_quality
from workers.detect.worker import DetectWorker

NAMES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
W, H = 640, 480
BITS = 8  # the frame index is drawn as 8 black/white 16×16 blocks in the top-left corner
Row = tuple[str, tuple[float, float, float, float], float]


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (max(1, h // 6), max(1, w // 6), 3), dtype=np.uint8), (w, h),
                      interpolation=cv2.INTER_NEAREST)


def frame_image(index: int, boxes: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    image = (_texture(H, W, 0) // 3 + 60).astype(np.uint8)
    for x1, y1, x2, y2 in boxes:
        x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)
        image[y1:y2, x1:x2] = _texture(y2 - y1, x2 - x1, 1)
    for bit in range(BITS):
        image[0:16, 16 * bit : 16 * bit + 16] = 255 if index >> bit & 1 else 0
    return image


def frame_index(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BITS) if image[4:12, 16 * bit + 4 : 16 * bit + 12].mean() > 127)


class ScriptedDetector:
    """Returns, for each frame, the rows scripted for the frame index drawn into it (so replays agree)."""

    model_id = "scripted@1"
    class_names = NAMES

    def __init__(self, script: Sequence[Sequence[Row]]) -> None:
        self.script = script

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            rows = self.script[frame_index(image)]
            out.append(Detections(
                xyxy=np.array([r[1] for r in rows], dtype=np.float32).reshape(-1, 4),
                confidence=np.array([r[2] for r in rows], dtype=np.float32),
                class_id=np.array([NAMES.index(r[0]) for r in rows], dtype=np.int32),
                source=self.model_id, class_names=NAMES,
            ))
        return out


def centred(side: float, cx: float = W / 2, cy: float = H / 2) -> tuple[float, float, float, float]:
    return (cx - side * 0.75, cy - side / 2, cx + side * 0.75, cy + side / 2)


def growing_then_receding(peak_at: int = 14, frames: int = 25, gone: int = 13) -> list[list[Row]]:
    """A car growing (side 60 → 200 px) until ``peak_at``, then receding; then ``gone`` empty frames (it ends)."""
    sides = [60 + 140 * k / peak_at if k <= peak_at else 200 - 8 * (k - peak_at) for k in range(frames)]
    return [[("car", centred(s), 0.8)] for s in sides] + [[] for _ in range(gone)]


class Run:
    def __init__(self, script: list[list[Row]], tmp: Path, overrides: dict | None = None) -> None:
        self.script = script
        self.config = with_overrides(TubelineConfig(), {"detect.commit_interval_s": 0.2, **(overrides or {})})
        self.bus = MemoryBus(default_partitions=1)
        self.store = LocalStore(tmp / "store")
        images = [frame_image(i, [r[1] for r in rows]) for i, rows in enumerate(script)]
        publish_frames(self.bus, "cam", "s1", images, fps=5.0)

    def worker(self, **kwargs: object) -> DetectWorker:
        return DetectWorker(self.config, bus=self.bus, store=self.store, detector=ScriptedDetector(self.script),
                            **kwargs)  # type: ignore[arg-type]

    def all(self) -> Run:
        run_until(self.worker(close_on_stop=True), len(self.script))
        return self

    def read(self, topic: str, parse):  # noqa: ANN001, ANN201
        with self.bus.consumer([topic], f"check-{topic}") as consumer:
            return [parse(m.value) for m in drain(consumer, 0.3)]

    @property
    def crops(self) -> list[ObjectCrop]:
        return self.read(OBJECTS.name, ObjectCrop.from_json)

    @property
    def summaries(self) -> list[TrackSummary]:
        return self.read(TRACKS.name, TrackSummary.from_json)

    @property
    def detections(self) -> list[DetectionsMessage]:
        return sorted(self.read(DETECTIONS.name, DetectionsMessage.from_json), key=lambda d: d.sequence)


def side(crop: ObjectCrop) -> float:
    x1, y1, x2, y2 = crop.box
    return ((x2 - x1) * (y2 - y1)) ** 0.5


def test_scripted_frames_carry_their_index() -> None:
    for index in (0, 1, 37, 200):
        image = frame_image(index, [centred(100)])
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok and frame_index(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)) == index


def test_quality_grows_with_linear_size_beyond_four_percent_of_the_frame() -> None:
    """The size factor used to saturate at 4 % of the frame: every car big enough for its plate scored alike."""
    image = frame_image(0, [centred(300)])
    small, large = centred(150), centred(300)  # 11 % and 44 % of the frame
    q_small = crop_quality(np.array(small), image[int(small[1]):int(small[3]), int(small[0]):int(small[2])], W, H)
    q_large = crop_quality(np.array(large), image[int(large[1]):int(large[3]), int(large[0]):int(large[2])], W, H)
    assert q_large > 1.5 * q_small


def test_first_crop_at_once_a_clearly_better_one_later_and_the_best_moment_at_the_track_end(tmp_path: Path) -> None:
    run = Run(growing_then_receding(), tmp_path).all()
    crops = sorted(run.crops, key=lambda c: c.sequence)
    (summary,) = run.summaries
    gain = run.config.detect.crop_quality_gain
    assert len(crops) == run.config.detect.max_crops_per_track == 3
    assert crops[0].sequence == 1  # the frame the track was confirmed (min_hits 2)
    assert crops[1].quality >= gain * crops[0].quality
    # the last slot went to the peak (frame 14, the largest view), not to the first frame past the gain
    assert crops[2].sequence == 14 and crops[2].quality >= gain * crops[1].quality
    assert side(crops[2]) == pytest.approx(200 * 1.5**0.5, rel=0.02)
    assert summary.best_crop_key == crops[2].crop_key and run.store.exists(crops[2].crop_key)
    assert summary.closed_reason == "lost"


def test_without_holding_the_slots_go_first_come(tmp_path: Path) -> None:
    run = Run(growing_then_receding(), tmp_path, {"detect.hold_best_crop": False}).all()
    crops = sorted(run.crops, key=lambda c: c.sequence)
    assert len(crops) == 3 and crops[2].sequence < 14  # spent before the object was at its largest


def test_a_static_object_gets_one_crop(tmp_path: Path) -> None:
    script: list[list[Row]] = [[("car", centred(150), 0.8)] for _ in range(30)] + [[] for _ in range(13)]
    run = Run(script, tmp_path).all()
    assert len(run.crops) == 1 and len(run.summaries) == 1


def test_held_crop_survives_a_hand_over_through_the_snapshot(tmp_path: Path) -> None:
    """A worker stops after the peak was held but before the track ended; the next one (same group, same store)
    announces exactly the crop an uninterrupted run announces, bytes included."""
    script = growing_then_receding()
    whole = Run(script, tmp_path / "whole").all()
    split = Run(script, tmp_path / "split", {"detect.max_batch": 1})
    first = split.worker()
    first.setup()
    try:
        while first.frames_done < 18:
            first.step()
        assert any(r.held is not None for r in first.states["cam"].tracks.values()), "peak not held yet"
        first.checkpoint()
    finally:
        first.teardown()
    run_until(split.worker(close_on_stop=True), len(script) - 18)

    def announced(run: Run) -> dict[str, tuple[int, bytes]]:
        return {c.object_id: (c.sequence, run.store.get(c.crop_key)) for c in run.crops}

    assert announced(split) == announced(whole)
    assert max(seq for seq, _ in announced(split).values()) == 14


def test_one_box_one_track_and_a_stable_class_for_a_flickering_vehicle(tmp_path: Path) -> None:
    """Each frame boxes the vehicle as car and as truck (IoU ≈ 0.96), the stronger of the two alternating, truck
    more often: one box per frame in detections.v1, one track, and after the first frames one class (the vote)."""
    script: list[list[Row]] = []
    for k in range(20):
        box = centred(120, cx=150 + 12 * k)
        car, truck = (0.7, 0.6) if k % 3 == 0 else (0.55, 0.65)
        script.append([("car", box, car), ("truck", (box[0] + 3, box[1], box[2] + 3, box[3]), truck)])
    script += [[] for _ in range(13)]
    run = Run(script, tmp_path).all()
    boxes = [o for d in run.detections for o in d.objects]
    assert len(boxes) == 20 and {o.track_id for o in boxes[1:]} == {boxes[1].track_id}
    assert {o.class_name for o in boxes[3:]} == {"truck"}
    (summary,) = run.summaries
    assert summary.class_name == "truck"

    off = Run(script, tmp_path / "off", {"detect.suppress_iou": None}).all()
    assert len({o.track_id for d in off.detections for o in d.objects if o.track_id}) == 2


@pytest.mark.parametrize("script", [growing_then_receding(), [[("car", centred(150), 0.8)] for _ in range(30)] + [[]] * 13,
                                    [[("person", centred(90 + 3 * (k % 5)), 0.8)] for k in range(30)] + [[]] * 13],
                         ids=["growing", "static", "wobbling"])
def test_moments_that_cannot_win_skip_the_sharpness_and_nothing_else_changes(
        script: list[list[Row]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker measures a moment's sharpness only when even a perfectly sharp crop there could beat what the track
    has (``crop_quality_ceiling``): the same crops (bytes), summaries and detections as measuring every moment."""
    import workers.detect.worker as worker_module

    measured = [0]
    real = worker_module.crop_quality

    def counted(*args: object) -> float:
        measured[0] += 1
        return real(*args)  # type: ignore[arg-type]

    def outputs(run: Run) -> tuple[object, ...]:
        crops = sorted(run.crops, key=lambda c: c.sequence)
        return (crops, [run.store.get(c.crop_key) for c in crops], run.summaries, run.detections)

    monkeypatch.setattr(worker_module, "crop_quality", counted)
    with monkeypatch.context() as m:
        m.setattr(worker_module, "crop_quality_ceiling", lambda *a: float("inf"))  # every moment measured
        every = Run(script, tmp_path / "every").all()
    measured_every, measured[0] = measured[0], 0
    skipping = Run(script, tmp_path / "skipping").all()
    assert outputs(skipping) == outputs(every)
    assert measured[0] < measured_every
