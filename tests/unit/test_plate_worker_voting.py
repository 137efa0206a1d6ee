"""Plate voting across a track's reads, the per-track publication state and the bounded track table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.store.local import LocalStore
from pipeline.tracking.table import TrackTable
from workers.plate.state import PlateStateStore
from workers.plate.voting import PlateObservation, TrackPlates, vote

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def read(text: str, confs: list[float] | float, seq: int = 0) -> PlateObservation:
    chars = tuple(confs) if isinstance(confs, list) else (confs,) * len(text)
    confidence = 1.0
    for c in chars:
        confidence *= c
    confidence = confidence ** (1 / len(chars))
    return PlateObservation(
        object_id=f"o{seq}", sequence=seq, captured_at=T0 + timedelta(seconds=seq), text=text, char_confidences=chars,
        confidence=round(confidence, 4), plate_box=(1.0, 2.0, 3.0, 4.0), crop_key=f"plates/c/{seq}.jpg",
        object_key=f"crops/c/{seq}.jpg", kind="blue",
    )


@pytest.mark.parametrize(
    ("reads", "text", "votes"),
    [
        ([read("川AF058Y", 0.9)], "川AF058Y", 1),
        # one confusion outvoted, position by position
        ([read("湘A0PQ76", 0.8, 1), read("湘A0P076", 0.8, 2), read("湘A0PQ76", 0.7, 3)], "湘A0PQ76", 3),
        # a confident single read beats two weak ones at the disputed position only
        ([read("AB451EJ", [0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9], 1), read("AB45IEJ", [0.9, 0.9, 0.9, 0.9, 0.15, 0.9, 0.9], 2),
          read("AB45IEJ", [0.9, 0.9, 0.9, 0.9, 0.1, 0.9, 0.9], 3), read("AB451EJ", 0.95, 4)], "AB451EJ", 4),
        # a read that missed the province character only votes for its length
        ([read("AF058Y", 0.99, 1), read("川AF058Y", 0.7, 2), read("川AF058Y", 0.6, 3)], "川AF058Y", 2),
        ([read("AF058Y", 0.99, 1), read("川AF058Y", 0.4, 2)], "AF058Y", 1),
        # characters from different reads combine when each read is wrong somewhere else
        ([read("皖KDD1833", [0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9], 1),
          read("皖KD01833", [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.4], 2),
          read("皖KD01838", [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.3], 3)], "皖KD01833", 3),
    ],
)
def test_vote_table(reads: list[PlateObservation], text: str, votes: int) -> None:
    voted = vote(reads)
    assert voted is not None
    assert voted.text == text
    assert voted.votes == votes
    assert len(voted.char_confidences) == len(text)
    assert 0 < voted.confidence <= 1


def test_single_read_keeps_its_confidences_and_evidence() -> None:
    only = read("AB451EJ", [0.9, 0.8, 0.95, 0.99, 0.7, 0.9, 0.9], 7)
    voted = vote([only])
    assert voted is not None
    assert voted.char_confidences == only.char_confidences
    assert voted.confidence == pytest.approx(only.confidence, abs=1e-4)
    assert voted.evidence is only


def test_disagreement_lowers_confidence_and_evidence_agrees_with_the_vote() -> None:
    agree = [read("湘A0PQ76", 0.8, 1), read("湘A0PQ76", 0.8, 2)]
    disputed = [*agree, read("湘A0P076", 0.95, 3)]
    clean, mixed = vote(agree), vote(disputed)
    assert clean is not None and mixed is not None
    assert mixed.text == "湘A0PQ76"
    assert mixed.char_confidences[4] < clean.char_confidences[4]  # the disputed position
    assert mixed.evidence.text == "湘A0PQ76"  # never the dissenting read, even though it is more confident
    assert vote([]) is None


def test_track_counts_each_crop_once_and_keeps_the_best_reads() -> None:
    track = TrackPlates("cam:s:1", "cam")
    assert track.add(read("AB451EJ", 0.5, 1), "o1", T0, max_reads=2)
    assert not track.add(read("AB451EJ", 0.5, 1), "o1", T0, max_reads=2)  # redelivered
    assert track.add(None, "o2", T0 + timedelta(seconds=1), max_reads=2)  # a crop without a plate
    assert track.add(read("AB451EJ", 0.9, 3), "o3", T0, max_reads=2)
    assert track.add(read("AB451EJ", 0.7, 4), "o4", T0, max_reads=2)
    assert [r.sequence for r in track.reads] == [3, 4]
    assert track.last_seen == T0 + timedelta(seconds=1)


def test_publication_rule_and_revisions() -> None:
    track = TrackPlates("cam:s:1", "cam")
    first = vote([read("AB451EJ", 0.8)])
    assert first is not None and track.is_better(first, 0.02)
    assert track.published(first) == 0
    same = vote([read("AB451EJ", 0.81)])
    assert same is not None and not track.is_better(same, 0.02)
    better = vote([read("AB451EJ", 0.9)])
    assert better is not None and track.is_better(better, 0.02)
    assert track.published(better) == 1
    other = vote([read("AB451EI", 0.5)])
    assert other is not None and track.is_better(other, 0.02)  # a changed text always goes out


def test_state_round_trips_through_the_store(tmp_path: Path) -> None:
    saved = PlateStateStore(LocalStore(tmp_path), "state/plate")
    track = TrackPlates("cam-1:s1:7", "cam-1")
    track.add(read("川AF058Y", 0.9, 1), "o1", T0, max_reads=4)
    voted = vote(track.reads)
    assert voted is not None
    track.published(voted)
    track.alerted.add("abc")
    saved.save(track)
    again = saved.load("cam-1", "cam-1:s1:7")
    assert again is not None
    assert again.to_dict() == track.to_dict()
    assert again.revision == 0 and again.reads == track.reads
    assert saved.load("cam-1", "cam-1:s1:8") is None


def test_track_table_is_bounded_by_count_and_idle_time() -> None:
    table: TrackTable[TrackPlates] = TrackTable(lambda cam, tid: TrackPlates(tid, cam), max_tracks=3, idle_s=60)
    for n in range(4):
        state = table.get("cam", f"t{n}")
        state.last_seen = T0 + timedelta(seconds=n)
    assert len(table) == 3 and "t0" not in table  # least recently used went first
    table.get("cam", "t1")  # t1 is now the most recent, t2 the least
    table.get("other", "x").last_seen = T0
    assert len(table) == 3 and "t2" not in table
    table.observe("cam", T0 + timedelta(seconds=62.5))
    table.observe("other", T0)
    assert table.evict_idle() == 1  # t1 (idle 61.5 s > 60); t3 is 59.5 s old; the other camera is current
    assert "t3" in table and "x" in table and "t1" not in table
    assert table.evicted == 3


def test_a_bad_state_object_is_refused_and_the_track_starts_afresh(tmp_path: Path) -> None:
    """Data only, checked strictly: a pickle, a wrong type deep inside, an unknown version, a naive timestamp,
    another track's state or an oversized object are refused and counted, never fail the worker."""
    store = LocalStore(tmp_path)
    saved = PlateStateStore(store, "state/plate")
    track = TrackPlates("cam-1:s1:7", "cam-1")
    track.add(read("川AF058Y", 0.9, 1), "o1", T0, max_reads=4)
    saved.save(track)
    key = saved.key("cam-1", "cam-1:s1:7")
    good = json.loads(store.get(key))
    assert good["version"] == 1
    legacy = {k: v for k, v in good.items() if k != "version"}  # written before the field existed
    store.put(key, json.dumps(legacy).encode())
    assert saved.load("cam-1", "cam-1:s1:7") is not None and saved.refused == 0

    def edited(**changes: object) -> bytes:
        return json.dumps({**good, **changes}).encode()

    bad = [
        b"\x80\x05\x95\x1e\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.",
        b"[]", b"null", b"{",
        edited(version=2), edited(version=True),
        edited(reads=[{**good["reads"][0], "text": 5}]),
        edited(reads=[{**good["reads"][0], "captured_at": "2026-11-25T08:00:00"}]),
        edited(revision="3"), edited(seen="o1"),
        edited(track_id="cam-1:s1:8"),
        b" " * (1024 * 1024) + json.dumps(good).encode(),
    ]
    for n, data in enumerate(bad, start=1):
        store.put(key, data)
        assert saved.load("cam-1", "cam-1:s1:7") is None, data[:80]
        assert saved.refused == n
