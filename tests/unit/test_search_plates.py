"""Plate query text: normalisation, wildcard translation (checked against DuckDB's LIKE) and edit distance."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pytest

from benchmarks.search.synthetic import random_plate
from pipeline.search import plates as p
from pipeline.search.hits import QueryError
from schemas.plates import PLATE_TEXT_PATTERN


def test_plate_characters_match_the_schema() -> None:
    assert f"^[{p._PLATE_CHARS}]{{1,16}}$" == PLATE_TEXT_PATTERN


@pytest.mark.parametrize("bad", ["", "   ", "川A%F", "AB!", "X" * 17, "川A*"])
def test_exact_plate_rejects_what_cannot_be_a_plate(bad: str) -> None:
    with pytest.raises(QueryError):
        p.exact_plate(bad)


@pytest.mark.parametrize(
    ("pattern", "like"),
    [
        ("川A*58?", "川A%58_"),
        ("川a*58?", "川A%58_"),
        ("*58", "%58"),
        ("**58**", "%58%"),
        ("???", "___"),
        ("AB12", "AB12"),
    ],
)
def test_wildcard_to_like(pattern: str, like: str) -> None:
    assert p.wildcard_to_like(pattern) == like


@pytest.mark.parametrize("bad", ["", "*", "***", "川A%", "A{B}", "A[B]", "A" * 33])
def test_wildcard_rejects_bad_patterns(bad: str) -> None:
    with pytest.raises(QueryError):
        p.wildcard_to_like(bad)


@pytest.mark.parametrize(
    ("pattern", "plate", "matches"),
    [
        ("川A*58?", "川AF058Y", True),
        ("川A*58?", "川A58Y", True),  # '*' matches nothing too
        ("川A*58?", "川AF058", False),  # '?' needs exactly one character
        ("川A*58?", "京AF058Y", False),
        ("*8Y", "川AF058Y", True),
        ("川?F058Y", "川AF058Y", True),
        ("?AF058Y", "川AF058Y", True),  # the province character is one character
        ("AF058Y", "川AF058Y", False),  # anchored: the whole plate must match
    ],
)
def test_wildcard_semantics_in_duckdb_and_python(pattern: str, plate: str, matches: bool) -> None:
    like = p.wildcard_to_like(pattern)
    (got,) = duckdb.execute("SELECT ? LIKE ? ESCAPE '\\'", [plate, like]).fetchone()
    assert got is matches
    assert bool(p.wildcard_to_regex(pattern).match(plate)) is matches


def test_like_and_regex_agree_on_random_plates() -> None:
    rng = np.random.default_rng(7)
    plates = [random_plate(rng) for _ in range(300)]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest(?::VARCHAR[]) AS text", [plates])
    for pattern in ("川*", "*A*", "?B*1?", "京A?????", "*0*0*"):
        got = {r[0] for r in con.execute("SELECT text FROM t WHERE text LIKE ? ESCAPE '\\'",
                                         [p.wildcard_to_like(pattern)]).fetchall()}
        rx = p.wildcard_to_regex(pattern)
        assert got == {t for t in plates if rx.match(t)}, pattern


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("川AF058Y", "川AF058Y", 0),
        ("川AF058Y", "京AF058Y", 1),  # a province character is one substitution, not three bytes
        ("川AF058Y", "川AF058", 1),
        ("川AF058Y", "川AF0588Y", 1),
        ("川AF058Y", "川AF850Y", 2),
        ("", "ABC", 3),
        ("ABC", "", 3),
        ("KITTEN", "SITTING", 3),
    ],
)
def test_levenshtein(a: str, b: str, distance: int) -> None:
    assert p.levenshtein(a, b) == distance
    assert p.levenshtein(b, a) == distance
    (db,) = duckdb.execute("SELECT levenshtein(?, ?)", [a, b]).fetchone()
    assert db == distance


def test_duckdb_levenshtein_agrees_with_the_reference_on_random_plates() -> None:
    rng = np.random.default_rng(3)
    pairs = []
    for _ in range(200):
        a = random_plate(rng)
        b = list(a)
        for _ in range(int(rng.integers(0, 3))):
            i = int(rng.integers(len(b)))
            b[i] = random_plate(rng)[int(rng.integers(7))]
        pairs.append((a, "".join(b)))
    rows = duckdb.execute("SELECT levenshtein(a, b) FROM (SELECT unnest(?::VARCHAR[]) AS a, unnest(?::VARCHAR[]) AS b)",
                          [[a for a, _ in pairs], [b for _, b in pairs]]).fetchall()
    assert [r[0] for r in rows] == [p.levenshtein(a, b) for a, b in pairs]


@pytest.mark.parametrize("edits", [-1, 4])
def test_check_edits_bounds(edits: int) -> None:
    with pytest.raises(QueryError, match=re.escape("max_edits")):
        p.check_edits(edits)


@pytest.mark.parametrize(("plate", "k", "pieces"), [
    ("川AF058Y", 0, ["川AF058Y"]),
    ("川AF058Y", 1, ["川AF0", "58Y"]),
    ("川AF058Y", 2, ["川A", "F05", "8Y"]),
    ("AB", 3, ["", "A", "B", ""]),  # more pieces than characters: an empty piece filters nothing
])
def test_fuzzy_pieces(plate: str, k: int, pieces: list[str]) -> None:
    assert p.fuzzy_pieces(plate, k) == pieces
    assert "".join(pieces) == plate


def test_fuzzy_prefilter_never_drops_a_match() -> None:
    """Pigeonhole: any text within k edits of the plate contains one of its k + 1 pieces."""
    rng = np.random.default_rng(5)
    alphabet = "川京ABC0123"
    for _ in range(3000):
        plate = random_plate(rng)
        text = list(plate)
        for _ in range(int(rng.integers(0, 4))):
            op, i = int(rng.integers(3)), int(rng.integers(len(text) + 1))
            ch = alphabet[int(rng.integers(len(alphabet)))]
            if op == 0:
                text.insert(i, ch)
            elif text and op == 1:
                del text[min(i, len(text) - 1)]
            elif text:
                text[min(i, len(text) - 1)] = ch
        text_s = "".join(text)
        k = p.levenshtein(plate, text_s)
        if k <= 3:
            assert any(piece in text_s for piece in p.fuzzy_pieces(plate, k)), (plate, text_s)


def _anchored(found: dict[str, tuple[str, ...]], text: str) -> bool:
    if not found:
        return True  # no anchor: nothing narrowed
    return any(text.startswith(s) for s in found.get("starts", ())) or \
        any(text.endswith(e) for e in found.get("ends", ()))


def test_fuzzy_anchors_hold_for_every_text_within_the_edits() -> None:
    """Every text within 0 or 1 edit of the plate starts with its first half or ends with its second (the
    vocabulary is narrowed by that before the edit distance runs): all single edits of random plates, at every
    position, and one anchor-less answer for two edits."""
    rng = np.random.default_rng(9)
    alphabet = "川京ABC0123"
    checked = 0
    for _ in range(300):
        plate = random_plate(rng)
        assert p.anchors(plate, "fuzzy", 0) == {"starts": (plate,)}
        found = p.anchors(plate, "fuzzy", 1)
        assert found and "".join(found["starts"] + found["ends"]) == plate
        for i in range(len(plate) + 1):
            for ch in alphabet:
                variants = [plate[:i] + ch + plate[i:]]  # insertion
                if i < len(plate):
                    variants += [plate[:i] + plate[i + 1:], plate[:i] + ch + plate[i + 1:]]  # deletion, substitution
                for text in variants:
                    assert p.levenshtein(plate, text) <= 1
                    assert _anchored(found, text), (plate, text, found)
                    checked += 1
    assert checked > 50_000
    assert p.anchors("川A12345", "fuzzy", 2) == {}


@pytest.mark.parametrize(("pattern", "found"), [
    ("川A4*", {"starts": ("川A4",)}),
    ("川a?12*", {"starts": ("川A",)}),
    ("*z12", {"ends": ("Z12",)}),
    ("**Z1?", {}),
    ("?A12*", {}),
    ("川A12345", {"starts": ("川A12345",)}),
])
def test_wildcard_anchors(pattern: str, found: dict[str, tuple[str, ...]]) -> None:
    assert p.anchors(pattern, "wildcard") == found
    regex = p.wildcard_to_regex(pattern)
    rng = np.random.default_rng(3)
    for _ in range(2000):
        plate = random_plate(rng)
        for text in (plate, p.normalise_plate(pattern).replace("*", plate[:2]).replace("?", "7")):
            if regex.match(text):
                assert _anchored(found, text), (pattern, text)


def test_wildcard_anchors_check_the_pattern() -> None:
    with pytest.raises(QueryError):
        p.anchors("%%", "wildcard")


@pytest.mark.parametrize("prefix", ["川", "川A", "A9", "Z", "\ud7ff", "a\U0010ffff", "京B12345"])
def test_prefix_end_bounds_every_string_with_the_prefix(prefix: str) -> None:
    from pipeline.search.tables import prefix_end

    end = prefix_end(prefix)
    assert end is not None and end > prefix
    for tail in ["", "0", "Z", "\u9fff", "\U0010ffff" * 3]:
        assert prefix + tail < end
    assert not end.startswith(prefix)
    end.encode()  # a valid UTF-8 parameter
    assert prefix_end("\U0010ffff") is None
