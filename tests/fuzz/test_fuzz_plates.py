"""Fuzz tests of the plate query parser (:mod:`pipeline.search.plates`) against DuckDB, the engine that runs it.

* ``exact_plate`` returns a text the plate schema accepts (and that normalises to itself) or raises
  :class:`QueryError`, for any input.
* ``wildcard_to_like`` raises :class:`QueryError` or returns a LIKE pattern that DuckDB matches exactly where
  the wildcard's meaning (``wildcard_to_regex``) does — escaping included.
* ``fuzzy_pieces`` is a sound prefilter: every plate within ``k`` edits contains one of its pieces, so the
  search never misses a hit; and ``levenshtein`` agrees with DuckDB's.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.search.hits import QueryError
from pipeline.search.plates import (
    MAX_EDITS,
    exact_plate,
    fuzzy_pieces,
    levenshtein,
    normalise_plate,
    wildcard_to_like,
    wildcard_to_regex,
)
from schemas.plates import PLATE_TEXT_PATTERN

PLATE_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ川京沪粤苏浙皖学警挂"
PLATES = st.text(PLATE_CHARS, min_size=1, max_size=10)
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
PATTERNS = st.one_of(st.text(PLATE_CHARS[:12] + "*?%_\\ ·-京", max_size=12), ANY_TEXT)


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


@given(ANY_TEXT)
def test_exact_plate_is_schema_valid_or_refused(query: str) -> None:
    import re

    try:
        plate = exact_plate(query)
    except QueryError:
        return
    assert re.fullmatch(PLATE_TEXT_PATTERN, plate) and normalise_plate(plate) == plate


@given(PLATES, st.lists(st.sampled_from([" ", "·", "-", "."]), max_size=3), st.booleans())
def test_exact_plate_ignores_case_and_separators(plate: str, seps: list[str], lower: bool) -> None:
    text = "".join(sep + ch for sep, ch in zip(seps + [""] * len(plate), plate, strict=False))
    assert exact_plate(text.lower() if lower else text) == plate


@given(PATTERNS, st.lists(PLATES, min_size=1, max_size=8))
def test_wildcard_like_matches_exactly_what_the_wildcard_means(db: duckdb.DuckDBPyConnection, pattern: str,
                                                              plates: list[str]) -> None:
    try:
        like = wildcard_to_like(pattern)
    except QueryError:
        return
    regex = wildcard_to_regex(pattern)
    for plate in plates + [normalise_plate(pattern).replace("*", "").replace("?", "A")]:
        (got,) = db.execute("SELECT ? LIKE ? ESCAPE '\\'", [plate, like]).fetchone()  # type: ignore[misc]
        assert got == bool(regex.fullmatch(plate)), (pattern, like, plate)


_EDITS = st.lists(st.tuples(st.sampled_from(["sub", "ins", "del"]), st.integers(0, 20), st.sampled_from(PLATE_CHARS)),
                  max_size=MAX_EDITS)


def _edit(plate: str, edits: list[tuple[str, int, str]]) -> str:
    text = plate
    for op, pos, ch in edits:
        i = pos % (len(text) + 1)
        if op == "sub" and text:
            i %= len(text)
            text = text[:i] + ch + text[i + 1:]
        elif op == "ins":
            text = text[:i] + ch + text[i:]
        elif op == "del" and text:
            i %= len(text)
            text = text[:i] + text[i + 1:]
    return text


@given(PLATES, _EDITS, st.integers(0, MAX_EDITS))
def test_fuzzy_prefilter_never_loses_a_hit(db: duckdb.DuckDBPyConnection, plate: str,
                                           edits: list[tuple[str, int, str]], k: int) -> None:
    stored = _edit(plate, edits)
    distance = levenshtein(stored, plate)
    (duck,) = db.execute("SELECT levenshtein(?, ?)", [stored, plate]).fetchone()  # type: ignore[misc]
    assert distance == duck == levenshtein(plate, stored) <= len(edits)
    if distance <= k:
        assert any(piece in stored for piece in fuzzy_pieces(plate, k)), (plate, stored, k)
        assert len(plate) - k <= len(stored) <= len(plate) + k


def test_long_queries_are_refused_before_normalising() -> None:
    for parse in (exact_plate, wildcard_to_like):
        with pytest.raises(QueryError, match="longer than"):
            parse("京A" + " " * 10_000_000)
