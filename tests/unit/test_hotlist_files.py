"""Hotlist files (YAML, CSV, JSON), the store repository and the ``tubeline hotlists`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.hotlists import Hotlist, HotlistError, HotlistRepository, load_file
from pipeline.store.local import LocalStore
from schemas.plates import plate_text
from workers.cli import main


@pytest.mark.parametrize(
    ("raw", "plate"),
    [("川A·F058Y", "川AF058Y"), ("ab 451 ej", "AB451EJ"), ("ＡＢ４５１ＥＪ", "AB451EJ"), ("hml-050", "HML050")],
)
def test_plates_are_normalised(raw: str, plate: str) -> None:
    assert plate_text(raw) == plate


@pytest.mark.parametrize("raw", ["", "--", "AB1é", "A" * 17])
def test_non_plates_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="not plate text"):
        plate_text(raw)


def test_yaml_csv_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "lists.yaml"
    yaml_file.write_text(
        "lists:\n"
        "  - {name: stolen, reason: reported stolen, owner: desk 1, severity: critical, entries: [川AF058Y]}\n"
        "  - name: expired\n    entries:\n      - {plate: AB451EJ, note: insurance}\n",
        encoding="utf-8")
    csv_file = tmp_path / "wanted list.csv"
    csv_file.write_text("plate,note,reason\n津B6H920,case 7,warrant\n皖KD01833,,\n", encoding="utf-8")
    multi = tmp_path / "multi.csv"
    multi.write_text("list,plate,severity\na,AD095ZC,low\nb,HML050,\na,AD673AN,\n", encoding="utf-8")
    stolen, expired = load_file(yaml_file)
    assert (stolen.name, stolen.severity, stolen.owner, [e.plate for e in stolen.entries]) == (
        "stolen", "critical", "desk 1", ["川AF058Y"])
    assert expired.severity == "high" and expired.entries[0].note == "insurance"
    (wanted,) = load_file(csv_file)
    assert wanted.name == "wanted-list" and wanted.reason == "warrant"
    assert [(e.plate, e.note) for e in wanted.entries] == [("津B6H920", "case 7"), ("皖KD01833", "")]
    a, b = load_file(multi)
    assert (a.name, a.severity, len(a.entries), b.name, len(b.entries)) == ("a", "low", 2, "b", 1)
    json_file = tmp_path / "x.json"
    json_file.write_text(stolen.model_dump_json(), encoding="utf-8")
    assert load_file(json_file) == [stolen]


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bad.csv", "number,note\n1,x\n", "'plate' column"),
        ("bad.yaml", "name: x\nentries: [AB451EJ, AB451EJ]\n", "listed twice"),
        ("bad2.yaml", "name: 'no spaces allowed'\nentries: []\n", "name"),
        ("bad3.yaml", "- 1\n- 2\n", "hotlist"),
        ("bad.txt", "AB451EJ\n", "unknown hotlist format"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HotlistError, match=problem) as info:
        load_file(path)
    assert name in str(info.value)


def test_repository_round_trip(tmp_path: Path) -> None:
    repo = HotlistRepository(LocalStore(tmp_path), "hotlists")
    repo.put(Hotlist.model_validate({"name": "stolen", "entries": ["川AF058Y"]}))
    assert repo.names() == ["stolen"]
    got = repo.get("stolen")
    assert got.updated_at is not None and got.entries[0].plate == "川AF058Y"
    assert repo.key("stolen") == "hotlists/stolen.json"
    assert repo.delete("stolen") and not repo.delete("stolen") and repo.find("stolen") is None
    with pytest.raises(ValueError, match="invalid hotlist name"):
        repo.key("../etc")


def test_cli_add_import_list_match_rm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUBELINE_STORE__BACKEND", "local")
    monkeypatch.setenv("TUBELINE_STORE__LOCAL__ROOT", str(tmp_path / "store"))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["hotlists", *args])
        assert result.exit_code == code, result.output
        return result.output

    out = run("add", "stolen", "川AF058Y", "AB45IEJ", "--reason", "reported stolen", "--owner", "desk 1",
              "--severity", "critical", "--note", "case 1")
    assert "added 2 plate(s)" in out
    assert "already listed" in run("add", "stolen", "川A-F058Y")
    csv_file = tmp_path / "expired.csv"
    csv_file.write_text("plate,note\nHML050,insurance\n", encoding="utf-8")
    assert "expired: 1 plate(s)" in run("import", str(csv_file))
    rows = [json.loads(line) for line in run("list", "--json").splitlines()]
    assert {(r["name"], r["plates"], r["severity"], r["source"]) for r in rows} == {
        ("stolen", 2, "critical", "store"), ("expired", 1, "high", "store")}
    assert "stolen AB45IEJ confusion" in run("match", "AB451EJ")
    assert "no match" in run("match", "粤B12345", code=1)
    assert "removed 1 plate(s), 1 left" in run("rm", "stolen", "AB45IEJ")
    assert "removed" in run("rm", "expired")
    assert "川AF058Y" in run("show", "stolen")
    assert "no hotlist" in run("rm", "nothing", code=1)
    stored = json.loads((tmp_path / "store" / "hotlists" / "stolen.json").read_text(encoding="utf-8"))
    assert stored["owner"] == "desk 1" and [e["plate"] for e in stored["entries"]] == ["川AF058Y"]
