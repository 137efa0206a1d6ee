"""Camera stream URLs: user info split out for the registry, put back for the one call that opens a stream, redacted for logs."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import SecretStr


def redact_url(url: str) -> str:
    """The URL with any user info replaced by ``***``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``rtsp://u:p@h/x`` → (``rtsp://h/x``, ``u``, ``p``); URLs without user info come back unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(user) or None, unquote(password) if password else None


def with_credentials(url: str, username: str | None, password: SecretStr | None) -> str:
    if not username:
        return url
    parts = urlsplit(url)
    userinfo = quote(username, safe="")
    if password is not None:
        userinfo += ":" + quote(password.get_secret_value(), safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, parts.fragment))
