"""Reading back the project's own state documents: bounded, data only, versioned, strictly validated.

Whatever a worker wrote to the object store and reads back later (tracking snapshots, plate track state, FAISS
shard manifests) may have been changed by someone else in between, so it is read like untrusted input: its
size is checked before it is parsed, it must be a JSON object naming the expected format and version, and it
is validated field by field in strict mode (no coercion, no unknown types) before anything is built from it.
JSON cannot name a type or a function, so nothing in such a document can run. Any failure raises
:class:`DocumentRefused` (a ValueError) with a short reason; callers log it, count it and start afresh.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")


class DocumentRefused(ValueError):
    """A stored document that is not loaded: too large, not a JSON object, another format or version, invalid."""


def read_document(
    data: bytes,
    adapter: TypeAdapter[T],
    *,
    max_bytes: int,
    version: int,
    format_name: str | None = None,
    missing_version: int | None = None,
    error: type[DocumentRefused] = DocumentRefused,
) -> T:
    """The document in ``data`` validated by ``adapter``; raises ``error`` (a DocumentRefused) with the reason.

    ``format_name``: the ``format`` field it must carry; ``missing_version``: the version a document without a
    ``version`` field has (documents written before the field existed)."""
    if len(data) > max_bytes:
        msg = f"{len(data)} bytes is more than the {max_bytes} such a document may have"
        raise error(msg)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"not JSON ({str(exc)[:100]})"
        raise error(msg) from None
    if not isinstance(doc, dict):
        msg = "not a JSON object"
        raise error(msg)
    got_format, got_version = doc.get("format"), doc.get("version", missing_version)
    if (format_name is not None and got_format != format_name) or type(got_version) is not int or (
            got_version != version):
        expected = f"{format_name!r} version {version}" if format_name else f"version {version}"
        found = f"{str(got_format)[:60]!r} version {str(got_version)[:20]!r}" if format_name else (
            f"version {str(got_version)[:20]!r}")
        msg = f"{found}; this reads {expected}"
        raise error(msg)
    try:
        return adapter.validate_json(data, strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = f"invalid ({exc.error_count()} error(s), first: {where}: {first['msg']})"
        raise error(msg[:300]) from None
