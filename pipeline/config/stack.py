"""Configuration of the local real stack: Tansu (Kafka protocol) and SeaweedFS (S3 API) on loopback."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from pipeline.config.base import Section


class StackConfig(Section):
    state_dir: Path = Field(
        Path("var/stack"),
        title="State folder",
        description="Holds PID files, logs, generated credentials and the S3 server's data.",
    )
    bind_host: str = Field(
        "127.0.0.1",
        title="Bind address",
        description="Address both servers listen on. Loopback unless you mean to expose them.",
        max_length=255,
    )
    kafka_port: int = Field(19092, title="Kafka port", description="Broker listener port.", ge=1024, le=65535)
    s3_port: int = Field(19333, title="S3 port", description="S3 API port.", ge=1024, le=55535)
    seaweed_base_port: int = Field(
        19400,
        title="SeaweedFS internal ports",
        description="First of four ports for SeaweedFS's master, volume, filer and admin servers; each also uses port+10000 for gRPC.",
        ge=1024,
        le=55532,
    )
    kafka_bucket: str = Field(
        "tubeline-kafka",
        title="Broker bucket",
        description="S3 bucket the broker keeps topics and offsets in (the s3 storage engine: survives restarts).",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    )
    start_timeout_s: float = Field(
        60.0, title="Start timeout", description="Seconds to wait for each server to become healthy.", gt=0, le=600
    )

    @model_validator(mode="after")
    def _ports_distinct(self) -> StackConfig:
        seaweed = {self.seaweed_base_port + i for i in range(4)}
        used = seaweed | {p + 10000 for p in seaweed} | {self.s3_port, self.s3_port + 10000}
        if self.kafka_port in used or self.s3_port in seaweed:
            msg = "kafka_port, s3_port and the four SeaweedFS ports (and each +10000) must not overlap"
            raise ValueError(msg)
        return self
