"""docs/architecture.md stays true: its picture shows every topic and worker, and every path in its
"where does X live" table exists."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from schemas.topics import all_topics
from workers.runner.registry import WORKERS

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
ROOTS = ("schemas/", "pipeline/", "models/", "workers/", "web/", "deploy/", "benchmarks/", "tests/", "docs/")


def _short(topic: str) -> str:
    return topic.removeprefix("tubeline.").removesuffix(".v1")


def _dot_labels() -> list[str]:
    dot = (DOCS / "architecture.dot").read_text(encoding="utf-8")
    return [" ".join(line.split()) for label in re.findall(r'label="([^"]*)"', dot) for line in label.split("\\n")]


def _svg_text() -> str:
    svg = (DOCS / "architecture.svg").read_text(encoding="utf-8")
    return " ".join(" ".join(html.unescape(t).split()) for t in re.findall(r">([^<]+)</text>", svg))


@pytest.mark.parametrize("source", ["dot", "svg"])
def test_picture_shows_every_topic_and_worker(source: str) -> None:
    text = " ".join(_dot_labels()) if source == "dot" else _svg_text()
    missing = [name for name in [*(_short(t.name) for t in all_topics()), *WORKERS] if name not in text]
    assert missing == []


def test_svg_is_generated_from_this_source() -> None:
    """Every label line of the .dot is in the SVG (regenerate it after editing the .dot)."""
    svg = _svg_text()
    assert [line for line in _dot_labels() if line not in svg] == []


def _table_paths() -> list[str]:
    doc = (DOCS / "architecture.md").read_text(encoding="utf-8")
    table = doc[doc.index("## Where does X live"):]
    paths: list[str] = []
    for row in table.splitlines():
        cells = row.split("|")
        if len(cells) < 4 or cells[1].strip() in ("Concern", "---"):
            continue
        base = ""
        for token in re.findall(r"`([^`]+)`", cells[2]):
            if token.startswith(ROOTS):
                paths.append(token)
                base = token if token.endswith("/") else token.rsplit("/", 1)[0] + "/"
            elif base and re.fullmatch(r"[\w.-]+(/|\.py|\.yaml)", token):
                paths.append(base + token)
    return paths


def test_where_does_x_live_names_real_paths() -> None:
    paths = _table_paths()
    assert len(paths) > 60
    assert [p for p in paths if not (REPO / p).exists()] == []
