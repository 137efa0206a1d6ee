"""A request-body limit enforced while the body streams in, before any parser buffers it.

:class:`BodyLimit` is pure ASGI middleware. A request whose ``Content-Length`` is over the route's limit is
refused at the first read, before a byte of the body is taken from the socket; a body without a length
(``Transfer-Encoding: chunked``) or with a lying one is counted chunk by chunk and refused as soon as the
count passes the limit, so at most one network chunk (64 KiB in uvicorn) beyond the limit is ever held.
The refusal is :class:`BodyTooLarge` (an ``HTTPException`` with 413, so FastAPI's body parsing lets it
through unchanged); the application's handler for it audits the refusal.

Limits: the routes in ``upload_paths`` (multipart image uploads) take ``api.max_upload_bytes`` plus
``MULTIPART_OVERHEAD`` for the form's other fields and boundaries; every other route ``api.max_body_bytes``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from fastapi import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MULTIPART_OVERHEAD = 64 * 1024


class BodyTooLarge(HTTPException):
    """The request body is over its limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """Refuse request bodies over a per-path limit while they stream in."""

    def __init__(self, app: ASGIApp, *, default_bytes: int, upload_bytes: int, upload_paths: Collection[str]) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.upload_bytes = upload_bytes + MULTIPART_OVERHEAD
        self.upload_paths = frozenset(upload_paths)

    def limit_for(self, path: str) -> int:
        return self.upload_bytes if path in self.upload_paths else self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)
