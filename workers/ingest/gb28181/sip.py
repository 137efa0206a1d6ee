"""SIP messages (RFC 3261) as GB/T 28181 uses them: parse, build, serialise, and frame over TCP.

Deliberately small: start line, ordered headers with case-insensitive lookup and compact forms, a
body sized by Content-Length. Anything that does not parse raises :class:`SipParseError` with a
reason the platform can log and answer with ``400 Bad Request``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE = 65535
MAX_HEADERS = 128

COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
           "c": "content-type", "e": "content-encoding", "k": "supported", "s": "subject"}

_REQUEST_LINE = re.compile(r"^([A-Z]{2,16}) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2})(?: (.*))?$")
_URI = re.compile(r"^(sips?):(?:([^@;>]+)@)?([^:;>?]+)(?::([0-9]{1,5}))?((?:;[^?>]*)?)", re.IGNORECASE)

REASONS = {100: "Trying", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 481: "Call/Transaction Does Not Exist",
           486: "Busy Here", 488: "Not Acceptable Here", 500: "Server Internal Error", 501: "Not Implemented"}


class SipParseError(ValueError):
    """A message that is not valid SIP (or exceeds our limits)."""


def ascii_int(text: str, max_digits: int = 10) -> int | None:
    """The value of ``text`` if it is 1..``max_digits`` ASCII digits (surrounding blanks allowed), else None.

    ``str.isdigit`` accepts digits such as ``'²'`` that ``int`` refuses, and ``int`` accepts ``'1_0'``: neither
    belongs in a protocol field.
    """
    text = text.strip()
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _port(text: str | None, where: str) -> int | None:
    if not text:
        return None
    port = ascii_int(text, 5)
    if port is None or port > 65535:
        msg = f"bad port {text!r} in {where[:80]!r}"
        raise SipParseError(msg)
    return port


def _canon(name: str) -> str:
    low = name.strip().lower()
    return COMPACT.get(low, low)


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str]

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.host}{port}{params}"


def parse_uri(text: str) -> SipUri:
    m = _URI.match(text.strip().strip("<>"))
    if not m:
        msg = f"not a SIP URI: {text[:80]!r}"
        raise SipParseError(msg)
    params = {}
    for part in (m.group(5) or "").split(";"):
        if part:
            key, _, value = part.partition("=")
            params[key.lower()] = value
    return SipUri(m.group(1).lower(), m.group(2), m.group(3), _port(m.group(4), text), params)


@dataclass(frozen=True)
class NameAddr:
    """``"display" <uri>;param=value`` (From, To, Contact)."""

    uri: SipUri
    raw_uri: str
    params: dict[str, str]

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if "<" in text:
        start, end = text.index("<"), text.find(">")
        if end < start:
            msg = f"unbalanced <> in {text[:80]!r}"
            raise SipParseError(msg)
        raw, rest = text[start + 1:end], text[end + 1:]
    else:
        raw, _, rest = text.partition(";")
        rest = ";" + rest if rest else ""
    params = {}
    for part in rest.split(";"):
        part = part.strip()
        if part:
            key, _, value = part.partition("=")
            params[key.lower()] = value.strip('"')
    return NameAddr(parse_uri(raw), raw, params)


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")


def parse_via(text: str) -> Via:
    first = text.split(",")[0].strip()
    m = re.match(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;:\s]+)(?::([0-9]{1,5}))?\s*(.*)$", first)
    if not m:
        msg = f"bad Via: {text[:80]!r}"
        raise SipParseError(msg)
    params = {}
    for part in m.group(4).split(";"):
        part = part.strip()
        if part:
            key, _, value = part.partition("=")
            params[key.lower()] = value
    return Via(m.group(1).upper(), m.group(2), _port(m.group(3), text), params)


@dataclass
class SipMessage:
    """A request (``method``/``uri`` set) or a response (``status`` set)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _canon(name)
        for k, v in self.headers:
            if _canon(k) == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = _canon(name)
        return [v for k, v in self.headers if _canon(k) == key]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            msg = f"missing {name} header"
            raise SipParseError(msg)
        return value

    def set(self, name: str, value: str) -> None:
        key = _canon(name)
        self.headers = [(k, v) for k, v in self.headers if _canon(k) != key]
        self.headers.append((name, value))

    def add(self, name: str, value: str) -> None:
        self.headers.append((name, value))

    @property
    def call_id(self) -> str:
        return self.require("Call-ID").strip()

    @property
    def cseq(self) -> tuple[int, str]:
        parts = self.require("CSeq").split()
        number = ascii_int(parts[0]) if len(parts) == 2 else None
        if number is None or number >= 1 << 31:
            msg = f"bad CSeq: {self.get('CSeq')!r}"
            raise SipParseError(msg)
        return number, parts[1].upper()

    @property
    def top_via(self) -> Via:
        vias = self.get_all("Via")
        if not vias:
            msg = "missing Via header"
            raise SipParseError(msg)
        return parse_via(vias[0])

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.require("From"))

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.require("To"))

    def to_bytes(self) -> bytes:
        if self.is_request:
            start = f"{self.method} {self.uri} SIP/2.0"
        else:
            start = f"SIP/2.0 {self.status} {self.reason or REASONS.get(self.status or 0, '')}"
        lines = [start] + [f"{k}: {v}" for k, v in self.headers if _canon(k) != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def summary(self) -> str:
        """A short loggable description (no bodies, no credentials)."""
        if self.is_request:
            return f"{self.method} {self.uri}"
        return f"{self.status} {self.reason}"


def parse_message(data: bytes) -> SipMessage:
    """Parse one complete SIP message (a UDP datagram or one framed TCP message)."""
    if len(data) > MAX_MESSAGE:
        msg = f"message of {len(data)} bytes exceeds {MAX_MESSAGE}"
        raise SipParseError(msg)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            msg = "no blank line after the headers"
            raise SipParseError(msg)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("gb18030", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    message = _start_line(lines[0].strip())
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and message.headers:
            name, value = message.headers[-1]
            message.headers[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            msg = f"bad header line {line[:60]!r}"
            raise SipParseError(msg)
        message.headers.append((name.strip(), value.strip()))
        if len(message.headers) > MAX_HEADERS:
            msg = "too many headers"
            raise SipParseError(msg)
    length = message.get("Content-Length")
    if length is not None:
        n = ascii_int(length)
        if n is None:
            msg = f"bad Content-Length {length!r}"
            raise SipParseError(msg)
        if n > len(body):
            msg = f"Content-Length {n} but only {len(body)} body bytes"
            raise SipParseError(msg)
        body = body[:n]
    message.body = body
    for name in ("Call-ID", "CSeq", "From", "To", "Via"):
        if not message.require(name).strip():
            msg = f"empty {name} header"
            raise SipParseError(msg)
    message.cseq  # noqa: B018 - validates
    return message


def _start_line(line: str) -> SipMessage:
    m = _REQUEST_LINE.match(line)
    if m:
        return SipMessage(method=m.group(1), uri=m.group(2))
    m = _STATUS_LINE.match(line)
    if m:
        return SipMessage(status=int(m.group(1)), reason=m.group(2) or "")
    msg = f"bad start line {line[:80]!r}"
    raise SipParseError(msg)


class SipStreamParser:
    """Splits a TCP byte stream into SIP messages by Content-Length (CRLF keep-alives are skipped)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_MESSAGE:
                    self._buf.clear()
                    msg = "no end of headers within 64 KiB"
                    raise SipParseError(msg)
                return out
            head = bytes(self._buf[:end]).decode("utf-8", "replace")
            m = re.search(r"(?im)^(?:content-length|l)\s*:\s*([0-9]+)\s*$", head)
            length = (ascii_int(m.group(1)) if m else 0) or 0
            if m and len(m.group(1)) > 10:
                length = MAX_MESSAGE + 1
            total = end + 4 + length
            if total > MAX_MESSAGE:
                self._buf.clear()
                msg = f"Content-Length {length} too large"
                raise SipParseError(msg)
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


def response_to(request: SipMessage, status: int, reason: str | None = None, *, to_tag: str | None = None,
                headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> SipMessage:
    """A response echoing the request's Via, From, To (plus our tag), Call-ID and CSeq."""
    msg = SipMessage(status=status, reason=reason or REASONS.get(status, ""))
    for name, value in request.headers:
        if _canon(name) == "via":
            msg.add("Via", value)
    msg.add("From", request.require("From"))
    to = request.require("To")
    if to_tag and "tag=" not in to:
        to = f"{to};tag={to_tag}"
    msg.add("To", to)
    msg.add("Call-ID", request.call_id)
    msg.add("CSeq", request.require("CSeq"))
    for name, value in headers or []:
        msg.add(name, value)
    msg.body = body
    return msg
