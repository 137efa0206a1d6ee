"""Plate grammar, constrained CTC decoding and scoring (table-driven), then the installed plate models on
the shared test images. The real-model tests fail (never skip) when models are not installed."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.evaluation import plate_matches
from models.geometry import rectify
from models.plates.ctc import ConstrainedDecoder, greedy_decode
from models.plates.grammar import GrammarError, PlateGrammar, clean_read, parse_template
from models.zoo import ModelZoo

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"


@pytest.mark.parametrize(
    ("text", "regions", "template"),
    [
        ("川AF058Y", ("cn",), "PLXXXXX"),
        ("皖KD01833", ("cn",), "PLEXDDDD"),  # small new-energy
        ("粤B12345D", ("cn",), "PLDDDDDE"),  # large new-energy
        ("京A1234警", ("cn",), "PLXXXX[警学挂港澳领]"),
        ("粤Z1234港", ("cn",), "PLXXXX[警学挂港澳领]"),
        ("沪A1234领", ("cn",), "PLXXXX[警学挂港澳领]"),
        ("224001使", ("cn",), "DDDDDD[使]"),
        ("AB123CD", ("ar",), "AADDDAA"),
        ("ABC123", ("ar",), "AAADDD"),
        ("123ABC", ("ar",), "DDDAAA"),
        ("A123BCD", ("ar",), "ADDDAAA"),
        ("ABC1D23", ("br",), "AAADADD"),
        ("川AO58Y1", ("cn",), None),  # letter O is not used on Chinese plates
        ("川A058Y", ("cn",), None),  # too short
        ("X川A058Y", ("cn",), None),
        ("ABC12", ("ar",), None),
    ],
)
def test_grammar_match(text: str, regions: tuple[str, ...], template: str | None) -> None:
    pattern = PlateGrammar(regions).match(text)
    assert (pattern.template if pattern else None) == template


@pytest.mark.parametrize("bad", ["", "PL[", "PLq", "[]"])
def test_bad_templates_rejected(bad: str) -> None:
    with pytest.raises(GrammarError):
        parse_template(bad)


def test_unknown_region_and_custom_region() -> None:
    with pytest.raises(GrammarError):
        PlateGrammar(("xx",))
    grammar = PlateGrammar(("de",), custom={"de": ["AADDDD", "AAADDD"]})
    assert grammar.match("KA1234") is not None


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("川A·F058Y", "川AF058Y"),
        ("ab 123-cd", "AB123CD"),
        ("ＡＢ１２３", "AB123"),
        ("新H：33327", "新H33327"),
    ],
)
def test_clean_read(raw: str, clean: str) -> None:
    assert clean_read(raw) == clean


@pytest.mark.parametrize(
    ("prediction", "label", "ok"),
    [
        ("川AF058Y", "川AF058Y", True),
        ("川A·F058Y", "川AF058Y", True),
        ("AF058Y", "川AF058Y", False),  # the province character counts
        ("湘A21A42", "?A21A42", True),  # '?' = unreadable in the photo: any character
        ("A21A42", "?A21A42", True),  # ... or omitted when it leads
        ("A21A43", "?A21A42", False),
    ],
)
def test_plate_matches(prediction: str, label: str, ok: bool) -> None:
    assert plate_matches(prediction, label) is ok


VOCAB = ["<blank>", *"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz·川京", " "]


def ctc(frames: list[str | None], noise: float = 0.05) -> np.ndarray:
    probs = np.full((len(frames), len(VOCAB)), noise / len(VOCAB))
    for t, ch in enumerate(frames):
        probs[t, 0 if ch is None else VOCAB.index(ch)] += 1 - noise
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("frames", "text", "template"),
    [
        (["川", None, "A", "·", "F", "0", None, "5", "8", "8", None, "Y"], "川AF058Y", "PLXXXXX"),
        (["A", "B", "C", None, "1", "O", "3"], "ABC103", "AAADDD"),  # O in a digit position → 0
        (["a", "b", "c", "1", "2", "3"], "ABC123", "AAADDD"),  # lower case folds to upper
        (
            ["A", None, "A", "A", "B", "1", "1", None, "1", None, "1"],
            "AAB111",
            "AAADDD",
        ),  # repeats need a blank
    ],
)
def test_constrained_decoder(frames: list[str | None], text: str, template: str) -> None:
    decoder = ConstrainedDecoder(VOCAB, PlateGrammar(("cn", "ar")))
    best = decoder.decode(ctc(frames))[0]
    assert (best.text, best.pattern.template if best.pattern else None) == (text, template)
    assert len(best.char_confidence) == len(text)
    assert 0.0 < best.confidence <= 1.0


def test_greedy_decode_merges_repeats() -> None:
    assert greedy_decode(ctc(["A", "A", None, "A", "1"]), VOCAB).text == "AA1"


# -- installed models --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recognizer():  # noqa: ANN201
    return ModelZoo().plate_recognizer()


def _labels(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_cn_scenes_and_crops_read_exactly(recognizer) -> None:  # noqa: ANN001
    folder = TESTDATA / "plates" / "cn"
    for row in _labels(folder):
        plates = recognizer.recognize(cv2.imread(str(folder / row["file"])))
        texts = [str(t) for t in plates.data["text"]]
        for label in row["plates"].split(";"):
            assert any(plate_matches(t, label) for t in texts), (row["file"], label, texts)
        assert plates.source == "clp-det@1+ppocr-v4-rec@1"
        assert plates.data["corners"].shape == (len(plates), 4, 2)
        assert all(len(c) == len(t) for c, t in zip(plates.data["char_confidence"], texts, strict=True))


def test_latin_crops_floor(recognizer) -> None:  # noqa: ANN001
    """At least the measured 72 of 74 (2026-12-02: equal-rows two-row reading and character band, the shipped
    calibration file; docs/models.md)."""
    folder = TESTDATA / "plates" / "latin"
    rows = _labels(folder)
    hits, wrong = 0, []
    for row in rows:
        plates = recognizer.recognize(cv2.imread(str(folder / row["file"])), mode="crop")
        assert len(plates) == 1
        right = plate_matches(str(plates.data["text"][0]), row["plates"])
        hits += right
        if not right:
            wrong.append(float(plates.data["text_confidence"][0]))
    assert len(rows) == 74
    assert hits >= 72, f"{hits}/{len(rows)}"
    # no wrong read claims 0.99: the shipped unseen-error rate caps a 7-character read near 0.99 (docs/models.md)
    assert all(c < 0.99 for c in wrong), wrong


def test_vehicle_regions_link_to_parent(recognizer) -> None:  # noqa: ANN001
    from pipeline.core import Detections

    image = cv2.imread(str(TESTDATA / "plates" / "cn" / "dataset_0.jpg"))
    vehicles = Detections(
        xyxy=[[300, 100, 640, 480], [0, 0, 100, 100]], confidence=[0.9, 0.8], class_id=[7, 2]
    )
    plates = recognizer.recognize(image, regions=vehicles)
    assert [str(t) for t in plates.data["text"]] == ["川AF058Y"]
    assert plates.data["parent_index"].tolist() == [0]


def test_two_row_plate(recognizer) -> None:  # noqa: ANN001
    """A two-row plate made from a real one-row plate: province+letter on top, the rest below."""
    crop = cv2.imread(str(TESTDATA / "plates" / "cn" / "crop_0.jpg"))  # 津B·6H920, 104×54
    h, w = crop.shape[:2]
    top = cv2.resize(crop[:, : int(w * 0.3)], (90, 40))
    bottom = cv2.resize(crop[:, int(w * 0.36) :], (200, 70))
    plate = np.full((120, 220, 3), 0, np.uint8)
    plate[:] = crop[2:6, 2:6].mean(axis=(0, 1))
    plate[5:45, 65:155] = top
    plate[45:115, 10:210] = bottom
    reader = recognizer.reader
    quad = np.float32([[0, 0], [220, 0], [220, 120], [0, 120]])
    assert rectify(plate, quad, 220, 120).shape == (120, 220, 3)
    assert reader.read_quad(plate, quad).text == "津B6H920"



def test_two_equal_rows_motorcycle_plate(recognizer) -> None:  # noqa: ANN001
    """The dev set's Argentinian motorcycle plate (382 over EMY, rows of equal height): with only the Chinese
    two-row split (a short top row) it was read 皖L3829Y; the equal-rows reading gets it."""
    crop = cv2.imread(str(TESTDATA / "plates" / "latin" / "bench_night_143352_20.png"))
    plates = recognizer.recognize(crop, mode="crop")
    assert [str(t) for t in plates.data["text"]] == ["382EMY"]


def test_character_band_finds_the_characters_not_the_frame() -> None:
    """A plate 100 px tall: a thick frame at the top and bottom, bolts, and a row of characters in rows 40-70. The
    band holds the characters (with a margin) and leaves the frame out."""
    from models.plates.reader import character_band

    plate = np.full((100, 300, 3), 230, np.uint8)
    plate[:8] = plate[-8:] = 20  # frame: horizontal edges only
    cv2.circle(plate, (20, 20), 5, (20, 20, 20), -1)  # a bolt
    for i, ch in enumerate("ABC123"):
        cv2.putText(plate, ch, (20 + 45 * i, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (20, 20, 20), 4)
    top, bottom = character_band(plate)
    assert 25 <= top <= 42 and 68 <= bottom <= 85, (top, bottom)
    assert character_band(np.full((50, 120), 128, np.uint8))[1] <= 50  # flat: a band inside the image, no error
