"""Look-alike plate characters: which characters a plate reader confuses, and what substituting them costs.

One table serves hotlist matching (:mod:`workers.plate.matching`, a weighted edit distance) and plate search
("include look-alikes", :mod:`pipeline.search.service`): a read that differs from the true plate only by
look-alikes (``AB451EJ`` for ``AB45IEJ``) is found by both.

* **Groups** are equivalence classes of characters (default :data:`DEFAULT_GROUPS`: ``0ODQ``, ``1IT``, ``2Z``,
  ``5S``, ``6G``, ``8B``, ``MNWH``, ``UVY``, ``EF``). Two texts are look-alikes when they are equal after every
  character is replaced by its group's first character (:meth:`LookAlikes.canonical`) — an SQL ``translate``.
* **Costs** of substituting two characters of one group (for the weighted distance) are *measured* where the dev
  set gives evidence: ``benchmarks/models/plate_confusions.py`` counts how often the plate reader's ranked
  candidates put probability on one character where the label has the other (soft counts over every position
  of every labelled dev plate) and turns the pair's probability ``p`` into ``cost = clip(ln p / ln 0.001,
  0.1, 1)`` — 0.1 for a coin flip, 0.33 at 1 in 10, 0.67 at 1 in 100, 1 (an ordinary edit) at 1 in 1000.
  The result ships as ``lookalikes.json`` beside this module. Pairs without evidence in the dev set (``0/O``,
  ``8/B`` ...: letter/digit pairs that the plate grammar keeps apart inside one template, though they differ
  between formats and regions) cost the configured ``confusion_cost``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_GROUPS: tuple[str, ...] = ("0ODQ", "1IT", "2Z", "5S", "6G", "8B", "MNWH", "UVY", "EF")
MEASURED_FILE = Path(__file__).resolve().parent / "lookalikes.json"
MIN_COST = 0.1
REFERENCE_P = 1e-3


def cost_from_probability(p: float) -> float:
    """The substitution cost of a confusion the reader makes with probability ``p`` (module docstring)."""
    if p <= 0:
        return 1.0
    return min(1.0, max(MIN_COST, math.log(p) / math.log(REFERENCE_P)))


def pair_key(a: str, b: str) -> str:
    return "".join(sorted((a, b)))


def load_measured(path: Path | None = None) -> dict[str, float]:
    """Measured pair costs (``{"0O": 0.2, ...}``) from ``path`` (default: the shipped file); {} without one."""
    path = path or MEASURED_FILE
    if not path.is_file():
        return {}
    if path.stat().st_size > 1_000_000:
        msg = f"look-alike costs {path} are larger than 1 MB"
        raise ValueError(msg)
    data = json.loads(path.read_text(encoding="utf-8"))
    costs = data.get("costs", {}) if isinstance(data, Mapping) else {}
    return {pair_key(*k): min(1.0, max(MIN_COST, float(v))) for k, v in costs.items() if len(k) == 2}


class LookAlikes:
    """Groups of look-alike characters and the cost of substituting two of them."""

    def __init__(self, groups: Iterable[str] = DEFAULT_GROUPS, confusion_cost: float = 0.25,
                 measured: Mapping[str, float] | None = None) -> None:
        self.groups = tuple(groups)
        self.confusion_cost = float(confusion_cost)
        self._rep = {ch: group[0] for group in self.groups for ch in group}
        self.measured = dict(measured or {})

    @classmethod
    def shipped(cls, groups: Iterable[str] = DEFAULT_GROUPS, confusion_cost: float = 0.25) -> LookAlikes:
        """The groups with the measured costs shipped in ``lookalikes.json``."""
        return cls(groups, confusion_cost, load_measured())

    def canonical(self, text: str) -> str:
        """``text`` with every character replaced by its group's representative."""
        return "".join(self._rep.get(ch, ch) for ch in text)

    def translation(self) -> tuple[str, str]:
        """(from, to) strings for SQL ``translate(text, from, to)`` = :meth:`canonical`."""
        pairs = [(ch, rep) for ch, rep in sorted(self._rep.items()) if ch != rep]
        return "".join(p[0] for p in pairs), "".join(p[1] for p in pairs)

    def confusable(self, a: str, b: str) -> bool:
        return a != b and a in self._rep and self._rep.get(a) == self._rep.get(b)

    def substitution(self, a: str, b: str) -> float:
        if a == b:
            return 0.0
        if not self.confusable(a, b):
            return 1.0
        return self.measured.get(pair_key(a, b), self.confusion_cost)
