"""Times as GB/T 28181 writes them: local time without a zone, ``YYYY-MM-DDTHH:MM:SS`` (MANSCDP) and with
milliseconds in the ``Date`` header (devices set their clocks from it, 9.10).

Tubeline works in UTC; the zone that devices' local times are in is ``gb28181.time_zone`` (an IANA name), or
this machine's zone when unset — the same zone the ``Date`` header is written in, so a device that took its
clock from us reports times we read back correctly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

_TIME = re.compile(r"^\s*([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,6})?\s*$")


def zone(name: str | None) -> tzinfo:
    """The configured zone, or this machine's local zone."""
    if name:
        return ZoneInfo(name)
    local = datetime.now(UTC).astimezone().tzinfo
    assert local is not None
    return local


def parse(text: str, tz: tzinfo) -> datetime | None:
    """A GB local time as an aware UTC datetime; None if it is not one."""
    m = _TIME.match(text or "")
    if not m:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        local = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None
    return local.astimezone(UTC)


def format_time(when: datetime, tz: tzinfo) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in the devices' zone."""
    return when.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def date_header(now: datetime, tz: tzinfo) -> str:
    """The ``Date`` header value: local time with milliseconds, no zone (wvp's GbSipDate)."""
    local = now.astimezone(tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
