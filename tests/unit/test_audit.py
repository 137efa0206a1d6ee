"""The hash-chained audit log: appends, concurrent writers, and verification finding every kind of tampering."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.store.local import LocalStore
from workers.api.audit import GENESIS, AuditLog, canonical, entry_hash, iter_entries, read_heads, tail, verify
from workers.cli import main


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def fill(store: LocalStore, n: int, *, writer: str = "w1", anchor_every: int = 100) -> AuditLog:
    log = AuditLog(store, writer_id=writer, anchor_every=anchor_every)
    for i in range(n):
        log.append({"action": "search.plates", "user": f"user{i % 3}", "params": {"q": f"川A{i:05d}"},
                    "result_count": i, "case": None})
    return log


def entry_path(store: LocalStore, writer: str, seq: int) -> Path:
    return store.root / "audit" / "chains" / writer / f"{seq:012d}.json"


def test_entries_chain_by_hash_and_verify_clean(store: LocalStore) -> None:
    fill(store, 5)
    entries = list(iter_entries(store))
    assert [e["action"] for e in entries] == ["audit.open"] + ["search.plates"] * 5
    assert entries[0]["prev"] == GENESIS
    for before, after in zip(entries, entries[1:], strict=False):
        assert after["prev"] == before["hash"] == entry_hash(before)
    raw = entry_path(store, "w1", 3).read_bytes()
    assert raw == canonical(json.loads(raw))
    report = verify(store)
    assert report.ok and report.entries == 6 and report.chains["w1"][0] == 5
    assert read_heads(store)["w1"]["seq"] == 5


def test_tail_reads_newest_entries_across_chains_with_filters(store: LocalStore) -> None:
    fill(store, 6, writer="a")
    fill(store, 4, writer="b")
    assert len(tail(store, 100)) == 10
    assert [e["params"]["q"] for e in tail(store, 2, user="user0")][-1] == "川A00003"
    assert tail(store, 5, action="search") and not tail(store, 5, action="export")


def flip_byte(path: Path, needle: bytes) -> None:
    """Flip the lowest bit of the byte right after ``needle``."""
    data = path.read_bytes()
    at = data.index(needle) + len(needle)
    path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("flip-value", "content does not match its hash"),
        ("flip-json", "not valid JSON"),
        ("whitespace", "canonical form"),
        ("delete-middle", "missing"),
        ("swap", "entry says"),
        ("truncate-tail", "missing (chain truncated)"),
        ("replace-rehashed", "prev does not match"),
    ],
)
def test_verify_finds_tampering(store: LocalStore, tamper: str, expected: str) -> None:
    fill(store, 6)
    assert verify(store).ok
    target = entry_path(store, "w1", 3)
    if tamper == "flip-value":
        flip_byte(target, b'"user":"user')  # user0 -> user1
    elif tamper == "flip-json":
        flip_byte(target, b'"user":')  # the value's opening quote
    elif tamper == "whitespace":
        target.write_bytes(target.read_bytes().replace(b",", b", ", 1))
    elif tamper == "delete-middle":
        store.delete("audit/chains/w1/000000000003.json")
    elif tamper == "swap":
        other = entry_path(store, "w1", 4)
        a, b = target.read_bytes(), other.read_bytes()
        target.write_bytes(b)
        other.write_bytes(a)
    elif tamper == "truncate-tail":
        store.delete("audit/chains/w1/000000000006.json")
    elif tamper == "replace-rehashed":  # an edit that recomputes the entry's own hash: the next link breaks
        entry = json.loads(target.read_bytes())
        entry["user"] = "nobody"
        entry["hash"] = entry_hash(entry)
        target.write_bytes(canonical(entry))
    report = verify(store)
    assert not report.ok
    assert expected in str(report.problems[0]), report.problems


def test_one_byte_changed_anywhere_fails(store: LocalStore) -> None:
    fill(store, 3)
    for seq in range(4):
        path = entry_path(store, "w1", seq)
        original = path.read_bytes()
        for offset in (0, len(original) // 2, len(original) - 1):
            path.write_bytes(original[:offset] + bytes([original[offset] ^ 0x20]) + original[offset + 1:])
            assert not verify(store).ok, (seq, offset)
        path.write_bytes(original)
    assert verify(store).ok


def test_deleted_chain_and_truncation_are_caught_by_other_chains_anchors(store: LocalStore) -> None:
    fill(store, 4, writer="a")
    fill(store, 2, writer="b")  # b's open entry anchors a's head (seq 4)
    assert verify(store).ok
    for key in [i.key for i in store.list("audit/chains/a/")] + ["audit/heads/a.json"]:
        store.delete(key)
    report = verify(store)
    assert not report.ok and "gone (deleted)" in str(report.problems[0])


def test_truncation_with_rewritten_head_is_caught_by_an_anchor_or_expected_head(store: LocalStore) -> None:
    fill(store, 4, writer="a")
    fill(store, 1, writer="b")  # anchors a at seq 4
    store.delete("audit/chains/a/000000000004.json")
    head = {"writer": "a", "seq": 3, "hash": json.loads(entry_path(store, "a", 3).read_bytes())["hash"], "ts": "x"}
    store.put("audit/heads/a.json", canonical(head))
    report = verify(store)
    assert not report.ok and "anchor names entry a/4" in str(report.problems[0])
    # with a single chain only an externally kept head can tell
    solo = LocalStore(store.root.parent / "solo")
    fill(solo, 3, writer="s")
    last = json.loads(entry_path(solo, "s", 3).read_bytes())["hash"]
    solo.delete("audit/chains/s/000000000003.json")
    solo.put("audit/heads/s.json", canonical({"writer": "s", "seq": 2, "hash": "h", "ts": "x"}))
    assert not verify(solo, expect=[("s", 3, last)]).ok


def test_anchor_every_n_entries_and_close(store: LocalStore) -> None:
    fill(store, 1, writer="other")
    log = fill(store, 5, anchor_every=2)
    log.close()
    actions = [e["action"] for e in iter_entries(store) if e["writer"] == "w1"]
    assert actions.count("audit.anchor") == 2 and actions[-1] == "audit.close"
    anchors = [e for e in iter_entries(store) if e["action"] == "audit.anchor"]
    assert anchors[0]["heads"]["other"]["seq"] == 1
    assert verify(store).ok


def test_concurrent_writers_in_threads_and_replicas(store: LocalStore) -> None:
    replicas = [AuditLog(store, writer_id=f"replica-{i}", anchor_every=7) for i in range(2)]

    def work(log: AuditLog, n: int) -> None:
        for i in range(n):
            log.append({"action": "search.vehicles", "user": "u", "params": {"i": i}})

    threads = [threading.Thread(target=work, args=(replicas[i % 2], 25)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(store)
    assert report.ok, report.problems
    searches = [e for e in iter_entries(store) if e["action"] == "search.vehicles"]
    assert len(searches) == 100
    assert {e["writer"] for e in searches} == {"replica-0", "replica-1"}


def test_cli_verify_exit_codes_and_tail(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(store, 3)
    monkeypatch.setenv("TUBELINE_STORE__LOCAL__ROOT", str(store.root))
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "ok: 4 entries in 1 chain(s)" in ok.output
    head = ok.output.split("head ")[1].strip()
    assert runner.invoke(main, ["audit", "verify", "--expect", head]).exit_code == 0
    shown = runner.invoke(main, ["audit", "tail", "-n", "2", "--json"])
    assert shown.exit_code == 0 and len(shown.output.strip().splitlines()) == 2
    flip_byte(entry_path(store, "w1", 2), b"search.")
    bad = runner.invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "FAILED: audit/chains/w1/000000000002.json" in bad.output
