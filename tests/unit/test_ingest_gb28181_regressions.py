"""Regression tests for the crashes the parser fuzz tests (tests/fuzz/) found, each with its minimal input.

Before the fixes each of these raised an exception other than the parser's own error type (ValueError from
``int('²')``, an empty Call-ID was accepted, TypeError from ``hmac.compare_digest`` on non-ASCII text, IndexError in the PS demuxer), accepted
an impossible port, or dropped ~32 000 RTP packets after a sender restarted its sequence numbers.
"""

from __future__ import annotations

import pytest

from workers.ingest.gb28181.digest import DigestAuth
from workers.ingest.gb28181.ps import PsDemuxer
from workers.ingest.gb28181.rtp import Reorderer, build_rtp, parse_rtp
from workers.ingest.gb28181.sdp import SdpError, parse_answer
from workers.ingest.gb28181.sip import SipParseError, SipStreamParser, parse_message, parse_uri, parse_via

HEAD = "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: 1\r\n"


@pytest.mark.parametrize("data", [
    HEAD + "CSeq: ² MESSAGE\r\n\r\n",                                  # str.isdigit('²') is True, int('²') fails
    HEAD + "CSeq: 1 MESSAGE\r\nContent-Length: ²\r\n\r\n",
    HEAD + "CSeq: 1_0 MESSAGE\r\n\r\n",                                 # int() accepts underscores
    HEAD + "CSeq: 99999999999 MESSAGE\r\n\r\n",                         # CSeq must stay below 2**31
    HEAD.replace("Call-ID: 1", "Call-ID: ") + "CSeq: 1 MESSAGE\r\n\r\n",  # empty Call-ID (found by the long run)
])
def test_non_ascii_or_odd_numbers_are_sip_parse_errors(data: str) -> None:
    with pytest.raises(SipParseError):
        parse_message(data.encode())


def test_stream_parser_content_length_with_thousands_of_digits() -> None:
    with pytest.raises(SipParseError):  # was ValueError: int() refuses more than 4300 digits
        SipStreamParser().feed(b"A sip:a SIP/2.0\r\nContent-Length: " + b"0" * 5000 + b"\r\n\r\n")


@pytest.mark.parametrize("parse", [lambda: parse_uri("sip:a@b:99999"), lambda: parse_via("SIP/2.0/UDP h:70000")])
def test_ports_above_65535_are_refused(parse) -> None:  # noqa: ANN001
    with pytest.raises(SipParseError):
        parse()


@pytest.mark.parametrize("field", ['response="é"', 'nonce="1:é"', 'nonce="²:x"'])
def test_digest_with_non_ascii_values_is_refused_not_raised(field: str) -> None:
    auth = DigestAuth("3402000000")
    values = {"username": '"34020000001180000001"', "nonce": f'"{auth.nonce()}"', "uri": '"sip:x"', "response": '"0"'}
    key, _, value = field.partition("=")
    values[key] = value
    header = "Digest " + ", ".join(f"{k}={v}" for k, v in values.items())
    verdict = auth.verify(header, method="REGISTER", username="34020000001180000001", password="pw")
    assert not verdict.ok


@pytest.mark.parametrize("line", ["m=video ²6000 RTP/AVP 96", "m=video 66000 RTP/AVP 96", "y=²"])
def test_sdp_bad_numbers_are_sdp_errors(line: str) -> None:
    body = "c=IN IP4 1.1.1.1\r\nm=video 6000 RTP/AVP 96\r\n" + line + "\r\n"
    with pytest.raises(SdpError):
        parse_answer(body.encode())


@pytest.mark.parametrize("tail", [b"\x21", b"\x31\x00\x00\x00\x00\x00"])
def test_ps_mpeg1_pts_cut_off_at_the_end_of_the_packet(tail: bytes) -> None:
    demux = PsDemuxer()  # was IndexError reading the 5-byte PTS past the end of the buffer
    out = demux.feed(b"\x00\x00\x01\xe0\x00" + bytes([len(tail)]) + tail) + demux.flush()
    assert out == [] and demux.stats.errors == 1


def test_rtp_sequence_restart_is_followed_within_a_few_packets() -> None:
    r = Reorderer()
    seqs = list(range(1000, 1100)) + list(range(50_000, 50_100))  # the sender restarted its numbering
    released = [p.seq for n, s in enumerate(seqs)
                for p, _ in r.push(parse_rtp(build_rtp(seq=s, timestamp=0, ssrc=1, payload=b"", marker=False)), n)]
    assert released[:100] == seqs[:100]
    assert released[100:] == seqs[100 + Reorderer.RESYNC_AFTER - 1:]  # was: all 100 dropped as "late"
    assert r.stats.resyncs == 1
