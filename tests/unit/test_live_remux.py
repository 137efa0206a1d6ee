"""Live remuxing: packets of MP4 (length-prefixed, avcC/hvcC) and MPEG-TS (Annex-B) sources become fragmented MP4
that decodes cleanly, with the source's own parameter sets; codec strings for MSE; the JPEG fallback; the hub."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest

from pipeline.live.hub import LiveHub, LivePacket, StreamParams
from pipeline.live.remux import Fmp4Muxer, JpegTranscoder, boxes, config_to_annexb, snapshot

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def clip(tmp: Path, name: str, args: list[str]) -> Path:
    out = tmp / name
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25:duration=2", *args, str(out)], check=True)
    return out


def packets(path: Path, codec: str) -> list[LivePacket]:
    with av.open(str(path)) as src:
        st = src.streams.video[0]
        params = StreamParams("cam", "s1", codec, st.codec_context.width, st.codec_context.height, 25.0,
                              bytes(st.codec_context.extradata or b""))
        out = []
        for p in src.demux(st):
            if p.size:
                t = float(p.pts * st.time_base)
                out.append(LivePacket(params, bytes(p), t, float(p.dts * st.time_base), bool(p.is_keyframe),
                                      T0 + timedelta(seconds=t)))
        return out


@pytest.mark.parametrize(("name", "args", "codec", "prefix"), [
    ("a.mp4", ["-c:v", "libx264", "-g", "25", "-bf", "0"], "h264", "avc1.64"),
    ("a.ts", ["-c:v", "libx264", "-g", "25", "-bf", "0", "-f", "mpegts"], "h264", "avc1.64"),
    ("a.mkv", ["-c:v", "libx264", "-profile:v", "baseline", "-g", "25"], "h264", "avc1.42"),
    ("b.mp4", ["-c:v", "libx265", "-x265-params", "log-level=none", "-g", "25", "-bf", "0"], "hevc", "hvc1.1."),
])
def test_fmp4_decodes_cleanly_with_the_source_parameter_sets(tmp_path: Path, name: str, args: list[str], codec: str,
                                                             prefix: str) -> None:
    pkts = packets(clip(tmp_path, name, args), codec)
    mux = Fmp4Muxer(pkts[0].params)
    frags = [f for p in pkts for f in mux.push(p)]
    mux.close()
    assert frags[0].kind == "init" and mux.codec_string and mux.codec_string.startswith(prefix)
    assert [f.kind for f in frags[1:]] == ["media"] * (len(frags) - 1) and len(frags) - 1 == len(pkts) - 1
    assert [f.captured_at for f in frags[1:]] == [p.captured_at for p in pkts[:-1]]
    out = tmp_path / "live.mp4"
    out.write_bytes(b"".join(f.data for f in frags))
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == "", run.stderr[:500]
    with av.open(str(out)) as f:
        assert sum(1 for _ in f.decode(video=0)) == len(pkts) - 1
    assert [k for k, _ in boxes(frags[1].data)[0]] == ["moof", "mdat"]


def test_avcc_record_to_annexb() -> None:
    record = bytes.fromhex("0164001effe1000467640028") + bytes.fromhex("010004") + b"\x68\xee\x3c\x80"
    annexb, size = config_to_annexb("h264", record)
    assert size == 4 and annexb == b"\x00\x00\x00\x01\x67\x64\x00\x28\x00\x00\x00\x01\x68\xee\x3c\x80"
    assert config_to_annexb("h264", b"\x00\x00\x00\x01\x67") == (b"\x00\x00\x00\x01\x67", 0)


def test_jpeg_fallback_and_snapshots_from_the_hub(tmp_path: Path) -> None:
    pkts = packets(clip(tmp_path, "m.avi", ["-c:v", "msmpeg4", "-g", "10"]), "msmpeg4")
    coder = JpegTranscoder(pkts[0].params, max_fps=5)
    jpegs = [j for p in pkts for _, j in coder.push(p)]
    assert 9 <= len(jpegs) <= 11 and all(j[:2] == b"\xff\xd8" for j in jpegs)  # 2 s at 5 per second
    hub = LiveHub()
    sub = hub.subscribe("cam")
    for p in pkts:
        hub.publish(p)
    assert len(sub.take()) == len(pkts) and hub.state("cam").live
    at = pkts[15].captured_at
    gop = hub.gop_at("cam", at)
    assert gop[0].keyframe and gop[-1].captured_at == at
    shot = snapshot(gop)
    assert shot is not None and shot[0].captured_at == at
    late = hub.subscribe("cam")  # a new viewer starts at the last keyframe
    assert late.take()[0].keyframe


def test_live_packets_round_trip_through_the_bus(tmp_path: Path) -> None:
    from pipeline.bus.memory import MemoryBus
    from pipeline.live.topic import LiveTopicFollower, TopicLiveSink
    from schemas.topics import LIVE

    pkts = packets(clip(tmp_path, "a.mp4", ["-c:v", "libx264", "-g", "10", "-bf", "0"]), "h264")
    bus = MemoryBus()
    with bus.producer() as producer:
        sink = TopicLiveSink(producer)
        for p in pkts[3:]:  # starts mid-GOP: the follower waits for the keyframe
            sink.publish(p)
    hub = LiveHub()
    follower = LiveTopicFollower(bus, hub)
    sub = hub.subscribe("cam")
    with bus.consumer([LIVE.name], "g") as consumer:
        for message in consumer.poll(timeout=1, max_records=1000):
            follower.handle(message)
    got = sub.take()
    assert got[0].keyframe and got[0].params.extradata == pkts[0].params.extradata
    assert [p.data for p in got] == [p.data for p in pkts[10:]]
    assert [p.captured_at for p in got] == [p.captured_at for p in pkts[10:]]


def test_annexb_stream_without_extradata_takes_parameter_sets_from_the_keyframe(tmp_path: Path) -> None:
    """GB/T 28181 sources (and RTSP without sprop-parameter-sets) hand over Annex-B packets and no extradata."""
    import dataclasses

    pkts = packets(clip(tmp_path, "g.ts", ["-c:v", "libx264", "-g", "25", "-bf", "0", "-f", "mpegts"]), "h264")
    bare = dataclasses.replace(pkts[0].params, extradata=b"")
    mux = Fmp4Muxer(bare)
    frags = [f for p in pkts for f in mux.push(dataclasses.replace(p, params=bare))]
    out = tmp_path / "gb.mp4"
    out.write_bytes(b"".join(f.data for f in frags))
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == "" and mux.codec_string and mux.codec_string.startswith("avc1.")
