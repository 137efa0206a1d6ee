"""Configuration shared by every worker process: logging, health probes, queues, restarts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config.base import Section


class RuntimeConfig(Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", title="Log level", description="Root log level of worker processes."
    )
    health_host: str = Field(
        "127.0.0.1", title="Health address", description="Address of the health/readiness HTTP endpoint.", max_length=255
    )
    health_port: int = Field(
        0,
        title="Health port",
        description="Port of the health endpoint (GET /healthz, /readyz); 0 disables it.",
        ge=0,
        le=65535,
    )
    queue_size: int = Field(
        64, title="Queue size", description="Capacity of bounded in-process queues between stages.", ge=1, le=100_000
    )
    poll_timeout_s: float = Field(
        0.5, title="Poll timeout", description="Seconds a worker waits for messages before checking for stop.", gt=0, le=30
    )
    drain_timeout_s: float = Field(
        10.0, title="Drain timeout", description="Seconds allowed for a graceful drain on stop.", ge=0, le=600
    )
    restart_budget: int = Field(
        5,
        title="Restart budget",
        description="Crashes of a supervised worker tolerated within the restart window before giving up.",
        ge=0,
        le=1000,
    )
    restart_window_s: float = Field(
        300.0, title="Restart window", description="Window (seconds) in which the restart budget applies.", gt=0, le=86_400
    )
