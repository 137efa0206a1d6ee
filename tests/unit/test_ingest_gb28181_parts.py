"""Unit tests of the GB/T 28181 pieces added for issue 16: PTZ codes, device control documents, alarms as alerts,
GB local times, the digest client, download offers, catalog change notifications, the cascade's scope and the
runner's retry-now."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.config.ingest import BackoffConfig, CameraSpec, Gb28181Config, SuperiorConfig
from workers.ingest.gb28181 import control, gbtime, manscdp
from workers.ingest.gb28181.alarms import alarm_alert, alarm_response
from workers.ingest.gb28181.cascade import SuperiorLink
from workers.ingest.gb28181.digest import DigestAuth, authorization
from workers.ingest.gb28181.sdp import build_offer

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("code", "expected"), [
    (control.stop(), "A50F0100000000B5"),                     # the stop code devices and wvp use
    (control.move(-1, 0, 0, 0x80), "A50F010280000037"),       # left at 128
    (control.move(1, 1, 0, 0x20), "A50F0109202000FE"),        # right + up at 32
    (control.move(0, 0, 1, 0xF0), "A50F01100000F0B5"),        # zoom in (tele), zoom speed 15
    (control.move(0, -1, -1, 0x10), "A50F0124001010F9"),      # down + zoom out
    (control.preset(control.PRESET_SET, 1), "A50F018100010037"),
    (control.preset(control.PRESET_CALL, 3), "A50F01820003003A"),
    (control.preset(control.PRESET_DELETE, 255), "A50F018300FF0037"),
])
def test_ptz_codes(code: bytes, expected: str) -> None:
    assert code.hex().upper() == expected
    assert len(code) == 8 and code[0] == 0xA5 and sum(code[:7]) % 256 == code[7]


def test_ptz_ranges_and_control_documents() -> None:
    with pytest.raises(ValueError):
        control.preset(control.PRESET_CALL, 0)
    with pytest.raises(ValueError):
        control.ptz_bytes(0x100)
    doc = manscdp.parse(control.ptz_control(7, "34020000001320000001", control.stop()))
    assert (doc.root, doc.cmd_type, doc.sn, doc.fields["ptzcmd"]) == ("control", "devicecontrol", "7",
                                                                        "A50F0100000000B5")
    home = manscdp.parse(control.home_position(8, "34020000001320000001", enabled=True, reset_s=30, preset_index=3))
    node = home.element.find("homeposition")
    assert node is not None and [node.findtext(t) for t in ("enabled", "resettime", "presetindex")] == ["1", "30", "3"]


ALARM = ("<Notify><CmdType>Alarm</CmdType><SN>9</SN><DeviceID>34020000001320000001</DeviceID>"
         "<AlarmPriority>{p}</AlarmPriority><AlarmMethod>{m}</AlarmMethod><AlarmTime>2024-05-01T08:00:05</AlarmTime>"
         "<Info><AlarmType>{t}</AlarmType></Info></Notify>")


@pytest.mark.parametrize(("priority", "method", "kind", "severity", "name"), [
    ("1", "5", "2", "critical", "video alarm: motion detection"),
    ("2", "2", "1", "high", "device alarm: video lost"),
    ("4", "6", "1", "low", "device fault: storage disk fault"),
    ("9", "9", "", "medium", "method 9"),
])
def test_alarm_alerts(priority: str, method: str, kind: str, severity: str, name: str) -> None:
    doc = manscdp.parse(ALARM.format(p=priority, m=method, t=kind).encode())
    alert = alarm_alert(doc, device_id="34020000001180000001", tz=SHANGHAI)
    assert (alert.alert_type, alert.camera_id, alert.severity) == ("device_alarm", "34020000001320000001", severity)
    assert alert.occurred_at == datetime(2024, 5, 1, 0, 0, 5, tzinfo=UTC)
    assert name in alert.message
    again = alarm_alert(doc, device_id="34020000001180000001", tz=SHANGHAI)
    assert again.alert_id == alert.alert_id  # a repeated report is the same alert
    response = manscdp.parse(alarm_response(doc))
    assert (response.root, response.cmd_type, response.sn, response.fields["result"]) == ("response", "alarm", "9", "OK")


def test_gb_times() -> None:
    assert gbtime.parse("2024-05-01T08:00:05", SHANGHAI) == datetime(2024, 5, 1, 0, 0, 5, tzinfo=UTC)
    assert gbtime.parse("2024-05-01 08:00:05.250", SHANGHAI) == datetime(2024, 5, 1, 0, 0, 5, tzinfo=UTC)
    assert gbtime.parse("2024-13-01T08:00:05", SHANGHAI) is None and gbtime.parse("yesterday", SHANGHAI) is None
    t = datetime(2024, 5, 1, 0, 0, 5, 250000, tzinfo=UTC)
    assert gbtime.format_time(t, SHANGHAI) == "2024-05-01T08:00:05"
    assert gbtime.date_header(t, SHANGHAI) == "2024-05-01T08:00:05.250"


@pytest.mark.parametrize("challenge_qop", [True, False])
def test_digest_client_answers_the_server(challenge_qop: bool) -> None:
    server = DigestAuth("4401000000")
    challenge = server.challenge() if challenge_qop else f'Digest realm="4401000000", nonce="{server.nonce()}"'
    header = authorization(challenge, method="REGISTER", uri="sip:44010000002000000001@4401000000",
                           username="34020000002000000001", password="up")
    assert ("qop=auth" in header) == challenge_qop
    assert server.verify(header, method="REGISTER", username="34020000002000000001", password="up").ok
    assert not server.verify(header, method="REGISTER", username="34020000002000000001", password="UP").ok
    with pytest.raises(ValueError):
        authorization('Digest realm="x", nonce="y", algorithm=SHA-256', method="REGISTER", uri="u", username="a",
                      password="b")


def test_download_offer() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    offer = build_offer(channel_id="34020000001320000001", media_host="127.0.0.1", media_port=30000,
                        ssrc="1200000001", mode="udp", playback=(start, start + timedelta(hours=1)),
                        download_speed=4).decode()
    assert "s=Download" in offer and "a=downloadspeed:4" in offer and f"t={int(start.timestamp())} " in offer
    with pytest.raises(ValueError):
        build_offer(channel_id="1", media_host="h", media_port=1, ssrc="1", mode="udp", download_speed=4)


def test_catalog_change_notification() -> None:
    body = (b"<Notify><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>34020000001180000001</DeviceID><SumNum>3</SumNum>"
            b"<DeviceList Num='3'><Item><DeviceID>34020000001320000003</DeviceID><Event>ADD</Event><Name>C</Name>"
            b"<Status>ON</Status></Item><Item><DeviceID>34020000001320000002</DeviceID><Event>del</Event></Item>"
            b"<Item><DeviceID>34020000001320000001</DeviceID><Name>A2</Name></Item></DeviceList></Notify>")
    changes = manscdp.catalog_changes(manscdp.parse(body))
    assert [(c.event, c.item.channel_id) for c in changes] == [
        ("ADD", "34020000001320000003"), ("DEL", "34020000001320000002"), ("UPDATE", "34020000001320000001")]


class _Sig:
    config = Gb28181Config()
    host, port, media_host = "127.0.0.1", 5060, "127.0.0.1"
    transport = None
    devices: dict = {}
    ports = None


def test_cascade_scope_by_ids_and_units() -> None:
    cams = [CameraSpec(id="34020000001320000101", kind="file", url="/x", admin_unit="340200"),
            CameraSpec(id="11010000001320000102", kind="file", url="/x", admin_unit="110100"),
            CameraSpec(id="lobby", kind="file", url="/x", admin_unit="340200")]
    cfg = SuperiorConfig(server_id="44010000002000000001", domain="4401000000", host="h", password="p",
                         admin_units=["3402"], camera_ids=["11010000001320000102"])
    link = SuperiorLink(_Sig(), cfg, cameras=lambda: cams, taps=lambda _c: None)  # type: ignore[arg-type]
    assert [c.id for c in link.shared()] == ["11010000001320000102", "34020000001320000101"]  # never 'lobby'


def test_runner_retry_now_ends_the_backoff_wait() -> None:
    from workers.ingest.camera import CameraRunner
    from workers.ingest.sources.base import SourceTimeout

    attempts: list[float] = []

    def factory(_stop: threading.Event):  # noqa: ANN202
        attempts.append(time.monotonic())
        msg = "device offline"
        raise SourceTimeout(msg)

    class _Publisher:
        def start(self) -> None: ...
        def close(self, timeout: float) -> None: ...

    class _Status:
        def event(self, *a: object, **k: object) -> None: ...

    runner = CameraRunner("c", factory, publisher=_Publisher(), status=_Status(),  # type: ignore[arg-type]
                          analysis_fps=1, backoff=BackoffConfig(initial_s=60, max_s=60))
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while len(attempts) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        runner.retry_now("device back")  # instead of waiting 30-60 s
        while len(attempts) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(attempts) >= 2 and attempts[1] - attempts[0] < 2.0
    finally:
        runner.stop(timeout=2)


def test_cascade_forwards_alarms_of_cameras_in_scope_only() -> None:
    cams = [CameraSpec(id="34020000001320000101", kind="file", url="/x", admin_unit="340200"),
            CameraSpec(id="11010000001320000102", kind="file", url="/x", admin_unit="110100")]
    cfg = SuperiorConfig(server_id="44010000002000000001", domain="4401000000", host="h", password="p",
                         admin_units=["3402"])
    link = SuperiorLink(_Sig(), cfg, cameras=lambda: cams, taps=lambda _c: None)  # type: ignore[arg-type]
    told: list[bytes] = []
    link._tell = told.append  # type: ignore[method-assign]  # noqa: SLF001 - capture instead of sending
    link.registered = True
    for camera in ("34020000001320000101", "11010000001320000102"):
        doc = manscdp.parse(ALARM.format(p="1", m="5", t="2").replace("34020000001320000001", camera).encode())
        link.forward_alarm(doc, camera)
    deadline = time.monotonic() + 5
    while not told and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(told) == 1  # the camera outside the superior's scope is not forwarded
    up = manscdp.parse(told[0])
    assert (up.root, up.cmd_type, up.device_id) == ("notify", "alarm", "34020000001320000101")
    assert (up.fields["alarmmethod"], up.fields["alarmpriority"], up.fields["alarmtime"]) == ("5", "1",
                                                                                            "2024-05-01T08:00:05")
    assert up.element.find("info") is not None and up.element.find("info").findtext("alarmtype") == "2"  # type: ignore[union-attr]
