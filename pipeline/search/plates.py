"""Plate query text: normalisation, wildcard patterns and edit distance.

Plates are stored normalised (:func:`schemas.plates.normalise_plate`: upper case, no separators:
``川AF058Y``); a query is normalised the same way first, so ``川a·f058y`` and ``川A F058Y`` find it. Wildcards: ``*`` matches any run of
characters (including none), ``?`` exactly one; the pattern must match the whole plate. Fuzzy search
uses the Levenshtein distance (insertions, deletions and substitutions of whole characters — a
province character counts as one), computed by DuckDB's ``levenshtein`` after a length and a
pigeonhole prefilter (:func:`fuzzy_pieces`);
:func:`levenshtein` is the reference the tests hold it to.
"""

from __future__ import annotations

import re

from pipeline.search.hits import QueryError
from schemas.plates import normalise_plate, plate_text

MAX_EDITS = 3
_PLATE_CHARS = r"0-9A-Z\u4e00-\u9fff"
"""The character class of ``schemas.plates.PLATE_TEXT_PATTERN`` (a unit test keeps them equal)."""
_PATTERN = re.compile(rf"^[{_PLATE_CHARS}*?]{{1,32}}$")

MAX_QUERY_CHARS = 256
"""Longest query text looked at: a plate has at most 16 characters, separators included a few more."""


def _bounded(query: str) -> str:
    if len(query) > MAX_QUERY_CHARS:
        msg = f"plate query of {len(query)} characters is longer than {MAX_QUERY_CHARS}"
        raise QueryError(msg)
    return query


def exact_plate(query: str) -> str:
    """The normalised plate; QueryError when it is not a possible plate."""
    try:
        return plate_text(_bounded(query))
    except ValueError as exc:
        raise QueryError(str(exc)) from None


def wildcard_to_like(pattern: str) -> str:
    """A SQL LIKE pattern (escape character ``\\``) for a plate wildcard: ``*`` → ``%``, ``?`` → ``_``."""
    text = normalise_plate(_bounded(pattern))
    if not _PATTERN.fullmatch(text) or not text.strip("*"):
        msg = f"not a plate pattern: {pattern!r} (plate characters, '*' and '?'; at least one character)"
        raise QueryError(msg)
    text = re.sub(r"\*+", "*", text)
    out = []
    for ch in text:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def wildcard_to_regex(pattern: str) -> re.Pattern[str]:
    """The same wildcard as a Python regular expression (whole-string match), for checks and tests."""
    text = normalise_plate(pattern)
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text]
    return re.compile("^" + "".join(parts) + "$")


def check_edits(max_edits: int) -> int:
    if not 0 <= max_edits <= MAX_EDITS:
        msg = f"max_edits must be between 0 and {MAX_EDITS}, got {max_edits}"
        raise QueryError(msg)
    return max_edits


def fuzzy_pieces(plate: str, max_edits: int) -> list[str]:
    """``max_edits + 1`` contiguous pieces of ``plate``: any text within ``max_edits`` edits of the plate
    contains at least one of them unchanged (each edit touches at most one piece) — a cheap prefilter
    (``contains``) before the edit distance itself."""
    parts = max_edits + 1
    bounds = [round(i * len(plate) / parts) for i in range(parts + 1)]
    return [plate[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def anchors(query: str, mode: str, max_edits: int = 1) -> dict[str, tuple[str, ...]]:
    """What every match of a plate query starts or ends with (``starts``/``ends`` of
    :class:`pipeline.search.tables.PlateQuery`), where that holds; empty when nothing does.

    * wildcard: its literal head (``川A4*`` → starts ``川A4``), else its literal tail (``*Z12`` → ends ``Z12``);
    * fuzzy with one edit: the plate's first half or its second half is unchanged, and in place: a
      substitution or deletion leaves the other half whole at its end, an insertion at or before the
      middle leaves the second half as the text's end, one after it the first half as its start;
    * fuzzy with no edit: the plate itself. Two or more edits can shift a middle piece anywhere: no anchor.
    """
    if mode == "wildcard":
        wildcard_to_like(query)  # the same checks
        text = re.sub(r"\*+", "*", normalise_plate(query))
        head = re.split(r"[*?]", text, maxsplit=1)[0]
        if head:
            return {"starts": (head,)}
        tail = re.split(r"[*?]", text)[-1]
        return {"ends": (tail,)} if tail else {}
    if mode == "fuzzy":
        plate, k = exact_plate(query), check_edits(max_edits)
        if k == 0:
            return {"starts": (plate,)}
        if k == 1:
            first, second = fuzzy_pieces(plate, 1)
            return {"starts": (first,), "ends": (second,)}
    return {}


def levenshtein(a: str, b: str) -> int:
    """Edit distance between two strings (unit costs), by characters."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
