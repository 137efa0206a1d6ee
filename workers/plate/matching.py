"""Fuzzy plate matching: a weighted edit distance that forgives OCR confusions, and an index over hotlists.

**Distance.** Levenshtein distance on normalised plate text (upper case, no separators) where inserting,
deleting or substituting a character costs 1, except that substituting two characters of one *confusion
group* (``0/O/D/Q``, ``1/I/T``, ``2/Z``, ``5/S``, ``6/G``, ``8/B``, ``M/N/W/H``, ``U/V/Y``, ``E/F`` by default;
:mod:`pipeline.lookalikes`) costs that pair's cost measured from the plate reader's own errors, or
``confusion_cost`` (0.25 by default) where nothing was measured. With the default ``max_cost`` of 1, a read matches an entry when they are equal
(``exact``), differ only by confusions — up to four of them (``confusion``) — or differ by one ordinary
edit (``edit``: one substitution, a missing or an extra character), and nothing more. A confusion plus
an ordinary edit costs 1.25 and does not match.

**Index.** Hotlists hold up to millions of plates, so a read is not compared with every entry. Entries are
indexed by their *canonical form* (each character replaced by the first character of its confusion group,
so ``AB45IEJ`` and ``A845IEJ`` both become ``A845IEJ``... with ``8B`` → ``8``) and by every form with up to
``floor(max_cost)`` characters deleted (the symmetric-delete scheme of SymSpell). Two strings within one
ordinary edit of each other, after any number of confusions, share at least one such key; each candidate
is then scored exactly with the weighted distance above.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pipeline.lookalikes import LookAlikes

MatchKind = Literal["exact", "confusion", "edit"]


ConfusionTable = LookAlikes
"""The look-alike table (groups and pair costs) lives in :mod:`pipeline.lookalikes`, shared with plate search."""


def weighted_distance(a: str, b: str, table: ConfusionTable, limit: float = float("inf")) -> float:
    """Weighted Levenshtein distance (see the module docstring); ``inf`` as soon as it must exceed ``limit``."""
    if a == b:
        return 0.0
    if abs(len(a) - len(b)) > limit:
        return float("inf")
    previous = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, start=1):
        current = [float(i)] + [0.0] * len(b)
        for j, cb in enumerate(b, start=1):
            current[j] = min(
                previous[j] + 1.0,  # delete ca
                current[j - 1] + 1.0,  # insert cb
                previous[j - 1] + table.substitution(ca, cb),
            )
        if min(current) > limit:
            return float("inf")
        previous = current
    return previous[-1]


def match_kind(read: str, entry: str, table: ConfusionTable) -> MatchKind:
    """``exact`` (equal), ``confusion`` (same length, every difference a confusion) or ``edit``."""
    if read == entry:
        return "exact"
    if len(read) == len(entry) and all(x == y or table.confusable(x, y) for x, y in zip(read, entry, strict=True)):
        return "confusion"
    return "edit"


def deletion_keys(text: str, depth: int) -> set[str]:
    """``text`` and every string made by deleting up to ``depth`` of its characters."""
    keys = {text}
    frontier = {text}
    for _ in range(depth):
        frontier = {s[:i] + s[i + 1 :] for s in frontier for i in range(len(s)) if len(s) > 1}
        keys |= frontier
    return keys


@dataclass(frozen=True)
class Candidate:
    """One hotlist entry as the index holds it: which list, the plate, and an opaque payload."""

    list_name: str
    plate: str
    payload: object = None


@dataclass(frozen=True)
class Match:
    """A read that matched an entry: the entry, the weighted cost and the kind of match."""

    candidate: Candidate
    read: str
    cost: float
    kind: MatchKind


class PlateIndex:
    """Symmetric-delete index over hotlist entries; ``match(read)`` gives the best entry of each list."""

    def __init__(self, candidates: Sequence[Candidate], table: ConfusionTable, max_cost: float = 1.0) -> None:
        self.table = table
        self.max_cost = float(max_cost)
        self.depth = int(self.max_cost)  # ordinary edits allowed; each deletion key covers one
        self.candidates = tuple(candidates)
        self._keys: dict[str, list[int]] = defaultdict(list)
        for number, candidate in enumerate(self.candidates):
            for key in deletion_keys(table.canonical(candidate.plate), self.depth):
                self._keys[key].append(number)

    def __len__(self) -> int:
        return len(self.candidates)

    def lookup(self, read: str) -> list[Match]:
        """Every entry within ``max_cost`` of ``read``, cheapest first."""
        numbers = set(
            itertools.chain.from_iterable(
                self._keys.get(key, ()) for key in deletion_keys(self.table.canonical(read), self.depth)
            )
        )
        out = []
        for number in sorted(numbers):
            candidate = self.candidates[number]
            cost = weighted_distance(read, candidate.plate, self.table, self.max_cost)
            if cost <= self.max_cost + 1e-9:
                out.append(Match(candidate, read, cost, match_kind(read, candidate.plate, self.table)))
        out.sort(key=lambda m: (m.cost, m.candidate.list_name, m.candidate.plate))
        return out

    def match(self, read: str) -> list[Match]:
        """The cheapest matching entry of each list (one alert per list), cheapest first."""
        best: dict[str, Match] = {}
        for found in self.lookup(read):
            best.setdefault(found.candidate.list_name, found)
        return list(best.values())
