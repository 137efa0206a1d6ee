"""What the OpenAPI document promises beyond the success bodies: every error status a route can answer, the
error bodies' schemas, the ``Retry-After`` header of 429s and the two ways to authenticate.

Each route declares its statuses with :func:`errors` (``responses=errors(404, 409)``); every authenticated
route can also answer 400 (a query the search layer refuses, or a bad case reference), 401 (not authenticated), 403 (role, or the CSRF check of a cookie session), 413 (the
request body is over its limit), 422 (invalid input) and 503 (the object store or the audit log cannot be
written), so those are always listed. :func:`finish_openapi` adds what FastAPI cannot know: the security
schemes and the configured case-reference pattern on every ``case`` field. The schemathesis test in
``tests/unit/test_api_contract.py`` holds the application to this document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DESCRIPTIONS = {
    400: "A required case reference is missing or malformed, or the query cannot be run as asked.",
    401: "Not authenticated (no, expired or revoked credentials).",
    403: "The role may not do this, or a cookie session's CSRF check failed.",
    404: "Nothing by that ID in your camera scope.",
    409: "Not possible now (e.g. the synopsis is still building, a version changed, the device is offline).",
    410: "It existed but is gone (retention); ask for it again.",
    413: "The request body or the image is too large.",
    416: "The requested byte range is outside the file.",
    422: "Invalid input; 'errors' names each invalid field when the request's shape was wrong.",
    429: "Too many failed logins, or a per-user quota is used up; retry after 'Retry-After' seconds.",
    503: "The object store or the audit log cannot be written; nothing was served.",
}
ALWAYS = (400, 401, 403, 413, 422, 503)
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer", "minimum": 1}}}


class ErrorOut(BaseModel):
    """Every error body: a sentence a person can act on."""

    model_config = ConfigDict(extra="forbid")

    detail: str


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Where: 'query.q', 'body.start', …")
    message: str


class ValidationErrorOut(BaseModel):
    """A 422: the summary, and for a request of the wrong shape one message per field (never the input)."""

    model_config = ConfigDict(extra="forbid")

    detail: str
    errors: list[FieldError] | None = None


def errors(*statuses: int, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: ``statuses`` plus, for authenticated routes, those every such route has."""
    wanted = sorted(set(statuses) | (set(ALWAYS) if authenticated else {413, 422, 503}))
    out: dict[int | str, dict[str, Any]] = {}
    for status in wanted:
        entry: dict[str, Any] = {"description": DESCRIPTIONS[status],
                                 "model": ValidationErrorOut if status == 422 else ErrorOut}
        if status == 429:
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event: 'alert' (data: an AlertOut as JSON) or 'closed' (data: {\"reason\": …}).",
    "properties": {
        "event": {"type": "string", "enum": ["alert", "closed"]},
        "id": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer", "minimum": 0},
    },
}
"""How each event of a ``text/event-stream`` response is documented (OpenAPI 3.1: ``schema`` is one event)."""

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API token (tl_…) from 'tubeline users token'."},
    "session": {"type": "apiKey", "in": "cookie", "name": "tubeline_session",
                "description": "The web UI's session cookie (POST /api/session); state-changing calls also need "
                               "X-CSRF-Token."},
}
PUBLIC_OPERATIONS = {("post", "/api/session")}
CASE_REQUIRED = {("post", "/api/search/faces"), ("get", "/api/trajectory/plate"), ("post", "/api/trajectory/face"),
                 ("post", "/api/exports"), ("post", "/api/synopses/{camera_id}/{synopsis_id}/clip")}
"""Operations that always need a case reference (the handler answers 400 with an explanation without one)."""


def finish_openapi(document: dict[str, Any], case_pattern: str) -> dict[str, Any]:
    """``document`` with security schemes (every operation but login needs one), the case pattern on every
    ``case`` field (required where the operation always needs one), and multipart fields without a ``null``
    branch (a form part cannot be null; an absent part is how a form leaves a field out)."""
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    schemas = document.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        case = schema.get("properties", {}).get("case")
        if case is not None:
            _set_pattern(case, case_pattern)
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            needs_case = (method, path) in CASE_REQUIRED
            if (method, path) not in PUBLIC_OPERATIONS:
                operation["security"] = [{"bearer": []}, {"session": []}]
            for param in operation.get("parameters", []):
                if param.get("name") == "case":
                    _set_pattern(param.get("schema", {}), case_pattern)
                    if needs_case:
                        param["required"] = True
                        param["schema"] = _not_null(param["schema"])
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                body = _component(schemas, content.get("schema", {}))
                if body is None:
                    continue
                if media_type == "multipart/form-data":
                    body["properties"] = {k: _not_null(v) for k, v in body.get("properties", {}).items()}
                if needs_case and "case" in body.get("properties", {}):
                    body["properties"]["case"] = _not_null(body["properties"]["case"])
                    body["required"] = sorted({*body.get("required", []), "case"})
    return document


def _component(schemas: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any] | None:
    name = str(ref.get("$ref", "")).rpartition("/")[2]
    return schemas.get(name) if name else None


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without its ``null`` branch (``X | None`` → ``X``), annotations kept."""
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if "anyOf" not in schema or len(branches) != 1:
        return schema
    return {**{k: v for k, v in schema.items() if k != "anyOf"}, **branches[0]}


def _set_pattern(schema: dict[str, Any], pattern: str) -> None:
    """Put ``pattern`` on the string branch of ``schema`` (``str | None`` is an anyOf)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["pattern"] = pattern
