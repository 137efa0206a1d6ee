"""Hotlist matching: exact, OCR confusions, one edit, and what must not match — as a table."""

from __future__ import annotations

import random

import pytest

from pipeline.config.enrich import HotlistsConfig
from pipeline.hotlists import Hotlist
from workers.plate.hotlists import HotlistBook
from workers.plate.matching import Candidate, ConfusionTable, PlateIndex, deletion_keys, weighted_distance

TABLE = ConfusionTable(HotlistsConfig().confusions, 0.25)
LISTED = ("川AF058Y", "AB45IEJ", "AD095ZC", "京N88888", "HML050")


@pytest.fixture(scope="module")
def index() -> PlateIndex:
    return PlateIndex([Candidate("stolen", p) for p in LISTED], TABLE, max_cost=1.0)


@pytest.mark.parametrize(
    ("read", "entry", "kind", "cost"),
    [
        ("川AF058Y", "川AF058Y", "exact", 0.0),
        ("川AF05BY", "川AF058Y", "confusion", 0.25),  # 8 / B
        ("川AFO58Y", "川AF058Y", "confusion", 0.25),  # 0 / O
        ("川AFD58Y", "川AF058Y", "confusion", 0.25),  # 0 / D
        ("AB451EJ", "AB45IEJ", "confusion", 0.25),  # 1 / I
        ("A845IEJ", "AB45IEJ", "confusion", 0.25),  # 8 / B
        ("AD09SZC", "AD095ZC", "confusion", 0.25),  # 5 / S
        ("AD0952C", "AD095ZC", "confusion", 0.25),  # 2 / Z
        ("AD09S2C", "AD095ZC", "confusion", 0.5),  # two confusions
        ("京N8B8B8", "京N88888", "confusion", 0.5),
        ("京NBBBB8", "京N88888", "confusion", 1.0),  # four confusions still match ...
        ("川AF057Y", "川AF058Y", "edit", 1.0),  # one ordinary substitution
        ("AF058Y", "川AF058Y", "edit", 1.0),  # province character missed
        ("川AF058YY", "川AF058Y", "edit", 1.0),  # an extra character
        ("HML0500", "HML050", "edit", 1.0),
    ],
)
def test_matches(index: PlateIndex, read: str, entry: str, kind: str, cost: float) -> None:
    hits = index.lookup(read)
    assert hits, f"{read} should match {entry}"
    best = hits[0]
    assert best.candidate.plate == entry
    assert best.kind == kind
    assert best.cost == pytest.approx(cost)


@pytest.mark.parametrize(
    "read",
    [
        "京NBBBBB",  # five confusions: 1.25
        "川AF05BX",  # a confusion plus a substitution: 1.25
        "川AF047Y",  # two substitutions
        "AF05BY",  # a missing character plus a confusion
        "粤B12345",
        "AB4",
        "",
    ],
)
def test_non_matches(index: PlateIndex, read: str) -> None:
    assert index.lookup(read) == []


def test_exact_only_when_max_cost_is_zero() -> None:
    strict = PlateIndex([Candidate("l", "AB45IEJ")], ConfusionTable(("1I",), 0.0), max_cost=0.0)
    assert [m.kind for m in strict.lookup("AB451EJ")] == ["confusion"]  # confusions at cost 0 still match
    assert strict.lookup("AB45IEK") == []


def test_one_alert_per_list_the_best_entry() -> None:
    idx = PlateIndex([Candidate("a", "AB45IEJ"), Candidate("a", "AB451EJ"), Candidate("b", "AB451EK")], TABLE)
    hits = idx.match("AB451EJ")
    assert [(h.candidate.list_name, h.candidate.plate, h.kind) for h in hits] == [
        ("a", "AB451EJ", "exact"), ("b", "AB451EK", "edit")]


def test_index_agrees_with_brute_force_on_random_plates() -> None:
    rng = random.Random(7)
    alphabet = "0123456789ABDEGIKOQSZ8"
    plates = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(5, 7))) for _ in range(250)})
    idx = PlateIndex([Candidate("l", p) for p in plates], TABLE, max_cost=1.0)
    for _ in range(150):
        base = rng.choice(plates)
        chars = list(base)
        op = rng.random()
        pos = rng.randrange(len(chars))
        if op < 0.3:
            chars[pos] = rng.choice(alphabet)
        elif op < 0.5:
            del chars[pos]
        elif op < 0.7:
            chars.insert(pos, rng.choice(alphabet))
        read = "".join(chars)
        expected = {p for p in plates if weighted_distance(read, p, TABLE) <= 1.0}
        assert {m.candidate.plate for m in idx.lookup(read)} == expected, read


def test_weighted_distance_and_deletion_keys() -> None:
    assert weighted_distance("ABC", "ABC", TABLE) == 0
    assert weighted_distance("A0C", "AOC", TABLE) == 0.25
    assert weighted_distance("ABC", "AXC", TABLE, limit=0.5) == float("inf")
    assert deletion_keys("ABC", 1) == {"ABC", "BC", "AC", "AB"}


def test_book_matches_across_lists_and_lets_the_store_win(tmp_path) -> None:  # noqa: ANN001
    from pipeline.hotlists import HotlistRepository
    from pipeline.store.local import LocalStore

    store = LocalStore(tmp_path / "s")
    listfile = tmp_path / "wanted.yaml"
    listfile.write_text(
        "name: wanted\nreason: warrant\nowner: unit 3\nseverity: critical\nentries:\n"
        "  - 川AF058Y\n  - {plate: 'ab-451-ej', note: case 12}\n", encoding="utf-8")
    HotlistRepository(store).put(Hotlist.model_validate(
        {"name": "stolen", "severity": "high", "entries": [{"plate": "川AF058Y", "note": "stolen 5/1"}]}))
    book = HotlistBook(HotlistsConfig(files=(listfile,)), store)
    assert book.refresh(force=True)
    hits = {(h.name, e.plate, m.kind) for h, e, m in book.match("川AF05BY")}
    assert hits == {("wanted", "川AF058Y", "confusion"), ("stolen", "川AF058Y", "confusion")}
    assert book.lists["wanted"].entries[1].plate == "AB451EJ"  # normalised on load
    assert not book.refresh()  # not due yet
    HotlistRepository(store).put(Hotlist.model_validate({"name": "wanted", "entries": ["粤B12345"]}))
    book.refresh(force=True)
    assert [e.plate for e in book.lists["wanted"].entries] == ["粤B12345"]  # the store wins over the file
