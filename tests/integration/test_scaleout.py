"""Many processes per worker kind in their consumer groups on the real broker and S3, with members killed and
added mid-run: the union of what they index equals a single-process run's — nothing lost, nothing twice.

Four cameras (two carrying the plate video, two the face video of tests/fixtures/enrich) publish frames to the
frames topic; ``tubeline worker`` processes consume them: detect ×3, plate ×2, face ×2, index ×2, each under
its own store identity. Mid-run one detect and one plate process are killed (SIGKILL: no drain, no commit),
one face process is stopped (SIGTERM: it drains and leaves its group), and a detect, a plate and an index
process join; one index process is killed after the first catalog segment. The catalog's track, plate and face
rows must equal those of the same frames run through one in-process worker of each kind (in-memory bus,
local store), and no idempotency key may carry two different rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import pytest

from pipeline.bus import Bus, open_bus
from pipeline.bus.base import TopicSpec, partition_for
from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig, with_overrides
from pipeline.store import ObjectStore, open_store
from pipeline.store.local import LocalStore
from schemas.frames import FrameHeader
from schemas.topics import FRAMES
from tests.detect_helpers import sample_frames
from tests.fixtures.enrich.make_videos import make_face_video, make_plate_video
from tests.integration.test_containers import normalised_tracks
from workers.detect.worker import DetectWorker
from workers.face.worker import FaceWorker
from workers.index.worker import IndexWorker
from workers.plate.worker import PlateWorker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
FRAMES_PER_CAMERA = 60  # 12 s at 5 fps
SESSION = "scaleout1"
SETTINGS = {"detect.commit_interval_s": 0.5, "detect.max_batch": 4, "index.flush_interval_s": 1.0,
            "index.compact_after_parts": 0}
ENV = {"TUBELINE_DETECT__COMMIT_INTERVAL_S": "0.5", "TUBELINE_DETECT__MAX_BATCH": "4",
       "TUBELINE_INDEX__FLUSH_INTERVAL_S": "1.0", "TUBELINE_INDEX__COMPACT_AFTER_PARTS": "0",
       "TUBELINE_BUS__KAFKA__SESSION_TIMEOUT_MS": "6000", "TUBELINE_BUS__KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
       "TUBELINE_RUNTIME__HEALTH_PORT": "0", "TUBELINE_MODELS__INTRA_OP_THREADS": "1"}


def cameras(prefix: str) -> list[str]:
    """Four camera IDs on four different partitions of the frames (and objects) topic, so that three detect
    members all get work."""
    chosen: list[str] = []
    used: set[int] = set()
    n = 0
    while len(chosen) < 4:
        name = f"{prefix}-c{n}"
        part = partition_for(name.encode(), FRAMES.partitions)
        if part not in used:
            chosen.append(name)
            used.add(part)
        n += 1
    return chosen


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    folder = tmp_path_factory.mktemp("scaleout")
    make_plate_video(folder / "plates.mp4")
    make_face_video(folder / "faces.mp4")
    return {"plates": sample_frames(folder / "plates.mp4", FRAMES_PER_CAMERA),
            "faces": sample_frames(folder / "faces.mp4", FRAMES_PER_CAMERA)}


def publish(bus: Bus, names: list[str], footage: dict[str, list[Any]], start: datetime) -> int:
    """Every camera's frames, interleaved as live cameras would send them; returns how many."""
    bus.ensure_topics([TopicSpec(FRAMES.name, FRAMES.partitions, FRAMES.retention_ms)])  # as detect makes it
    sources = [footage["plates"], footage["plates"], footage["faces"], footage["faces"]]
    count = 0
    with bus.producer() as producer:
        for seq in range(FRAMES_PER_CAMERA):
            for camera, frames in zip(names, sources, strict=True):
                ok, jpeg = cv2.imencode(".jpg", frames[seq], [cv2.IMWRITE_JPEG_QUALITY, 85])
                assert ok
                header = FrameHeader(camera_id=camera, session=SESSION, sequence=seq,
                                     captured_at=start + timedelta(seconds=seq / 5), pts=seq / 5,
                                     width=frames[seq].shape[1], height=frames[seq].shape[0], source_codec="h264",
                                     keyframe=seq == 0)
                producer.send(FRAMES.name, jpeg.tobytes(), key=camera, headers=header.to_headers())
                count += 1
        producer.flush()
    return count


def catalog(store: ObjectStore, names: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Raw catalog rows per kind and idempotency key (every copy), for these cameras."""
    from pipeline.catalog.format import read_table

    rows: dict[str, dict[str, list[dict[str, Any]]]] = {k: defaultdict(list) for k in ("tracks", "plates", "faces")}
    for kind in rows:
        for info in store.list(f"catalog/{kind}/"):
            if any(f"/camera={c}/" in info.key for c in names):
                for row in read_table(store.get(info.key)).to_pylist():
                    rows[kind][row["ikey"]].append(row)
    return rows


_BOOKKEEPING = ("ikey", "ingested_at", "src_partition", "src_offset")


def content(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple((k, repr(v)) for k, v in sorted(row.items()) if k not in _BOOKKEEPING)


def comparable(rows: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """What must match between runs: track rows (normalised as in test_containers), the final revision of each
    plate read, and face records (their identity, time, box and quality)."""
    latest_plates = [max(copies, key=lambda r: r["revision"]) for copies in rows["plates"].values()]
    return {
        "tracks": normalised_tracks([copies[0] for copies in rows["tracks"].values()]),
        "plates": sorted((r["read_id"], r["track_id"], r["text"], r["revision"], r["votes"]) for r in latest_plates),
        "faces": sorted((r["face_id"], r["track_id"], r["captured_at"], tuple(round(v) for v in r["box"]),
                         round(r["quality"], 3)) for r in (c[0] for c in rows["faces"].values())),
    }


def conflicts(rows: dict[str, dict[str, list[dict[str, Any]]]], keys: dict[str, str]) -> str:
    """The fields in which the copies of each conflicting idempotency key differ (every copy's value)."""
    out = []
    for kind, ikey in keys.items():
        copies = rows[kind][ikey]
        fields = sorted({k for r in copies for k in r if k not in _BOOKKEEPING and len({repr(c.get(k)) for c in copies}) > 1})
        out.append(f"{kind} {ikey}: " + "; ".join(f"{f} = {[c.get(f) for c in copies]}" for f in fields)
                   + f"; written at {[(c['ingested_at'], c['src_partition'], c['src_offset']) for c in copies]}")
    return "\n".join(out)


def difference(got: dict[str, Any], expected: dict[str, Any]) -> str:
    """Per kind, only the entries one run has and the other lacks (the whole lists run to pages)."""
    lines = []
    for kind in expected:
        extra = [repr(x) for x in got[kind] if x not in expected[kind]]
        missing = [repr(x) for x in expected[kind] if x not in got[kind]]
        if extra or missing or len(got[kind]) != len(expected[kind]):
            lines.append(f"{kind}: {len(got[kind])} rows vs {len(expected[kind])} expected; "
                         f"only in the scaled-out run {extra}; only in the reference {missing}")
    return "\n".join(lines) or "(same entries, different order)"


def _config(base: TubelineConfig) -> TubelineConfig:
    return with_overrides(base, SETTINGS)


def reference(names: list[str], footage: dict[str, list[Any]], start: datetime, tmp: Path) -> dict[str, Any]:
    """One in-process worker of each kind on the in-memory bus and a local store."""
    config = _config(TubelineConfig())
    bus, store = MemoryBus(), LocalStore(tmp / "reference")
    total = publish(bus, names, footage, start)
    stops = {name: threading.Event() for name in ("detect", "plate", "face", "index")}
    workers = {"detect": DetectWorker(config, bus=bus, store=store, stop_event=stops["detect"], close_on_stop=True),
               "plate": PlateWorker(config, bus=bus, store=store, stop_event=stops["plate"]),
               "face": FaceWorker(config, bus=bus, store=store, stop_event=stops["face"]),
               "index": IndexWorker(config, bus=bus, store=store, stop_event=stops["index"])}
    threads = {n: threading.Thread(target=w.run, kwargs={"install_signals": False}, daemon=True)
               for n, w in workers.items()}
    for thread in threads.values():
        thread.start()
    deadline = time.monotonic() + 300
    try:
        while workers["detect"].frames_done < total:
            assert time.monotonic() < deadline and workers["detect"].error is None, "reference detect stalled"
            time.sleep(0.2)
        for order in (("detect",), ("plate", "face"), ("index",)):  # each stage drained before the next stops
            for name in order:
                while name != "detect" and bus.lag(workers[name].group):
                    assert time.monotonic() < deadline, f"reference {name} stalled"
                    time.sleep(0.2)
                stops[name].set()
                threads[name].join(60)
    finally:
        for stop in stops.values():
            stop.set()
    assert all(w.error is None for w in workers.values())
    return comparable(catalog(store, names))


class Members:
    """``tubeline worker KIND`` processes, each under its kind's store identity."""

    def __init__(self, real_stack: Any, prefix: str, log_dir: Path) -> None:
        self.real_stack, self.prefix, self.log_dir = real_stack, prefix, log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, kind: str) -> subprocess.Popen[bytes]:
        config = _config(self.real_stack.as_service(kind, self.prefix))
        s3 = config.store.s3
        env = {**os.environ, **ENV, "PYTHONPATH": str(REPO),
               "TUBELINE_BUS__BACKEND": "kafka", "TUBELINE_BUS__TOPIC_PREFIX": self.prefix,
               "TUBELINE_BUS__KAFKA__BOOTSTRAP_SERVERS": config.bus.kafka.bootstrap_servers,
               "TUBELINE_STORE__BACKEND": "s3", "TUBELINE_STORE__S3__ENDPOINT": s3.endpoint,
               "TUBELINE_STORE__S3__BUCKET": s3.bucket,
               "TUBELINE_STORE__S3__ACCESS_KEY": s3.access_key.get_secret_value() if s3.access_key else "",
               "TUBELINE_STORE__S3__SECRET_KEY": s3.secret_key.get_secret_value() if s3.secret_key else "",
               "TUBELINE_STORE__S3__CREATE_BUCKET": "false",
               # a spool folder is locked by its process: one per member, as one volume per pod
               "TUBELINE_SPOOL__DIR": str(self.log_dir / f"spool-{len(self.procs)}")}
        log = (self.log_dir / f"{kind}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "--log-level", "INFO", "worker", kind], env=env, cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((kind, proc))
        return proc

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("*.log")))

    def stop_all(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_for(condition: Any, timeout: float, what: str, members: Members) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        crashed = [kind for kind, p in members.procs if p.poll() not in (None, 0, -signal.SIGKILL, -signal.SIGTERM)]
        assert not crashed, f"{crashed} exited with an error\n{members.logs()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{members.logs()}"
        time.sleep(0.5)


def test_consumer_groups_share_work_through_kills_and_joins_without_loss_or_duplicates(
    real_stack, unique_name: str, footage: dict[str, list[Any]], tmp_path: Path  # noqa: ANN001
) -> None:
    names = cameras(unique_name)
    start = datetime.now(UTC).replace(microsecond=0)
    expected = reference(names, footage, start, tmp_path)
    assert len(expected["tracks"]) >= 8 and expected["plates"] and expected["faces"], expected

    members = Members(real_stack, unique_name, tmp_path)
    admin = open_store(real_stack.config)
    bus = open_bus(real_stack.with_prefix(unique_name))
    started = time.monotonic()
    try:
        first = {kind: [members.start(kind) for _ in range(n)]
                 for kind, n in (("detect", 3), ("plate", 2), ("face", 2), ("index", 2))}
        total = publish(bus, names, footage, start)
        assert total == 4 * FRAMES_PER_CAMERA

        def snapshots() -> int:
            return sum(1 for c in names if admin.exists(f"state/detect/{c}.json"))

        _wait_for(lambda: snapshots() >= 2, 240, "detect members to checkpoint", members)
        first["detect"][0].send_signal(signal.SIGKILL)  # a crash: its cameras replay from their snapshots
        first["plate"][0].send_signal(signal.SIGKILL)
        first["face"][0].send_signal(signal.SIGTERM)  # a graceful leave: it drains and commits
        members.start("detect")
        members.start("plate")
        _wait_for(lambda: any(admin.list("catalog/tracks/")) and any(
            f"/camera={c}/" in i.key for i in admin.list("catalog/") for c in names), 240, "a first catalog segment",
            members)
        first["index"][0].send_signal(signal.SIGKILL)
        members.start("index")

        def done() -> bool:
            now = comparable(catalog(admin, names))
            return all(len(now[k]) >= len(expected[k]) for k in expected)

        _wait_for(done, 240, "the catalog to hold every track, plate and face", members)
        time.sleep(3)  # a late revision or duplicate would land now
        rows = catalog(admin, names)
    finally:
        members.stop_all()
        bus.close()
    elapsed = time.monotonic() - started

    conflicting = {k: ikey for k, by_key in rows.items() for ikey, copies in by_key.items()
                   if k != "plates" and len({content(r) for r in copies}) > 1}
    assert not conflicting, f"one idempotency key, different rows: {conflicts(rows, conflicting)}\n{members.logs()}"
    plate_revisions = {ikey: {content(r) for r in copies if r["revision"] == max(c["revision"] for c in copies)}
                       for ikey, copies in rows["plates"].items()}
    assert all(len(v) == 1 for v in plate_revisions.values()), "a plate revision carries two different reads"
    got = comparable(rows)
    assert got == expected, f"scaled-out run differs from the single-process run: {difference(got, expected)}\n" \
                            f"{members.logs()}"
    kinds = [k for k, _ in members.procs]
    assert (kinds.count("detect"), kinds.count("plate"), kinds.count("face"), kinds.count("index")) == (4, 3, 2, 3)
    sys.stderr.write(f"scale-out run: {total} frames, {sum(len(v) for v in expected.values())} rows, "
                     f"{len(members.procs)} processes, {elapsed:.0f} s\n")
