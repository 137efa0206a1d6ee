"""Configuration of the object store: a local folder (embedded default) or S3 (MinIO)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from pipeline.config.base import Section


class LocalStoreConfig(Section):
    root: Path = Field(
        Path("var/store"),
        title="Root folder",
        description="Folder that holds the objects (relative paths are relative to the working directory).",
    )


class S3Config(Section):
    endpoint: str = Field(
        "127.0.0.1:19333",
        title="Endpoint",
        description="host:port of the S3 API (MinIO in production, the local stack's SeaweedFS by default).",
        min_length=3,
        max_length=500,
    )
    access_key: SecretStr | None = Field(None, title="Access key", description="S3 access key (secret).")
    secret_key: SecretStr | None = Field(None, title="Secret key", description="S3 secret key (secret).")
    bucket: str = Field(
        "tubeline",
        title="Bucket",
        description="Bucket holding all Tubeline objects; created on first use if missing.",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    )
    region: str = Field("us-east-1", title="Region", description="S3 region name.", max_length=64)
    secure: bool = Field(False, title="TLS", description="Use HTTPS to reach the endpoint.")
    create_bucket: bool = Field(True, title="Create bucket", description="Create the bucket if it does not exist.")
    read_timeout_s: float = Field(
        20.0,
        title="Read timeout (s)",
        description="Longest wait for the server's answer to one request (the body of a 10 MB part takes well under a "
        "second on a LAN). A server that accepts connections but does not answer — one still starting — fails the "
        "request after this long instead of holding a worker or the spool uploader (3 retries: up to 4× this).",
        ge=1,
        le=600,
    )

    @model_validator(mode="after")
    def _keys_together(self) -> S3Config:
        if (self.access_key is None) != (self.secret_key is None):
            msg = "access_key and secret_key must be given together"
            raise ValueError(msg)
        return self


class StoreConfig(Section):
    backend: Literal["local", "s3"] = Field(
        "local", title="Backend", description="'local' (folder, embedded default) or 's3' (MinIO/any S3 API)."
    )
    local: LocalStoreConfig = Field(default_factory=LocalStoreConfig, title="Local folder", description="Local backend.")
    s3: S3Config = Field(default_factory=S3Config, title="S3", description="S3 backend.")
