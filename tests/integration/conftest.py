"""Fixtures shared by the GB/T 28181 integration tests: an isolated topic prefix and bucket on the real stack,
and a short H.264 clip for the devices' media senders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.bus import open_bus
from pipeline.store import open_store
from tests.peers.media import make_video


@pytest.fixture
def gb_stack(real_stack, unique_name: str) -> Iterator[tuple]:  # noqa: ANN001
    """(config, bus, store) with a unique topic prefix and bucket."""
    cfg = real_stack.with_prefix(unique_name, bucket=unique_name)
    bus, store = open_bus(cfg), open_store(cfg)
    yield cfg, bus, store
    bus.close()


@pytest.fixture(scope="session")
def gb_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 640x360 H.264 at 25 fps, a keyframe every second, parameter sets on every keyframe."""
    return make_video(tmp_path_factory.mktemp("gbclip") / "h264.ts", seconds=4,
                      container_args=("-x264-params", "repeat-headers=1"))
