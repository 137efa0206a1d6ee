"""Unit tests of the GB/T 28181 building blocks: SIP, digest, MANSCDP, SDP, RTP reordering, RFC 4571, PS."""

from __future__ import annotations

import random
import struct

import pytest

from workers.ingest.gb28181 import manscdp
from workers.ingest.gb28181.digest import DigestAuth, digest_response, parse_auth_params
from workers.ingest.gb28181.ps import AuAssembler, PsDemuxer, is_keyframe, sniff_codec
from workers.ingest.gb28181.psmux import pack_header, pes_packets, ps_pack, psm, rtp_packets, system_header
from workers.ingest.gb28181.rtp import (
    FrameAssembler,
    Reorderer,
    Rfc4571Framer,
    RtpError,
    build_rtp,
    parse_rtp,
)
from workers.ingest.gb28181.sdp import SdpError, build_offer, make_ssrc, parse_answer
from workers.ingest.gb28181.sip import (
    SipParseError,
    SipStreamParser,
    parse_message,
    parse_name_addr,
    response_to,
)

REGISTER = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.8:5060;rport;branch=z9hG4bK-1\r\n"
    b"f: <sip:34020000001180000001@3402000000>;tag=abc\r\n"
    b"To: <sip:34020000001180000001@3402000000>\r\n"
    b"i: 77@10.0.0.8\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:34020000001180000001@10.0.0.8:5060>\r\n"
    b"Subject: a,\r\n b\r\n"
    b"Expires: 3600\r\nContent-Length: 0\r\n\r\n"
)

H264_AU = b"\x00\x00\x00\x01\x67\x42\x00\x1e" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65" + bytes(range(256)) * 40
H265_AU = (b"\x00\x00\x00\x01\x40\x01\x0c" + b"\x00\x00\x00\x01\x42\x01\x01" + b"\x00\x00\x00\x01\x44\x01"
           + b"\x00\x00\x01\x26\x01" + bytes(range(200)) * 30)


# -- SIP --------------------------------------------------------------------------------------------------
def test_parse_register_with_compact_forms_and_folding() -> None:
    msg = parse_message(REGISTER)
    assert msg.method == "REGISTER" and msg.call_id == "77@10.0.0.8" and msg.cseq == (1, "REGISTER")
    assert msg.from_.uri.user == "34020000001180000001" and msg.from_.tag == "abc"
    assert msg.top_via.branch == "z9hG4bK-1" and msg.top_via.port == 5060
    assert msg.get("subject") == "a, b"
    resp = response_to(msg, 401, to_tag="t1", headers=[("WWW-Authenticate", "Digest x")])
    again = parse_message(resp.to_bytes())
    assert again.status == 401 and again.to.tag == "t1" and again.call_id == msg.call_id


@pytest.mark.parametrize("data", [
    b"", b"garbage", b"REGISTER sip:x SIP/2.0\r\n\r\n",  # missing headers
    REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: x REGISTER"),
    REGISTER.replace(b"Content-Length: 0", b"Content-Length: 50"),
    REGISTER.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1),
    b"SIP/2.0 99 Odd\r\n\r\n", b"X" * 70000,
])
def test_malformed_sip_is_rejected(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_stream_parser_frames_by_content_length() -> None:
    body = b"<xml/>"
    msg = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 6") + body
    parser = SipStreamParser()
    out = []
    data = b"\r\n\r\n" + msg + msg
    for i in range(0, len(data), 7):
        out += parser.feed(data[i:i + 7])
    assert out == [msg, msg]
    assert parse_message(out[0]).body == body


def test_name_addr_without_brackets() -> None:
    addr = parse_name_addr("sip:34020000001320000001@3402000000;tag=9")
    assert addr.uri.user == "34020000001320000001" and addr.tag == "9"


# -- digest -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("qop", [True, False])
def test_digest_accepts_right_password_and_refuses_wrong(qop: bool) -> None:
    auth = DigestAuth("3402000000")
    params = parse_auth_params(auth.challenge())
    user, uri = "34020000001180000001", "sip:127.0.0.1:5060"  # SIPp puts the remote address here
    extra = {"qop": "auth", "nc": "00000001", "cnonce": "c0ffee"} if qop else {}
    response = digest_response(username=user, realm=params["realm"], password="pw", method="REGISTER", uri=uri,
                               nonce=params["nonce"], **extra)
    header = (f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
              f'response="{response}", algorithm=MD5' + (', qop=auth, nc=00000001, cnonce="c0ffee"' if qop else ""))
    assert auth.verify(header, method="REGISTER", username=user, password="pw").ok
    wrong = auth.verify(header, method="REGISTER", username=user, password="PW")
    assert not wrong.ok and not wrong.stale and "wrong password" in wrong.problem
    assert not auth.verify(header, method="REGISTER", username="34020000001180000002", password="pw").ok
    forged = header.replace(params["nonce"], "123:abc")
    assert auth.verify(forged, method="REGISTER", username=user, password="pw").stale


# -- MANSCDP ----------------------------------------------------------------------------------------------
def test_catalog_page_gb18030_case_insensitive_and_tree_nodes() -> None:
    body = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Response><cmdType>Catalog</cmdType><SN>7</SN>'
        "<DeviceID>34020000001180000001</DeviceID><SumNum>3</SumNum><DeviceList Num='3'>"
        "<Item><DeviceID>34020000001320000001</DeviceID><Name>东门</Name><Status>ON</Status>"
        "<Longitude>117.2</Longitude><Latitude>31.8</Latitude><CivilCode>340200</CivilCode></Item>"
        "<Item><DeviceID>34020000002150000001</DeviceID><Name>group</Name></Item>"
        "<Item><DeviceID>34020000001310000002</DeviceID><Parental>1</Parental></Item>"
        "</DeviceList></Response>"
    ).encode("gb18030")
    page = manscdp.catalog_page(manscdp.parse(body))
    assert (page.sn, page.sum_num, len(page.items)) == ("7", 3, 3)
    assert page.items[0].name == "东门" and page.items[0].latitude == 31.8 and page.items[0].is_camera
    assert [i.is_camera for i in page.items] == [True, False, False]


@pytest.mark.parametrize("body", [b"<Notify>", b"<Notify><SN>1</SN></Notify>", b"\xff\xfe",
                                  b'<!DOCTYPE x [<!ENTITY a "b">]><Query><CmdType>x</CmdType></Query>'])
def test_bad_manscdp(body: bytes) -> None:
    with pytest.raises(manscdp.ManscdpError):
        manscdp.parse(body)


# -- SDP --------------------------------------------------------------------------------------------------
def test_offer_and_answer() -> None:
    ssrc = make_ssrc(False, "3402000000", 12)
    assert ssrc == "0200000012"  # 0 (live) + domain digits 4-8 + counter
    offer = build_offer(channel_id="34020000001320000001", media_host="127.0.0.1", media_port=30000, ssrc=ssrc,
                        mode="tcp_passive").decode()
    assert "m=video 30000 TCP/RTP/AVP 96 97 98 99" in offer and "a=setup:passive" in offer and "y=0200000012" in offer
    answer = parse_answer(b"v=0\r\nc=IN IP4 10.1.1.1\r\nm=video 6000 tcp 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\n"
                          b"a=setup:active\r\ny=0100009999\r\n")
    assert (answer.host, answer.port, answer.transport, answer.setup, answer.ssrc) == ("10.1.1.1", 6000, "tcp",
                                                                                       "active", 100009999)
    with pytest.raises(SdpError):
        parse_answer(b"v=0\r\nm=video 6000 RTP/AVP 96\r\n")
    with pytest.raises(SdpError):
        parse_answer(b"c=IN IP4 1.1.1.1\r\nm=video 1 RTP/AVP 96\r\ny=99999999999\r\n")


# -- RTP --------------------------------------------------------------------------------------------------
def rtp(seq: int, ts: int = 0, marker: bool = False, ssrc: int = 7, payload: bytes = b"x") -> bytes:
    return build_rtp(seq=seq, timestamp=ts, ssrc=ssrc, payload=payload, marker=marker)


def test_parse_rtp_with_csrc_extension_and_padding() -> None:
    data = bytearray(struct.pack("!BBHII", 0xB1, 0x60, 5, 9, 77)) + b"\x00\x00\x00\x01"  # CC=1, X, P
    data += b"\xbe\xde\x00\x01" + b"\x00" * 4 + b"PAY" + b"\x00\x00\x03"
    packet = parse_rtp(bytes(data))
    assert (packet.seq, packet.timestamp, packet.ssrc, packet.payload) == (5, 9, 77, b"PAY")
    for bad in (b"\x80" * 5, b"\x40" + b"\x00" * 20):
        with pytest.raises(RtpError):
            parse_rtp(bad)


def test_reorderer_restores_order_counts_reorder_loss_duplicates_and_wraps() -> None:
    r = Reorderer(window=4)
    seqs = [65533, 65535, 65534, 0, 0, 2, 1, 3, 5, 6, 7, 8, 9]  # 4 is lost
    out = []
    for s in seqs:
        out += [(p.seq, gap) for p, gap in r.push(parse_rtp(rtp(s)), now=0.0)]
    out += [(p.seq, gap) for p, gap in r.flush(now=10.0)]
    assert [s for s, _ in out] == [65533, 65534, 65535, 0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [s for s, gap in out if gap] == [5]
    assert (r.stats.reordered, r.stats.lost, r.stats.late) == (2, 1, 1)  # the second 0 came after 0 was released


def test_frame_assembler_drops_frames_with_holes() -> None:
    fa = FrameAssembler()
    frames = []
    frames += fa.push(parse_rtp(rtp(1, 100, payload=b"a")), False)
    frames += fa.push(parse_rtp(rtp(2, 100, True, payload=b"b")), False)
    frames += fa.push(parse_rtp(rtp(4, 200, True, payload=b"c")), True)  # 3 lost
    frames += fa.push(parse_rtp(rtp(5, 300, payload=b"d")), False)
    frames += fa.push(parse_rtp(rtp(6, 400, True, payload=b"e")), False)  # ts change ends frame 300
    assert [(f.timestamp, f.payload, f.damaged) for f in frames] == [
        (100, b"ab", False), (200, b"c", True), (300, b"d", False), (400, b"e", False)]


def test_rfc4571_framer_splits_skips_garbage_and_accepts_interleaved() -> None:
    a, b = rtp(1), rtp(2, payload=b"yy")
    stream = struct.pack("!H", len(a)) + a + b"\x01\x02" + b"$\x00" + struct.pack("!H", len(b)) + b
    framer = Rfc4571Framer()
    out = []
    for byte in stream:
        out += framer.feed(bytes([byte]))
    assert out == [a, b] and framer.garbage_bytes >= 1


# -- PS ---------------------------------------------------------------------------------------------------
def demux_all(data: bytes, chunk: int) -> tuple[list, PsDemuxer]:
    d, a, aus = PsDemuxer(), AuAssembler(), []
    for i in range(0, len(data), chunk):
        for pes in d.feed(data[i:i + chunk]):
            aus += a.push(pes, d.stream_types)
    for pes in d.flush():
        aus += a.push(pes, d.stream_types)
    return aus + a.flush(d.stream_types), d


@pytest.mark.parametrize(("au", "codec", "stream_type"), [(H264_AU, "h264", 0x1B), (H265_AU, "hevc", 0x24)])
@pytest.mark.parametrize("length0", [False, True])
@pytest.mark.parametrize("chunk", [1, 1400, 1 << 20])
def test_ps_round_trip(au: bytes, codec: str, stream_type: int, length0: bool, chunk: int) -> None:
    stream = b"".join(ps_pack(au, 3600 * (i + 1), codec, i == 0, length0=length0) for i in range(3))
    stream = b"\xde\xad" + stream  # leading garbage
    aus, d = demux_all(stream, chunk)
    assert [x.pts for x in aus] == [3600, 7200, 10800]
    assert all(x.data == au for x in aus)
    assert d.stream_types == {0xE0: stream_type} and d.stats.packs == 3 and d.stats.psm == 1
    assert sniff_codec(aus[0].data) == codec and is_keyframe(aus[0].data, codec)


def test_ps_splits_long_access_units_and_handles_mpeg1_packs() -> None:
    au = H264_AU * 10  # > 64 KiB: several PES, continuations without PTS
    assert len(pes_packets(au, 90000)) >= 2
    aus, _ = demux_all(ps_pack(au, 90000, "h264", True) + pack_header(93600), 5000)
    assert len(aus) == 1 and aus[0].data == au
    mpeg1_pack = b"\x00\x00\x01\xba" + bytes([0x21, 0, 1, 0, 1, 0x80, 0, 1])
    mpeg1_pes = b"\x00\x00\x01\xe2" + struct.pack("!H", 5 + len(H264_AU)) + bytes([0x21, 0, 1, 0, 1]) + H264_AU
    aus, d = demux_all(mpeg1_pack + system_header() + mpeg1_pes, 999)
    assert len(aus) == 1 and aus[0].data == H264_AU and aus[0].pts == 0 and d.stats.errors == 0


def test_ps_survives_garbage() -> None:
    rng = random.Random(3)
    noise = bytes(rng.randrange(256) for _ in range(20000))
    good = ps_pack(H264_AU, 3600, "h264", True)
    aus, d = demux_all(noise + good + noise[:100] + psm(0x1B), 777)
    assert any(x.data == H264_AU for x in aus)
    assert d.stats.skipped_bytes > 10000


def test_rtp_packetisation_of_a_pack() -> None:
    pack = ps_pack(H264_AU, 3600, "h264", True)
    packets = [parse_rtp(p) for p in rtp_packets(pack, seq=65535, timestamp=3600, ssrc=5)]
    assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True]
    assert {p.timestamp for p in packets} == {3600} and packets[1].seq == 0
    assert b"".join(p.payload for p in packets) == pack and max(len(p.payload) for p in packets) <= 1400


def test_sip_sockets_share_one_port_and_a_busy_tcp_port_is_refused() -> None:
    import socket

    from workers.ingest.gb28181.transport import _bind_pair

    udp, tcp = _bind_pair("127.0.0.1", 0)
    try:
        assert udp.getsockname()[1] == tcp.getsockname()[1] > 0
    finally:
        udp.close()
        tcp.close()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        with pytest.raises(OSError):  # a configured port busy for TCP is an error, never silently another port
            _bind_pair("127.0.0.1", holder.getsockname()[1])
