"""Configuration of the case library: case records, evidence packages and their signing key, retention and
legal hold, case linking and time-boxed elevated access.

The section is ``cases`` in the configuration tree (``TUBELINE_CASES__TIMEZONE=Asia/Shanghai``). Retention is
in days per kind of data (``cases.retention``) with per-unit overrides (``cases.retention_units``: the first
entry whose unit covers a camera's unit wins, so list the most specific first). Anything saved in an open case
is on legal hold whatever its age.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section

RetentionKind = Literal["faces", "crops", "plates", "tracks", "alerts", "recordings", "synopses", "exports", "audit"]
RETENTION_KINDS: tuple[RetentionKind, ...] = ("faces", "crops", "plates", "tracks", "alerts", "recordings",
                                              "synopses", "exports", "audit")


def _days(default: int, what: str) -> int:
    return Field(default, title=f"{what} (days)", description=f"Days {what.lower()} are kept (0: kept forever).",
                 ge=0, le=36_500)


class RetentionDays(Section):
    """Days each kind of data is kept; faces (crops and vectors) the shortest, the audit log the longest."""

    faces: int = _days(30, "Faces and face vectors")
    crops: int = _days(60, "Object crops")
    plates: int = _days(180, "Plate reads and plate crops")
    tracks: int = _days(180, "Tracks")
    alerts: int = _days(365, "Alerts")
    recordings: int = _days(90, "Recordings")
    synopses: int = _days(90, "Synopses")
    exports: int = _days(365, "Exports and evidence packages")
    audit: int = _days(3650, "Audit entries")

    @model_validator(mode="after")
    def _faces_shortest_audit_longest(self) -> RetentionDays:
        kept = {k: getattr(self, k) or 10**9 for k in RETENTION_KINDS}
        if any(kept["faces"] > v for v in kept.values()):
            msg = "faces must be kept no longer than any other kind (they are the most sensitive)"
            raise ValueError(msg)
        if any(kept["audit"] < v for v in kept.values()):
            msg = "the audit log must be kept at least as long as every other kind"
            raise ValueError(msg)
        return self


class UnitRetention(Section):
    """Retention for the cameras of one administrative unit (and its sub-units)."""

    unit: str = Field(title="Unit", description="GB/T 2260 code or unit path; covers its sub-units.",
                      pattern=r"^[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,7}$")
    days: RetentionDays = Field(default_factory=RetentionDays, title="Days", description="Days per kind.")


class CasesConfig(Section):
    """Case register, evidence packages, retention, case links, elevated access."""

    prefix: str = Field("cases", title="Case prefix", description="Object-store prefix of case records and items.",
                        pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    evidence_prefix: str = Field("evidence", title="Evidence prefix",
                                 description="Object-store prefix of built evidence packages.",
                                 pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    evidence_key_file: Path = Field(
        Path("var/secrets/evidence.key"), title="Evidence signing key file",
        description="Ed25519 keys that sign evidence manifests: lines '<key id> <base64 32-byte seed>', current "
        "first (mode 0600).")
    create_key_file: bool = Field(True, title="Create key file",
                                  description="Generate the signing key file on first use when it is missing.")
    timezone: str = Field("Asia/Shanghai", title="Local time zone",
                          description="IANA zone of local times in evidence manifests and reports.",
                          min_length=1, max_length=64)
    package_max_items: int = Field(200, title="Items per package", description="Most items one package may hold.",
                                   ge=1, le=10_000)
    package_max_bytes: int = Field(2 * 1024**3, title="Package size", description="Largest evidence package in bytes.",
                                   ge=1024**2, le=1024**4)
    retention: RetentionDays = Field(default_factory=RetentionDays, title="Retention",
                                     description="Days each kind of data is kept (default for every unit).")
    retention_units: list[UnitRetention] = Field(
        default_factory=list, title="Retention per unit", max_length=1000,
        description="Overrides by administrative unit; the first whose unit covers a camera's unit wins.")
    retention_batch: int = Field(500, title="Deletion batch", description="Objects deleted per audited batch.",
                                 ge=1, le=100_000)
    retention_interval_s: float = Field(3600.0, title="Sweep interval",
                                        description="Seconds between sweeps of the retention worker.",
                                        ge=10.0, le=7 * 86400.0)
    link_face_threshold: float | None = Field(
        None, title="Face link threshold",
        description="Cosine similarity at which two cases' faces suggest a link (default: the model's calibrated "
        "threshold).", ge=-1.0, le=1.0)
    link_lookalikes: bool = Field(True, title="Look-alike plates",
                                  description="Suggest links for plates that differ only by look-alike characters.")
    elevation_max_hours: float = Field(72.0, title="Longest elevation",
                                       description="Longest time-boxed elevated access an admin may approve.",
                                       gt=0.0, le=720.0)

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)"
            raise ValueError(msg) from None
        return value
