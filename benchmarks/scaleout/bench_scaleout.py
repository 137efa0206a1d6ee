"""Throughput of one worker kind with 1 and 2 processes in its consumer group, on the real broker and S3.

For each kind (detect, plate, face, index) and each process count, a fresh topic prefix gets the same input
(detect: frames of four cameras — the enrichment plates and faces videos, two cameras each; plate, face: the
objects that detect announced; index: the track summaries), then ``tubeline worker KIND`` processes start,
each under its own store identity, and the clock runs from the moment every process is set up until the
last input message is committed by the group. The 1-process row is the reference measured in the same run.

    .venv/bin/python benchmarks/scaleout/bench_scaleout.py              # a throw-away local stack (Tansu + SeaweedFS)
    .venv/bin/python benchmarks/scaleout/bench_scaleout.py --frames 100 --json out.json

Reported: messages handled, wall seconds, messages per second, CPU seconds of the worker processes (user +
system, from /proc), speed-up over one process. On a machine with fewer cores than processes the second
process can only share the same cores: the speed-up then shows the overhead, not a gain.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipeline.bus import open_bus  # noqa: E402
from pipeline.bus.base import TopicSpec  # noqa: E402
from pipeline.config import with_overrides  # noqa: E402
from pipeline.stack import LocalStack  # noqa: E402
from schemas.topics import OBJECTS, TRACKS  # noqa: E402

KINDS = ("detect", "plate", "face", "index")
INPUT = {"plate": OBJECTS, "face": OBJECTS, "index": TRACKS}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def committed(bus: Any, group: str, topic: str) -> int:
    """Messages the group has committed on ``topic`` (sum over partitions)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bus.config.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets(bus.external(group)).get(bus.external(group), {})
    finally:
        admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic == bus.external(topic) and o.offset > 0)


def start(stack: LocalStack, kind: str, prefix: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    config = stack.client_config(as_=kind)
    s3 = config.store.s3
    env = {**os.environ, "PYTHONPATH": str(REPO), "TUBELINE_BUS__BACKEND": "kafka", "TUBELINE_BUS__TOPIC_PREFIX": prefix,
           "TUBELINE_BUS__KAFKA__BOOTSTRAP_SERVERS": config.bus.kafka.bootstrap_servers,
           "TUBELINE_BUS__KAFKA__SESSION_TIMEOUT_MS": "6000", "TUBELINE_BUS__KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
           "TUBELINE_STORE__BACKEND": "s3", "TUBELINE_STORE__S3__ENDPOINT": s3.endpoint,
           "TUBELINE_STORE__S3__BUCKET": s3.bucket, "TUBELINE_STORE__S3__CREATE_BUCKET": "false",
           "TUBELINE_STORE__S3__ACCESS_KEY": s3.access_key.get_secret_value() if s3.access_key else "",
           "TUBELINE_STORE__S3__SECRET_KEY": s3.secret_key.get_secret_value() if s3.secret_key else "",
           "TUBELINE_RUNTIME__HEALTH_PORT": str(port), "TUBELINE_MODELS__INTRA_OP_THREADS": "1",
           "TUBELINE_INDEX__FLUSH_INTERVAL_S": "1", "TUBELINE_DETECT__COMMIT_INTERVAL_S": "1",
           "TUBELINE_SPOOL__DIR": str(log.parent / f"spool-{port}")}  # a spool folder is locked by its process
    return subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", kind], env=env, cwd=REPO,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def copy_topic(source: Any, target: Any, topic: TopicSpec, count: int) -> None:
    """The first ``count`` messages of ``topic`` under one prefix, produced again under another (same keys)."""
    target.ensure_topics([topic])
    moved = 0
    with source.consumer([topic.name], f"copy-{uuid.uuid4().hex[:8]}") as consumer, target.producer() as producer:
        deadline = time.monotonic() + 120
        while moved < count and time.monotonic() < deadline:
            for m in consumer.poll(timeout=2.0, max_records=500):
                producer.send(topic.name, m.value, key=m.key, headers=m.headers)
                moved += 1
        producer.flush()
    if moved < count:
        msg = f"copied only {moved} of {count} messages of {topic.name}"
        raise RuntimeError(msg)


def forget_state(stack: LocalStack) -> None:
    """Drop the tracking and plate-vote snapshots of the previous run: a worker that found them would skip the
    frames they cover (that is their purpose) and the second run would measure less work."""
    from pipeline.store import open_store

    store = open_store(stack.client_config())
    for prefix in ("state/detect/", "state/plate/"):
        for info in list(store.list(prefix)):
            store.delete(info.key)


def run(stack: LocalStack, kind: str, processes: int, prefix: str, prepare: Any, total: int, topic: str,
        logs: Path) -> dict[str, Any]:
    forget_state(stack)
    bus = open_bus(with_overrides(stack.client_config(), {"bus.topic_prefix": prefix}))
    ports = [19500 + processes * 10 + i for i in range(processes)]
    procs = [start(stack, kind, prefix, port, logs / f"{kind}-{processes}-{i}.log") for i, port in enumerate(ports)]
    try:
        deadline = time.monotonic() + 300
        while not all(ready(p) for p in ports):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                msg = f"{kind}: processes did not become ready (logs in {logs})"
                raise RuntimeError(msg)
            time.sleep(0.5)
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.monotonic()
        prepare(bus)
        group = f"tubeline-{kind}"
        while (done := committed(bus, group, topic)) < total:
            if time.monotonic() - t0 > 600:
                msg = f"{kind}: only {done} of {total} committed after 600 s"
                raise RuntimeError(msg)
            time.sleep(0.5)
        wall = time.monotonic() - t0
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        rss = max(peak_rss_mib(p.pid) for p in procs)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        bus.close()
    return {"kind": kind, "processes": processes, "messages": total, "wall_s": wall, "per_s": total / wall,
            "cpu_s": cpu, "peak_rss_mib": rss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=70, help="Frames per camera (4 cameras, 5 fps; at most 70).")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows to this file.")
    parser.add_argument("--table", type=Path, default=None, help="Only print the table of an earlier --json file.")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text(encoding="utf-8"))))
        return 0
    from datetime import UTC, datetime

    import tests.integration.test_scaleout as scaleout
    from tests.detect_helpers import sample_frames
    from tests.fixtures.enrich.make_videos import make_face_video, make_plate_video
    from tests.integration.test_scaleout import cameras, publish

    scaleout.FRAMES_PER_CAMERA = args.frames
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the stack and the workers on the way out
    work = Path(tempfile.mkdtemp(prefix="tubeline-bench-scaleout-"))
    from tests.conftest import start_private_stack

    stack = start_private_stack(work / "stack")
    rows: list[dict[str, Any]] = []
    try:
        make_plate_video(work / "plates.mp4")
        make_face_video(work / "faces.mp4")
        footage = {"plates": sample_frames(work / "plates.mp4", args.frames),
                   "faces": sample_frames(work / "faces.mp4", args.frames)}
        tag = uuid.uuid4().hex[:6]
        names = cameras(f"bench{tag}")
        start_at = datetime.now(UTC).replace(microsecond=0)
        first: dict[str, str] = {}
        outputs: dict[str, int] = {}
        for kind in args.kinds.split(","):
            for n in (1, 2):
                prefix = f"b{tag}{kind[:3]}{n}"
                if kind == "detect":
                    total, topic = 4 * args.frames, "tubeline.frames.v1"

                    def prepare(bus: Any) -> None:
                        publish(bus, names, footage, start_at)
                else:
                    spec = INPUT[kind]
                    source_bus = open_bus(with_overrides(stack.client_config(), {"bus.topic_prefix": first["detect"]}))
                    total, topic = outputs[spec.name], spec.name

                    def prepare(bus: Any, spec: Any = spec, source: Any = source_bus, total: int = total) -> None:
                        copy_topic(source, bus, TopicSpec(spec.name, spec.partitions, spec.retention_ms), total)
                rows.append(run(stack, kind, n, prefix, prepare, total, topic, work))
                first.setdefault(kind, prefix)
                print(json.dumps(rows[-1]), file=sys.stderr)
                if kind == "detect" and n == 1:
                    outputs.update(count_outputs(stack, prefix))
    finally:
        stack.down()
    load = os.getloadavg()
    print(table(rows))
    print(f"\n{os.cpu_count()} cores; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


def count_outputs(stack: LocalStack, prefix: str) -> dict[str, int]:
    """How many objects and track summaries the detect run produced (what plate, face and index then read)."""
    bus = open_bus(with_overrides(stack.client_config(), {"bus.topic_prefix": prefix}))
    counts = {}
    try:
        for spec in (OBJECTS, TRACKS):
            n = 0
            with bus.consumer([spec.name], f"count-{uuid.uuid4().hex[:8]}") as consumer:
                batch = consumer.poll(timeout=15.0, max_records=1000)
                while batch:
                    n += len(batch)
                    batch = consumer.poll(timeout=3.0, max_records=1000)
            counts[spec.name] = n
    finally:
        bus.close()
    return counts


def table(rows: list[dict[str, Any]]) -> str:
    ref = {r["kind"]: r["per_s"] for r in rows if r["processes"] == 1}
    lines = ["| kind | processes | input messages | wall s | messages/s | speed-up over 1 | CPU s | messages per CPU-s "
             "| peak RSS per process |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['processes']} | {r['messages']} | {r['wall_s']:.1f} | {r['per_s']:.1f} | "
                     f"{r['per_s'] / ref[r['kind']]:.2f}× | {r['cpu_s']:.1f} | {r['messages'] / r['cpu_s']:.1f} | "
                     f"{r['peak_rss_mib']:.0f} MiB |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
