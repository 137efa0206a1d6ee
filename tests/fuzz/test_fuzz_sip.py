"""Fuzz tests of the SIP parser (messages, URIs, name-addr, Via, TCP framing) and of digest authentication.

Every parser either returns its result or raises its own documented error (:class:`SipParseError`); the
digest verifier never raises at all (it answers with a :class:`Verdict`). Size limits hold before any
decoding, and a valid message survives a serialise → parse round trip unchanged.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import chunked, mutated
from workers.ingest.gb28181.digest import DigestAuth, digest_response, parse_auth_params
from workers.ingest.gb28181.sip import (
    MAX_MESSAGE,
    SipMessage,
    SipParseError,
    SipStreamParser,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)

DEVICE = "34020000001180000001"
CORPUS = [
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.8:5060;rport;branch=z9hG4bK-1\r\n"
    b"From: <sip:34020000001180000001@3402000000>;tag=abc\r\nTo: <sip:34020000001180000001@3402000000>\r\n"
    b"Call-ID: 77@10.0.0.8\r\nCSeq: 1 REGISTER\r\nContact: <sip:34020000001180000001@10.0.0.8:5060>\r\n"
    b'Authorization: Digest username="34020000001180000001", realm="3402000000", nonce="1:ab", '
    b'uri="sip:127.0.0.1:5060", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="x"\r\n'
    b"Expires: 3600\r\nX-GB-Ver: 2.0\r\nContent-Length: 0\r\n\r\n",
    b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\nv: SIP/2.0/TCP 10.0.0.8:5060;branch=z9hG4bK-2\r\n"
    b"f: <sip:34020000001180000001@3402000000>;tag=k\r\nt: <sip:34020000002000000001@3402000000>\r\n"
    b"i: 78@10.0.0.8\r\nCSeq: 20 MESSAGE\r\nc: Application/MANSCDP+xml\r\nl: 45\r\n\r\n"
    b"<Notify><CmdType>Keepalive</CmdType></Notify>",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-3;received=1.2.3.4\r\n"
    b"From: \"Dev\" <sip:34020000001320000001@3402000000>;tag=1\r\nTo: sip:34020000002000000001@3402000000;tag=2\r\n"
    b"Call-ID: 79\r\nCSeq: 3 INVITE\r\nContact: <sip:34020000001320000001@127.0.0.1:6000>\r\n"
    b"Subject: 34020000001320000001:0200000001,\r\n 34020000002000000001:0\r\nContent-Length: 3\r\n\r\nv=0",
    b"BYE sip:34020000001320000001@127.0.0.1:6000 SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-4\nFrom: <sip:a@b>;tag=1\n"
    b"To: <sip:c@d>;tag=2\nCall-ID: 80\nCSeq: 4 BYE\n\n",
]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120)


def _check_message(msg: SipMessage) -> None:
    """Every accessor of a parsed message returns or raises SipParseError, never anything else."""
    assert msg.is_request == (msg.method is not None)
    assert msg.call_id and msg.cseq[0] >= 0
    for accessor in (lambda: msg.from_, lambda: msg.to, lambda: msg.top_via):
        try:
            accessor()
        except SipParseError:
            pass
    msg.summary()


@given(mutated(CORPUS))
def test_parse_message_raises_only_sip_parse_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    _check_message(msg)
    again = parse_message(msg.to_bytes())  # what we parsed, we can serialise and parse again
    assert (again.method, again.uri, again.status, again.body) == (msg.method, msg.uri, msg.status, msg.body)


@given(st.binary(max_size=2000))
def test_parse_message_random_bytes(data: bytes) -> None:
    try:
        _check_message(parse_message(data))
    except SipParseError:
        pass


@given(TEXT)
def test_uri_name_addr_and_via_parsers(text: str) -> None:
    for parser in (parse_uri, parse_name_addr, parse_via):
        try:
            parsed = parser(text)
        except SipParseError:
            continue
        port = getattr(parsed, "port", None) or getattr(getattr(parsed, "uri", None), "port", None)
        assert port is None or 0 <= port <= 65535, parsed


_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=20)
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)


@given(st.sampled_from(["REGISTER", "MESSAGE", "INVITE", "BYE", "ACK", "NOTIFY", "SUBSCRIBE", "INFO"]),
       st.lists(st.tuples(_TOKEN.filter(lambda t: t.lower() not in ("content-length", "l")), _VALUE), max_size=10),
       st.binary(max_size=500), st.integers(0, 2**31 - 1))
def test_valid_messages_round_trip(method: str, headers: list[tuple[str, str]], body: bytes, cseq: int) -> None:
    msg = SipMessage(method=method, uri=f"sip:{DEVICE}@127.0.0.1:5060")
    for name, value in [("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-x"), ("From", "<sip:a@b>;tag=1"),
                        ("To", "<sip:c@d>"), ("Call-ID", "1@h"), ("CSeq", f"{cseq} {method}"), *headers]:
        msg.add(name, value)
    msg.body = body
    again = parse_message(msg.to_bytes())
    assert again.method == method and again.body == body and again.cseq == (cseq, method)
    assert [(k, v) for k, v in again.headers if k.lower() != "content-length"] == msg.headers


@given(st.lists(st.sampled_from(CORPUS[:3]), min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=12))
def test_stream_parser_reassembles_any_chunking(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"\r\n".join(messages)
    parser = SipStreamParser()
    out: list[bytes] = []
    for chunk in chunked(stream, cuts):
        out += parser.feed(chunk)
    assert out == messages


@given(mutated(CORPUS), st.lists(st.integers(0, 10_000), max_size=8))
def test_stream_parser_on_garbage_stays_bounded(data: bytes, cuts: list[int]) -> None:
    parser = SipStreamParser()
    for chunk in chunked(data * 3, cuts):
        try:
            for message in parser.feed(chunk):
                assert len(message) <= MAX_MESSAGE
        except SipParseError:
            return
        assert len(parser._buf) <= MAX_MESSAGE  # noqa: SLF001 - the bound is the property


def test_size_limit_is_checked_before_decoding() -> None:
    huge = b"MESSAGE sip:a@b SIP/2.0\r\n" + b"X-A: " + "中".encode() * 40_000 + b"\r\n\r\n"
    started = time.monotonic()
    for _ in range(100):
        try:
            parse_message(huge)
        except SipParseError as exc:
            assert "exceeds" in str(exc)
    assert time.monotonic() - started < 1.0  # refused by length, never decoded
    parser = SipStreamParser()
    with pytest.raises(SipParseError, match="too large"):
        parser.feed(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 999999999\r\n\r\n")
    assert not parser._buf  # noqa: SLF001


# -- digest -------------------------------------------------------------------------------------------------
AUTH = DigestAuth("3402000000", secret=b"k" * 32)


_DIGEST_KEYS = st.sampled_from(["username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce", "algorithm",
                                 "opaque", "USERNAME", "x"])
_DIGEST_VALUES = st.one_of(TEXT, st.just(DEVICE), st.builds(lambda: AUTH.nonce()),
                           st.text("0123456789abcdef:", max_size=40), st.text("²٣１0123456789:", max_size=12))
STRUCTURED_DIGEST = st.lists(st.tuples(_DIGEST_KEYS, _DIGEST_VALUES, st.booleans()), max_size=10).map(
    lambda kv: "Digest " + ", ".join(f'{k}="{v}"' if q else f"{k}={v}" for k, v, q in kv))


@given(st.one_of(TEXT, STRUCTURED_DIGEST, mutated([c.split(b"Authorization: ")[1].split(b"\r\n")[0] for c in CORPUS[:1]]).map(
    lambda b: b.decode("utf-8", "replace"))))
def test_digest_parse_and_verify_never_raise(header: str) -> None:
    params = parse_auth_params(header)
    assert all(k == k.lower() for k in params)
    verdict = AUTH.verify(header, method="REGISTER", username=DEVICE, password="pw")
    assert not verdict.ok  # nothing random is a valid response for this nonce secret


@given(TEXT, TEXT, st.text("0123456789abcdef", min_size=8, max_size=8), st.booleans())
def test_digest_accepts_exactly_the_right_password(password: str, uri: str, cnonce: str, qop: bool) -> None:
    nonce = AUTH.nonce()
    extra = {"qop": "auth", "nc": "00000001", "cnonce": cnonce} if qop else {}
    uri = uri.replace('"', "").replace("\\", "")
    response = digest_response(username=DEVICE, realm="3402000000", password=password, method="REGISTER", uri=uri,
                               nonce=nonce, **extra)
    header = (f'Digest username="{DEVICE}", realm="3402000000", nonce="{nonce}", uri="{uri}", response="{response}"'
              + (f', qop=auth, nc=00000001, cnonce="{cnonce}"' if qop else ""))
    assert AUTH.verify(header, method="REGISTER", username=DEVICE, password=password).ok
    assert not AUTH.verify(header, method="REGISTER", username=DEVICE, password=password + "x").ok


@given(st.one_of(st.builds(lambda: AUTH.nonce()), _DIGEST_VALUES), _DIGEST_VALUES, _DIGEST_VALUES, _DIGEST_VALUES)
def test_digest_verify_with_every_field_present(nonce: str, response: str, uri: str, qop: str) -> None:
    header = (f'Digest username="{DEVICE}", realm="3402000000", nonce="{nonce}", uri="{uri}", response="{response}", '
              f"qop={qop}, nc=00000001, cnonce=abc")
    assert not AUTH.verify(header, method="REGISTER", username=DEVICE, password="pw").ok
