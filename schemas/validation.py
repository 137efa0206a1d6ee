"""Validation of JSON documents against the committed JSON Schema files (the contract).

The pydantic classes are what producers and consumers use; these helpers let anything that
only has bytes (a test, a dead-letter inspector, a non-Python consumer's fixture) check them
against ``schemas/json/<name>.v1.json`` with ``jsonschema``'s Draft 2020-12 validator,
including the ``date-time`` format, which is checked here with the standard library so the
check never silently depends on an optional ``jsonschema`` extra.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from schemas.common import WireMessage

SCHEMA_PACKAGE_DIR = "json"
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@cache
def load_schema(file_name: str) -> dict[str, Any]:
    """The committed schema ``schemas/json/<file_name>`` as a dict (cached; do not mutate)."""
    text = resources.files("schemas").joinpath(SCHEMA_PACKAGE_DIR, file_name).read_text(encoding="utf-8")
    document = json.loads(text)
    if not isinstance(document, dict):
        msg = f"{file_name} is not a JSON object"
        raise ValueError(msg)
    return document


def is_rfc3339_datetime(value: object) -> bool:
    """True for an RFC 3339 ``date-time`` string (``2024-05-01T08:00:00Z``); non-strings pass."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def format_checker() -> FormatChecker:
    """``jsonschema``'s default format checker with a standard-library ``date-time`` check."""
    checker = FormatChecker()
    checker.checks("date-time")(is_rfc3339_datetime)
    return checker


def validator_for(cls: type[WireMessage]) -> Draft202012Validator:
    """A Draft 2020-12 validator, with format checking, for the committed schema of ``cls``."""
    schema = load_schema(cls.schema_file_name())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


def schema_errors(cls: type[WireMessage], data: bytes | str) -> list[str]:
    """Every violation of the committed schema in the JSON ``data``, as readable lines."""
    validator = validator_for(cls)
    document = json.loads(data)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(
            validator.iter_errors(document), key=lambda e: [str(part) for part in e.absolute_path]
        )
    ]
