"""SIP digest authentication for REGISTER (RFC 2617 MD5, with and without ``qop=auth``): the platform's
server side (:class:`DigestAuth`) and the client side for registering to a superior (:func:`authorization`).

Nonces are self-validating (``timestamp:hmac``) so the platform keeps no per-challenge state; a nonce
older than ``max_age_s`` is answered with a fresh challenge marked ``stale=true``. The response is
checked against the ``uri`` the device put in its Authorization header (SIPp and several devices use
the remote address there, not the Request-URI).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from workers.ingest.gb28181.sip import ascii_int

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)')


def _same(a: str, b: str) -> bool:
    """Constant-time comparison that also takes non-ASCII text (``hmac.compare_digest`` refuses it on str)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()


def parse_auth_params(header: str) -> dict[str, str]:
    """``Digest username="a", nc=00000001`` → ``{"username": "a", "nc": "00000001"}`` (keys lower-case)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params = {}
    for m in _PARAM.finditer(rest):
        value = m.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"')
        params[m.group(1).lower()] = value
    return params


def digest_response(*, username: str, realm: str, password: str, method: str, uri: str, nonce: str,
                    qop: str | None = None, nc: str | None = None, cnonce: str | None = None) -> str:
    ha1 = md5_hex(f"{username}:{realm}:{password}")
    ha2 = md5_hex(f"{method}:{uri}")
    if qop:
        return md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5_hex(f"{ha1}:{nonce}:{ha2}")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    stale: bool = False
    problem: str = ""


class DigestAuth:
    """Issues challenges and verifies Authorization headers for one realm."""

    def __init__(self, realm: str, *, max_age_s: float = 300.0, secret: bytes | None = None) -> None:
        self.realm = realm
        self.max_age_s = max_age_s
        self._secret = secret or secrets.token_bytes(32)

    def nonce(self) -> str:
        stamp = f"{int(time.time())}"
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{stamp}:{mac}"

    def challenge(self, *, stale: bool = False) -> str:
        value = f'Digest realm="{self.realm}", nonce="{self.nonce()}", qop="auth", algorithm=MD5'
        return value + (", stale=true" if stale else "")

    def _nonce_state(self, nonce: str) -> str:
        stamp, _, mac = nonce.partition(":")
        issued = ascii_int(stamp, 12)
        if issued is None:
            return "invalid"
        expected = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        if not _same(mac, expected):
            return "invalid"
        return "stale" if time.time() - issued > self.max_age_s else "ok"

    def verify(self, header: str, *, method: str, username: str, password: str) -> Verdict:
        params = parse_auth_params(header)
        if not params:
            return Verdict(False, problem="Authorization is not a Digest header")
        for name in ("username", "nonce", "uri", "response"):
            if name not in params:
                return Verdict(False, problem=f"Authorization lacks {name}")
        if params["username"] != username:
            return Verdict(False, problem=f"username {params['username'][:40]!r} is not the device ID")
        if params.get("algorithm", "MD5").upper() != "MD5":
            return Verdict(False, problem=f"unsupported digest algorithm {params.get('algorithm')!r}")
        state = self._nonce_state(params["nonce"])
        if state == "invalid":
            return Verdict(False, stale=True, problem="nonce not issued by this platform")
        expected = digest_response(
            username=params["username"], realm=params.get("realm", self.realm), password=password, method=method,
            uri=params["uri"], nonce=params["nonce"], qop=params.get("qop"), nc=params.get("nc"),
            cnonce=params.get("cnonce"),
        )
        if not _same(expected, params["response"].lower()):
            return Verdict(False, problem="wrong password (digest response does not match)")
        if state == "stale":
            return Verdict(False, stale=True, problem="nonce expired")
        return Verdict(True)


def authorization(challenge: str, *, method: str, uri: str, username: str, password: str, nc: int = 1) -> str:
    """The ``Authorization`` header answering a ``WWW-Authenticate`` challenge (MD5; ``qop=auth`` when offered)."""
    params = parse_auth_params(challenge)
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    if params.get("algorithm", "MD5").upper() != "MD5":
        msg = f"unsupported digest algorithm {params.get('algorithm')!r}"
        raise ValueError(msg)
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    fields = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in qops:
        count, cnonce = f"{nc:08x}", secrets.token_hex(8)
        response = digest_response(username=username, realm=realm, password=password, method=method, uri=uri,
                                   nonce=nonce, qop="auth", nc=count, cnonce=cnonce)
        fields += [f'response="{response}"', "qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{digest_response(username=username, realm=realm, password=password, method=method, uri=uri, nonce=nonce)}"')
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields) + ", algorithm=MD5"
