"""Device alarms (2016 9.4, A.2.5.? ``<Notify><CmdType>Alarm</CmdType>``) as Tubeline alerts.

A device reports an alarm in a MESSAGE (or a NOTIFY of an alarm subscription); the platform answers 200,
sends the alarm response (``<Response><CmdType>Alarm</CmdType>…<Result>OK</Result>``, 9.4.2) and puts a
``device_alarm`` :class:`~schemas.alerts.Alert` on the alert topic: camera = the alarm's DeviceID (the channel
that raised it), time = AlarmTime (device local time, see :mod:`workers.ingest.gb28181.gbtime`; arrival time
when missing), severity from AlarmPriority (1 = most urgent), method and type in the details. The alert ID
is derived from device, channel, time, method, type and priority, so a retransmitted or repeated report of
the same alarm is the same alert.

Method and type names follow the 2016 text's tables as read (A.2.5 notes); unknown codes are kept as numbers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

from schemas.alerts import Alert
from schemas.ids import stable_id
from workers.ingest.gb28181 import gbtime, manscdp

METHODS = {"1": "telephone alarm", "2": "device alarm", "3": "SMS alarm", "4": "GPS alarm", "5": "video alarm",
           "6": "device fault", "7": "other alarm"}
TYPES = {
    "2": {"1": "video lost", "2": "device tamper", "3": "storage full", "4": "device over-temperature",
          "5": "device under-temperature"},
    "5": {"1": "manual video alarm", "2": "motion detection", "3": "left object", "4": "object removed",
          "5": "tripwire", "6": "intrusion", "7": "wrong direction", "8": "loitering", "9": "flow count",
          "10": "density", "11": "video abnormal", "12": "fast movement"},
    "6": {"1": "storage disk fault", "2": "storage fan fault"},
}
SEVERITY = {"1": "critical", "2": "high", "3": "medium", "4": "low"}
_CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def alarm_alert(doc: manscdp.Document, *, device_id: str, tz: tzinfo, received: datetime | None = None) -> Alert:
    """The Tubeline alert for one alarm notification (raises ``ValueError`` for one that names no camera)."""
    f = doc.fields
    info = {child.tag: (child.text or "").strip() for node in doc.element.findall("info") for child in node
            if len(child) == 0}
    channel = doc.device_id if _CAMERA_ID.match(doc.device_id or "") else device_id
    method = f.get("alarmmethod", "")[:8]
    kind = (info.get("alarmtype") or f.get("alarmtype", ""))[:8]
    priority = f.get("alarmpriority", "")[:4]
    when = gbtime.parse(f.get("alarmtime", ""), tz) or received or datetime.now(UTC)
    method_name = METHODS.get(method, f"method {method or '?'}")
    type_name = TYPES.get(method, {}).get(kind, f"type {kind}" if kind else "")
    what = f"{method_name}: {type_name}" if type_name else method_name
    description = f.get("alarmdescription", "")[:200]
    message = f"Device alarm on {channel}: {what}" + (f" ({description})" if description else "")
    details: dict[str, str | int | float | bool | None] = {
        "device_id": device_id, "alarm_method": method, "alarm_method_name": method_name, "alarm_type": kind,
        "alarm_type_name": type_name, "alarm_priority": priority, "description": description, "sn": doc.sn[:20],
    }
    for key in ("longitude", "latitude"):
        try:
            details[key] = float(f.get(key, ""))
        except ValueError:
            pass
    return Alert(
        alert_id=stable_id("device_alarm", device_id, channel, when.isoformat(), method, kind, priority),
        alert_type="device_alarm", camera_id=channel, occurred_at=when, severity=SEVERITY.get(priority, "medium"),
        rule_id=f"gb28181-alarm-{method or 'x'}", message=message[:500], details=details,
    )


def alarm_response(doc: manscdp.Document) -> bytes:
    """The platform's answer to an alarm notification (9.4.2)."""
    return manscdp.document("Response", "Alarm", doc.sn, doc.device_id, [("Result", "OK")])
