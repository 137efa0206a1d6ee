"""Fuzz tests of the GB/T 28181 body parsers: MANSCDP XML (Keepalive, Catalog pages) and SDP answers.

``manscdp.parse``/``catalog_page`` return a document or raise :class:`ManscdpError`; ``parse_answer`` returns
an :class:`Answer` whose port and SSRC are in range or raises :class:`SdpError`. Entities and DTDs are refused
(no entity expansion), and an oversized body is refused before it is decoded.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import mutated
from workers.ingest.gb28181 import manscdp
from workers.ingest.gb28181.sdp import SdpError, parse_answer

CATALOG = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<Response><CmdType>Catalog</CmdType><SN>7</SN>'
    "<DeviceID>34020000001180000001</DeviceID><SumNum>3</SumNum><DeviceList Num='3'>"
    "<Item><DeviceID>34020000001320000001</DeviceID><Name>东门</Name><Status>ON</Status>"
    "<Longitude>117.2</Longitude><Latitude>31.8</Latitude><CivilCode>340200</CivilCode><Parental>0</Parental></Item>"
    "<Item><DeviceID>34020000002150000001</DeviceID><Name>group</Name></Item>"
    "</DeviceList></Response>"
).encode("gb18030")
MANSCDP_CORPUS = [
    CATALOG,
    b'<?xml version="1.0" encoding="UTF-8"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN>'
    b"<DeviceID>34020000001180000001</DeviceID><Status>OK</Status><Info><DeviceID>1</DeviceID></Info></Notify>",
    b"<Notify><cmdtype>MediaStatus</cmdtype><SN>2</SN><DeviceID>1</DeviceID><NotifyType>121</NotifyType></Notify>",
    b"<Notify><CmdType>Alarm</CmdType><SN>3</SN><DeviceID>34020000001320000001</DeviceID><AlarmPriority>1</AlarmPriority>"
    b"<AlarmMethod>5</AlarmMethod><AlarmTime>2024-05-01T08:00:00</AlarmTime><Info><AlarmType>2</AlarmType></Info></Notify>",
    b"<Response><CmdType>RecordInfo</CmdType><SN>4</SN><DeviceID>1</DeviceID><SumNum>1</SumNum><RecordList Num='1'>"
    b"<Item><DeviceID>1</DeviceID><StartTime>2024-05-01T08:00:00</StartTime><EndTime>2024-05-01T09:00:00</EndTime>"
    b"<Type>time</Type></Item></RecordList></Response>",
]
SDP_CORPUS = [
    b"v=0\r\no=34020000001320000001 0 0 IN IP4 10.1.1.1\r\ns=EmbeddedNetDVR\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n"
    b"m=video 6000 RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\ny=0100009999\r\nf=\r\n",
    b"v=0\nc=IN IP4 10.1.1.1\nm=audio 7000 RTP/AVP 8\nm=video 6000/2 TCP/RTP/AVP 96 98\nc=IN IP4 10.2.2.2\n"
    b"a=setup:passive\na=connection:new\na=rtpmap:98 H264/90000\ny=0200000001\na=filesize:1234\n",
    b"v=0\r\nc=IN IP4 10.1.1.1\r\nm=video 6000 tcp 96\r\na=setup:active\r\n",
]


@given(mutated(MANSCDP_CORPUS))
def test_manscdp_parse_raises_only_its_error(body: bytes) -> None:
    try:
        doc = manscdp.parse(body)
    except manscdp.ManscdpError:
        return
    assert doc.cmd_type == doc.cmd_type.lower() and doc.root == doc.root.lower()
    if doc.cmd_type == "catalog" and doc.root == "response":
        try:
            page = manscdp.catalog_page(doc)
        except manscdp.ManscdpError:
            return
        assert page.sum_num >= 0
        for item in page.items:
            assert item.latitude is None or -90 <= item.latitude <= 90
            assert item.longitude is None or -180 <= item.longitude <= 180


@given(st.binary(max_size=3000))
def test_manscdp_random_bytes(body: bytes) -> None:
    try:
        manscdp.parse(body)
    except manscdp.ManscdpError:
        pass


@given(st.sampled_from(["UTF-8", "GB2312", "gbk", "GB18030", "latin-1", "utf-16", "nonsense", "ascii"]),
       st.text(max_size=60))
def test_manscdp_any_declared_encoding_and_text(encoding: str, name: str) -> None:
    body = (f'<?xml version="1.0" encoding="{encoding}"?><Notify><CmdType>Keepalive</CmdType>'
            f"<Name>{name}</Name></Notify>").encode("utf-8", "surrogatepass")
    try:
        doc = manscdp.parse(body)
    except manscdp.ManscdpError:
        return
    assert doc.cmd_type == "keepalive"


def test_entities_are_refused_and_size_is_checked_first() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<Query><CmdType>&b;</CmdType></Query>")
    for body in (bomb, bomb.replace(b"DOCTYPE", b"doctype")):
        with pytest.raises(manscdp.ManscdpError, match="DTD"):
            manscdp.parse(body)
    huge = b"<Notify><CmdType>Keepalive</CmdType><X>" + "中".encode("gb18030") * (1 << 20) + b"</X></Notify>"
    started = time.monotonic()
    with pytest.raises(manscdp.ManscdpError, match="too large"):
        manscdp.parse(huge)
    assert time.monotonic() - started < 0.5


@given(mutated(SDP_CORPUS))
def test_sdp_answer_raises_only_sdp_error(body: bytes) -> None:
    try:
        answer = parse_answer(body)
    except SdpError:
        return
    assert 0 <= answer.port <= 65535 and answer.transport in ("udp", "tcp")
    assert answer.ssrc is None or 0 <= answer.ssrc <= 0xFFFFFFFF
    assert all(0 <= pt <= 127 for pt in answer.payload_types)


@given(st.binary(max_size=1500))
def test_sdp_random_bytes(body: bytes) -> None:
    try:
        parse_answer(body)
    except SdpError:
        pass
