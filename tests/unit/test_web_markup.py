"""The single-page UI's markup: every tab is its own section directly under ``<main>``.

A tab section left unclosed swallows the tabs after it, which then never show (the map once hid the KPI and audit
pages this way); the browser tests catch that only as a time-out, this catches it in milliseconds with the cause.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

INDEX = Path(__file__).resolve().parents[2] / "web" / "index.html"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Tabs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tabs: dict[str, list[str]] = {}
        self.buttons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and "tab" in (a.get("class") or "").split():
            self.tabs[a.get("id") or ""] = list(self.stack)
        if tag == "button" and a.get("data-tab"):
            self.buttons.append(a["data-tab"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def test_every_tab_is_a_section_directly_under_main_and_has_a_button() -> None:
    parser = _Tabs()
    parser.feed(INDEX.read_text(encoding="utf-8"))
    parser.close()
    assert parser.stack == [], f"unclosed elements at the end: {parser.stack}"
    assert parser.tabs, "no tab sections found"
    for tab_id, ancestors in parser.tabs.items():
        assert ancestors[-1] == "main", f"{tab_id} is nested inside <{ancestors[-1]}>, not directly under <main>"
    assert sorted(f"tab-{b}" for b in parser.buttons) == sorted(parser.tabs)
