"""``tubeline alerts tail``: the line format, the filter, and the command's refusal of the in-memory bus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from pipeline.alerts import TailFilter, format_line, tail_group
from pipeline.bus import Message
from schemas.alerts import Alert
from workers.cli import main

START = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)


def alert(camera: str = "cam-01", kind: str = "zone_intrusion", at: datetime = START,
          track: str | None = "cam-01:s1:7") -> Alert:
    return Alert(alert_id="0c8d7f4e2a1b5c6d9e0f1a2b3c4d5e6f", alert_type=kind, camera_id=camera, occurred_at=at,
                 severity="high", rule_id="yard", track_id=track, message="person entered zone 'Yard'")


def record(produced: datetime | None) -> Message:
    ms = 0 if produced is None else int(produced.timestamp() * 1000)
    return Message("tubeline.alerts.v1", 0, 0, b"cam-01", b"", (), ms)


def test_format_line_has_time_severity_type_camera_track_message() -> None:
    line = format_line(alert(at=START + timedelta(milliseconds=250)))
    assert line.split() == ["2024-05-01T08:00:00.250Z", "HIGH", "zone_intrusion", "cam-01", "cam-01:s1:7",
                            "person", "entered", "zone", "'Yard'"]
    assert format_line(alert(kind="crowding", track=None)).split()[4] == "-"


@pytest.mark.parametrize(
    ("case", "where", "item", "produced", "wanted"),
    [
        ("no filter", TailFilter(), alert(), None, True),
        ("camera matches", TailFilter(cameras={"cam-01", "cam-02"}), alert(), None, True),
        ("camera differs", TailFilter(cameras={"cam-02"}), alert(), None, False),
        ("type matches", TailFilter(types={"zone_intrusion"}), alert(), None, True),
        ("type differs", TailFilter(types={"crowding", "loitering"}), alert(), None, False),
        ("dated after start", TailFilter(since=START), alert(at=START + timedelta(seconds=1)), None, True),
        ("dated and produced before start", TailFilter(since=START), alert(at=START - timedelta(seconds=5)),
         START - timedelta(seconds=4), False),
        ("dated before, produced after start", TailFilter(since=START), alert(at=START - timedelta(seconds=2)),
         START + timedelta(seconds=1), True),
        ("produced within the start's millisecond", TailFilter(since=START + timedelta(microseconds=400)),
         alert(at=START - timedelta(seconds=2)), START, True),
        ("no record time: event time decides", TailFilter(since=START), alert(at=START - timedelta(seconds=2)),
         None, False),
    ],
)
def test_filter(case: str, where: TailFilter, item: Alert, produced: datetime | None, wanted: bool) -> None:
    assert where.wants(item, record(produced)) is wanted, case


def test_each_tail_gets_its_own_group() -> None:
    assert tail_group() != tail_group()
    assert tail_group().startswith("tubeline-alerts-tail-")


def test_tail_refuses_the_in_memory_bus() -> None:
    result = CliRunner().invoke(main, ["alerts", "tail"], env={"TUBELINE_BUS__BACKEND": "memory",
                                                               "TUBELINE_CONFIG": ""})
    assert result.exit_code == 2
    assert "in-memory bus" in result.output


def test_tail_help_explains_the_bus_and_from_now() -> None:
    result = CliRunner().invoke(main, ["alerts", "tail", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for phrase in ("--camera ID", "--type", "--from-beginning", "--json", "in-memory bus", "sees nothing",
                   "Ctrl-C"):
        assert phrase in text, phrase


def test_unknown_alert_type_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["alerts", "tail", "--type", "fire"])
    assert result.exit_code == 2 and "fire" in result.output
