"""Configuration of outbound notifications: signed webhooks that receive every matching alert.

The section is ``notify``. Each webhook gets the alert as JSON in a POST, signed with HMAC-SHA256 over
``"<timestamp>.<body>"`` with its own secret (headers ``X-Tubeline-Timestamp``, ``X-Tubeline-Signature:
sha256=<hex>``), retried with capped exponential backoff, and — after ``max_attempts`` — kept in a dead-letter
list in the object store (``notify/dead/``) for an admin to look at. See docs/live.md ("Outbound").
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator

from pipeline.config.base import Section
from schemas.alerts import Severity

WEBHOOK_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class WebhookSpec(Section):
    """One receiver of alerts."""

    id: str = Field(..., title="Webhook ID", description="Names the webhook in headers, logs and dead letters.",
                    pattern=WEBHOOK_ID_PATTERN)
    url: str = Field(..., title="URL", description="Where alerts are POSTed (http:// or https://).", max_length=2000)
    secret: SecretStr = Field(..., title="Signing secret",
                              description="HMAC-SHA256 key for the signature header (at least 16 characters).")
    types: list[Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]] = Field(
        default_factory=list, title="Alert types", description="Only these alert types; empty = all.", max_length=20)
    cameras: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] = Field(
        default_factory=list, title="Cameras", description="Only alerts of these cameras; empty = all.",
        max_length=10_000)
    min_severity: Severity = Field("info", title="Minimum severity", description="Alerts below it are not sent.")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            msg = "a webhook URL starts with http:// or https://"
            raise ValueError(msg)
        return value

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            msg = "a webhook secret needs at least 16 characters"
            raise ValueError(msg)
        return value


class NotifyConfig(Section):
    """Outbound notifications of alerts (delivered by the API process, one delivery per alert across replicas)."""

    webhooks: list[WebhookSpec] = Field(default_factory=list, title="Webhooks", description="Receivers of alerts.",
                                        max_length=100)
    max_attempts: int = Field(6, title="Attempts", description="Deliveries tried before an alert is dead-lettered.",
                              ge=1, le=100)
    backoff_initial_s: float = Field(1.0, title="First retry", description="Seconds before the first retry.",
                                     gt=0, le=3600)
    backoff_max_s: float = Field(60.0, title="Longest wait", description="Upper bound of the wait between retries.",
                                 gt=0, le=86_400)
    timeout_s: float = Field(5.0, title="Timeout", description="Seconds a webhook has to answer.", gt=0, le=120)
    dead_letter_prefix: str = Field("notify/dead", title="Dead letters", description="Store prefix of undelivered "
                                    "notifications.", min_length=1, max_length=200)
