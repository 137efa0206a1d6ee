"""Configuration of the write spool: where a worker keeps object writes the store could not take yet.

Every worker process that writes to a remote store (S3) spools to ``{dir}/{worker}/``: a folder on local
disk, fsynced, scanned on start. Size it for the longest store outage to ride out: a camera recorded at
4 Mbit/s needs about 1.8 GB per hour of outage. See ``docs/reliability.md``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from pipeline.config.base import Section


class SpoolConfig(Section):
    enabled: bool = Field(
        True, title="Enabled",
        description="Spool writes a remote (S3) store cannot take to local disk and retry them; off: such a write "
        "fails the worker (its input is redelivered after a restart). A local-folder store never spools.",
    )
    dir: Path = Field(
        Path("var/spool"), title="Folder",
        description="Local folder of the spools; each worker uses {dir}/{worker}/. Must be on a local disk that "
        "survives a restart of the process (a volume in a container), never shared by two processes.",
    )
    max_mb: int = Field(
        2048, title="Size limit (MB)",
        description="Most data one worker's spool holds; when full, writes wait (the worker stalls, a live "
        "recorder drops to the next keyframe) and readiness reports 'spool full'.", ge=1, le=10_000_000,
    )
    max_entries: int = Field(
        200_000, title="Entry limit", description="Most pending writes one worker's spool holds.", ge=10, le=10_000_000,
    )
    retry_initial_s: float = Field(
        0.5, title="First retry", description="Delay before the first retry of a failed store write.", gt=0, le=60,
    )
    retry_max_s: float = Field(
        15.0, title="Retry cap", description="Longest delay between retries (capped exponential backoff, jitter).",
        gt=0, le=600,
    )
    fsync: bool = Field(
        True, title="fsync",
        description="fsync every spooled entry and its folder before the write counts as done. Only with fsync "
        "does a spooled write count as durable (offsets are committed after it); turn off only for tests.",
    )

    @model_validator(mode="after")
    def _cap_above_initial(self) -> SpoolConfig:
        if self.retry_max_s < self.retry_initial_s:
            msg = "spool.retry_max_s must be at least spool.retry_initial_s"
            raise ValueError(msg)
        return self
