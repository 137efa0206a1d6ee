"""One plate-text rule (schemas.plates.normalise_plate) for hotlists, search, synopsis filters, the API and
OCR reads: the same input gives the same plate everywhere, and what is not plate text is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.plates.grammar import clean_read
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.search.hits import QueryError
from pipeline.search.plates import exact_plate, wildcard_to_like
from pipeline.store.local import LocalStore
from pipeline.synopsis.request import SynopsisRequest
from schemas.plates import PLATE_TEXT_PATTERN, is_plate_text, normalise_plate, plate_text
from tests.unit.test_api_support import T0, FakeAnalyzer, FakeSearch, add_users, login, register_cameras
from workers.api.app import create_app
from workers.api.context import build_context
from workers.plate.hotlists import HotlistEntry

PLATES = [
    # (as typed or read, normalised)
    ("川AF058Y", "川AF058Y"),  # CN, province character first
    ("川a·f058y", "川AF058Y"),  # middle dot, lower case
    ("川A F058Y", "川AF058Y"),  # space
    ("川A\u3000F058Y", "川AF058Y"),  # ideographic space
    ("粤B·D12345", "粤BD12345"),  # 8-character new-energy plate
    ("京AD12345", "京AD12345"),
    ("新H：33327", "新H33327"),  # full-width colon
    ("AA-628-PD", "AA628PD"),  # Latin with dashes
    ("aa 628 pd", "AA628PD"),  # lower case with spaces
    ("AB.451.EJ", "AB451EJ"),  # dots
    ("HML_050", "HML050"),
    ("ab/12/cd", "AB12CD"),
    ("ＡＢ４５１ＥＪ", "AB451EJ"),  # full-width letters and digits
    (" AB451EJ \n", "AB451EJ"),
]
NOT_PLATES = ["", " - ", "AB!12", "川A%F", "AB1é", "X" * 17, "ß12"]


@pytest.mark.parametrize(("raw", "plate"), PLATES)
def test_normalised_the_same_everywhere(raw: str, plate: str) -> None:
    assert normalise_plate(raw) == plate and is_plate_text(plate)
    assert plate_text(raw) == plate  # hotlist entries, `tubeline hotlists`
    assert HotlistEntry(plate=raw).plate == plate
    assert exact_plate(raw) == plate  # search: exact, fuzzy, trajectory
    assert clean_read(raw) == plate  # OCR reads
    if not any(ch.isspace() or ch == "/" for ch in raw):  # a synopsis filter refuses those outright
        window = {"camera_id": "cam-a", "start": T0, "end": T0 + timedelta(hours=1)}
        assert SynopsisRequest(**window, plate=raw).synopsis_id() == SynopsisRequest(**window, plate=plate).synopsis_id()


@pytest.mark.parametrize("raw", NOT_PLATES)
def test_what_is_not_plate_text_is_refused(raw: str) -> None:
    assert not is_plate_text(normalise_plate(raw))
    with pytest.raises(ValueError, match="not plate text"):
        plate_text(raw)
    with pytest.raises(ValueError, match="not plate text"):
        HotlistEntry(plate=raw)
    with pytest.raises(QueryError):
        exact_plate(raw)


@pytest.mark.parametrize(
    ("pattern", "normalised", "like"),
    [("川a*58?", "川A*58?", "川A%58_"), ("aa-*-pd", "AA*PD", "AA%PD"), ("?? 628 ??", "??628??", "__628__"),
     ("ＡＢ＊", "AB*", "AB%")],
)
def test_wildcards_survive_normalising(pattern: str, normalised: str, like: str) -> None:
    assert normalise_plate(pattern) == normalised and wildcard_to_like(pattern) == like


def test_ocr_noise_is_dropped_from_reads_only() -> None:
    assert clean_read("川A'F058Y") == "川AF058Y"  # a bolt read as an apostrophe
    assert normalise_plate("川A'F058Y") == "川A'F058Y" and not is_plate_text("川A'F058Y")


def test_separators_are_outside_the_plate_alphabet() -> None:
    from schemas.plates import PLATE_SEPARATORS

    assert not any(is_plate_text(ch) for ch in PLATE_SEPARATORS) and PLATE_TEXT_PATTERN.startswith("^[0-9A-Z")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, FakeSearch]]:
    store = LocalStore(tmp_path / "store")
    register_cameras(store)
    add_users(store)
    fake = FakeSearch()
    ctx = build_context(TubelineConfig(), store=store, search=fake, face_analyzer_factory=FakeAnalyzer,
                        api=ApiConfig(cache_dir=str(tmp_path / "cache")))
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")
        yield client, fake


@pytest.mark.parametrize(("raw", "plate"), [("AA-628-PD", "AA628PD"), ("川a·f058y", "川AF058Y"),
                                            ("aa 628 pd", "AA628PD")])
def test_api_normalises_before_it_checks(api: tuple[TestClient, FakeSearch], raw: str, plate: str) -> None:
    client, fake = api
    searched = client.get("/api/search/plates", params={"q": raw})
    assert searched.status_code == 200, searched.text
    trajectory = client.get("/api/trajectory/plate", params={"plate": raw, "case": "CASE-2024-0042"})
    assert trajectory.status_code == 200 and trajectory.json()["subject"] == plate
    assert fake.plate_queries == [plate, plate]


def test_api_refuses_what_is_not_a_plate(api: tuple[TestClient, FakeSearch]) -> None:
    client, fake = api
    for raw in ("AB!12", "川A%F", "X" * 17):
        assert client.get("/api/search/plates", params={"q": raw}).status_code == 422
    assert fake.plate_queries == []
