"""Recordings on a GB/T 28181 device (SIPp) on the real broker and S3 server: RecordInfo with paging into the
"on device" spans, playback with seek, speed and pause over MANSRTSP INFO, and a download faster than real time
into the camera's ordinary recordings, from which a clip is cut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config.ingest import RecordingsConfig
from pipeline.device_recordings import device_spans_between
from pipeline.recordings import cut_clip, segments_between
from tests.integration.test_ingest_gb28181 import CHANNEL_A, DEVICE, PASSWORD, Running, gb_ingest, wait_for
from tests.peers.media import count_frames
from tests.peers.sipp import SippDevice
from workers.ingest.gb28181.records import download, refresh_device_spans
from workers.ingest.gb28181.source import GbSource
from workers.ingest.worker import IngestWorker

pytestmark = pytest.mark.integration

DAY_START = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai, where the device's times are




def test_record_info_playback_control_and_download(gb_stack, gb_clip: Path, tmp_path: Path) -> None:  # noqa: ANN001
    cfg, bus, store = gb_stack
    ingest = gb_ingest(auto_enable_channels=False, time_zone="Asia/Shanghai")
    with Running(IngestWorker(cfg, bus=bus, store=store, ingest_config=ingest)) as w:
        gb = w.gb
        assert gb is not None
        with SippDevice(platform_port=gb.port, device_id=DEVICE, password=PASSWORD, work_dir=tmp_path,
                        media_file=gb_clip, playback_ms=4000) as device:
            assert wait_for(lambda: DEVICE in gb.devices and gb.devices[DEVICE].catalogued, 15), device.log_tail()

            # RecordInfo: 3 recordings in 3 pages (one page sent twice), stored as the day's "on device" spans.
            spans = refresh_device_spans(gb.queries, store, "recordings", DEVICE, CHANNEL_A, DAY_START,
                                         DAY_START + timedelta(hours=4), tz=gb.tz)
            assert [(s.start, s.end, s.kind) for s in spans] == [
                (DAY_START, DAY_START + timedelta(minutes=30), "time"),
                (DAY_START + timedelta(minutes=30), DAY_START + timedelta(hours=1), "time"),
                (DAY_START + timedelta(hours=2), DAY_START + timedelta(hours=2, minutes=15), "alarm")]
            assert spans[0].size_bytes == 104857600
            stored = device_spans_between(store, "recordings", CHANNEL_A, DAY_START, DAY_START + timedelta(days=1))
            assert stored == spans

            # Playback with seek, speed and pause; capture times follow the recording's own time.
            source = GbSource(gb, CHANNEL_A, DEVICE, mode="udp", playback=(DAY_START, DAY_START + timedelta(hours=1)))
            with source:
                items = source.items()
                before = [next(items) for _ in range(10)]
                source.seek(100)
                after = [next(items) for _ in range(60)]
                source.resume(scale=2.0)
                source.pause()
                source.resume()
                rest = list(items)  # until the device ends the playback (BYE)
            assert max(i.captured_at for i in before) < DAY_START + timedelta(seconds=5)
            assert any(DAY_START + timedelta(seconds=100) <= i.captured_at < DAY_START + timedelta(seconds=105)
                       for i in after), [i.captured_at for i in after]
            assert rest, "frames kept coming after the controls"
            noted = [line for line in device.received() if line.startswith("info")]
            # (SIPp keeps a variable's last value when a later message lacks the header)
            assert [line.split()[1] for line in noted] == ["PLAY", "PLAY", "PAUSE", "PLAY"], noted
            assert noted[0] == "info PLAY range=100 scale=" and noted[1] == "info PLAY range=now scale=2", noted

            # Download at 4x into the camera's recordings; a clip is cut from them.
            result = download(gb, store, RecordingsConfig(segment_s=2), DEVICE, CHANNEL_A, DAY_START,
                              DAY_START + timedelta(seconds=4), speed=4, mode="udp", tmp_dir=tmp_path)
            assert "download-done" in device.received()
    assert result.packets >= 90 and result.media_s >= 3.5, result
    assert result.speed > 2.0, result  # faster than real time (the device was asked for 4x)
    segments = segments_between(store, CHANNEL_A, DAY_START, DAY_START + timedelta(minutes=1))
    assert segments and segments[0].start_dt < DAY_START + timedelta(seconds=1), segments
    clip_out = cut_clip(store, CHANNEL_A, DAY_START, DAY_START + timedelta(seconds=3), tmp_path / "device.mp4")
    assert count_frames(clip_out.path) == clip_out.packets >= 50
    print(f"download: {result.media_s:.1f} s of video in {result.transfer_s:.1f} s (x{result.speed:.1f}), "  # noqa: T201
          f"{result.wall_s:.1f} s with signalling")
