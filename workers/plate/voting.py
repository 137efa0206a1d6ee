"""Character-level, confidence-weighted voting over the plate reads of one vehicle track.

The rule (``vote``), for the reads of one track that passed ``min_read_confidence``:

1. **Length.** Reads are grouped by text length; each group weighs the sum of its reads' confidences.
   The heaviest group wins (ties: more reads, then the longer text). A read of another length (a
   missed or an extra character) cannot be aligned position by position, so it only votes for its
   length; it never contributes characters.
2. **Characters.** Within the winning group, position by position, each read votes for its character
   with that character's confidence. The character with the largest summed confidence wins (ties: the
   character of the more confident read).
3. **Confidence.** A position's confidence is ``share x mean``: the winner's share of all confidence
   cast at that position, times the mean confidence of the reads that voted for it (a single read keeps
   its own values). The read's confidence is the geometric mean of the positions' confidences (as the
   reader defines it) times the winning length group's share of the total weight.
4. **Evidence.** The plate crop, box and time come from the most confident read whose text equals the
   voted text, else the most confident read of the winning group.

A track keeps at most ``max_reads`` reads (the most confident). ``TrackPlates`` also remembers what was
published (revision, text, confidence) so the worker re-publishes only a better read; see
:mod:`workers.plate.state` for how that survives a restart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PlateObservation:
    """One plate read from one crop of a vehicle track."""

    object_id: str
    sequence: int
    captured_at: datetime
    text: str
    char_confidences: tuple[float, ...]
    confidence: float
    plate_box: tuple[float, float, float, float]
    crop_key: str
    object_key: str
    kind: str = "other"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["captured_at"] = self.captured_at.isoformat()
        return data


@dataclass(frozen=True)
class Vote:
    """The voted plate of a track."""

    text: str
    char_confidences: tuple[float, ...]
    confidence: float
    votes: int
    evidence: PlateObservation


def _length_group(reads: Sequence[PlateObservation]) -> tuple[list[PlateObservation], float]:
    groups: dict[int, list[PlateObservation]] = defaultdict(list)
    for read in reads:
        groups[len(read.text)].append(read)
    total = sum(r.confidence for r in reads)
    length = max(groups, key=lambda n: (sum(r.confidence for r in groups[n]), len(groups[n]), n))
    group = groups[length]
    share = sum(r.confidence for r in group) / total if total > 0 else 1.0 / len(groups)
    return group, share


def _position(group: Sequence[PlateObservation], i: int) -> tuple[str, float]:
    weight: dict[str, float] = defaultdict(float)
    supporters: dict[str, int] = defaultdict(int)
    best_read: dict[str, float] = defaultdict(float)
    for read in group:
        ch, conf = read.text[i], read.char_confidences[i]
        weight[ch] += conf
        supporters[ch] += 1
        best_read[ch] = max(best_read[ch], read.confidence)
    winner = max(weight, key=lambda ch: (weight[ch], best_read[ch], ch))
    cast = sum(weight.values())
    share = weight[winner] / cast if cast > 0 else 1.0 / len(weight)
    mean = weight[winner] / supporters[winner]
    return winner, share * mean


def vote(reads: Sequence[PlateObservation]) -> Vote | None:
    """The voted plate of ``reads`` (see the module docstring), or None without reads."""
    if not reads:
        return None
    group, group_share = _length_group(reads)
    chars, confs = [], []
    for i in range(len(group[0].text)):
        ch, conf = _position(group, i)
        chars.append(ch)
        confs.append(conf)
    text = "".join(chars)
    geometric = math.exp(sum(math.log(max(c, 1e-9)) for c in confs) / len(confs))
    agreeing = [r for r in group if r.text == text] or list(group)
    evidence = max(agreeing, key=lambda r: (r.confidence, r.sequence))
    return Vote(
        text=text,
        char_confidences=tuple(round(min(1.0, max(0.0, c)), 4) for c in confs),
        confidence=round(min(1.0, geometric * group_share), 4),
        votes=len(group),
        evidence=evidence,
    )


@dataclass
class TrackPlates:
    """Reads and publication state of one vehicle track (see the module docstring)."""

    track_id: str
    camera_id: str
    reads: list[PlateObservation] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # object IDs already counted (redeliveries are ignored)
    revision: int = -1  # last published revision; -1 = nothing published yet
    published_text: str = ""
    published_confidence: float = 0.0
    alias_of: str | None = None  # set when this track was found to be a duplicate of an earlier one
    last_seen: datetime | None = None
    alerted: set[str] = field(default_factory=set)  # IDs of the hotlist alerts already raised for this track

    def add(self, read: PlateObservation | None, object_id: str, when: datetime, max_reads: int) -> bool:
        """Count one crop (``read`` None: no plate found in it). False when the crop was already counted."""
        if object_id in self.seen:
            return False
        self.seen.add(object_id)
        self.last_seen = when if self.last_seen is None else max(self.last_seen, when)
        if read is not None:
            self.reads.append(read)
            self.reads.sort(key=lambda r: (-r.confidence, r.sequence))
            del self.reads[max_reads:]
        return True

    def is_better(self, voted: Vote, min_improvement: float) -> bool:
        """Worth publishing: nothing published yet, a different text, or a clearly higher confidence."""
        return (
            self.revision < 0
            or voted.text != self.published_text
            or voted.confidence >= self.published_confidence + min_improvement
        )

    def published(self, voted: Vote) -> int:
        """Record that ``voted`` goes out as the next revision; returns that revision."""
        self.revision += 1
        self.published_text, self.published_confidence = voted.text, voted.confidence
        return self.revision

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "camera_id": self.camera_id,
            "reads": [r.to_dict() for r in self.reads],
            "seen": sorted(self.seen),
            "revision": self.revision,
            "published_text": self.published_text,
            "published_confidence": self.published_confidence,
            "alias_of": self.alias_of,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "alerted": sorted(self.alerted),
        }
