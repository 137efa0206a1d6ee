"""Ranking plate reads: the CTC forward likelihood, candidate scoring, the calibration fit and the ECE."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from models.evaluation import expected_calibration_error
from models.plates.ctc import ctc_log_likelihood
from models.plates.fit import Sample, cross_validate, fit, fit_char_error, predict
from models.plates.grammar import PlateGrammar, parse_template
from models.plates.scoring import Candidates, PlateCalibration, choose, gather, neighbours


def collapse(path: tuple[int, ...], blank: int) -> tuple[int, ...]:
    out, prev = [], None
    for s in path:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return tuple(out)


@pytest.mark.parametrize("labels", [(0,), (0, 1), (1, 1), (2, 0, 2)])
def test_forward_likelihood_equals_sum_over_all_alignments(labels: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(labels))
    steps, classes = 5, 4  # 3 characters + blank (index 3)
    probs = rng.dirichlet(np.ones(classes), size=steps)
    brute = sum(np.prod(probs[np.arange(steps), list(path)])
                for path in itertools.product(range(classes), repeat=steps) if collapse(path, 3) == labels)
    got = ctc_log_likelihood(np.log(probs), np.array([labels]), blank=3)[0]
    assert np.exp(got) == pytest.approx(brute, rel=1e-9)


def test_forward_likelihood_is_minus_inf_when_too_long() -> None:
    probs = np.full((2, 3), 1 / 3)
    assert ctc_log_likelihood(np.log(probs), np.array([[0, 0]]), blank=2)[0] == -np.inf  # needs a blank between


def lattice(text: str, alphabet: str, sure: float, confusions: dict[int, tuple[str, float]] | None = None) -> np.ndarray:
    """Log-probabilities over alphabet + blank: each character for one frame, a blank after it."""
    blank = len(alphabet)
    rows = []
    for i, ch in enumerate(text):
        row = np.full(blank + 1, (1 - sure) / blank)
        row[alphabet.index(ch)] = sure
        if confusions and i in confusions:
            other, share = confusions[i]
            row[alphabet.index(other)] += share
            row[alphabet.index(ch)] -= share
        rows.append(row)
        gap = np.full(blank + 1, 0.001)
        gap[blank] = 1 - 0.001 * blank
        rows.append(gap)
    return np.log(np.clip(np.array(rows), 1e-12, 1))


def test_ranking_scores_neighbours_and_gives_a_posterior() -> None:
    grammar = PlateGrammar(("ar",))
    alphabet = grammar.alphabet
    from models.plates.ctc import TextRead

    pattern = grammar.match("AB451EJ")
    folded = [lattice("AB451EJ", alphabet, 0.9, {6: ("I", 0.35)})]
    candidates = gather(folded, [TextRead("AB451EJ", (0.9,) * 7, 0.0, pattern=pattern)], alphabet)
    assert candidates is not None and "AB451EI" in candidates.texts and len(candidates.texts) > 100
    read = choose(candidates, PlateCalibration())
    assert read.text == "AB451EJ"
    assert 0.3 < read.confidence < 0.8  # J against I at 0.55 : 0.35 plus the other rivals
    assert read.char_confidence[6] < 0.7 < min(read.char_confidence[:6])
    # a prior for I flips the read; the posterior follows
    flipped = choose(candidates, PlateCalibration(priors={"ar": {"I": 1.0}}))
    assert flipped.text == "AB451EI" and flipped.confidence > 0.5


def test_neighbours_stay_inside_the_template() -> None:
    pattern = parse_template("AAADDD", "ar")
    near = neighbours("ABC123", pattern)
    assert len(near) == 3 * 25 + 3 * 9
    assert all(pattern.matches(t) for t in near)


def synthetic_samples(n: int, bias: float, seed: int) -> list[Sample]:
    """Plates whose reader under-rates ``Q`` by ``bias`` nats (a true Q often loses to O), while a true O wins
    clearly: the shape of PP-OCRv4's Q→O errors on Argentinian plates."""
    rng = np.random.default_rng(seed)
    pattern = parse_template("AAADDD", "ar")
    out = []
    for k in range(n):
        has_q = k % 2 == 0
        truth = "QAB123" if has_q else "OAB123"
        rival = "OAB123" if has_q else "QAB123"
        gap = rng.normal(1.0, 0.5)
        ll_truth = -1.0 + gap - bias if has_q else 2.0 + gap
        ll = np.array([ll_truth, -1.0, -6.0])
        texts = (truth, rival, "XAB123")
        out.append(Sample(Candidates(texts, (pattern,) * 3, ll), 0, f"plate{k}"))
    return out


def test_fit_learns_a_character_prior_and_cross_validation_holds_it_out() -> None:
    samples = synthetic_samples(60, bias=2.0, seed=3)
    uncalibrated = np.mean([predict(s, PlateCalibration())[0] == s.truth for s in samples])
    calibration = fit(samples, strength=0.1)
    assert calibration.priors["ar"]["Q"] > calibration.priors["ar"].get("O", 0.0)
    fitted = np.mean([predict(s, calibration)[0] == s.truth for s in samples])
    assert fitted > uncalibrated + 0.2
    held_out = cross_validate(samples, (0.1,), k=3)
    assert len(held_out) == len(samples) and np.mean([ok for ok, _ in held_out]) > uncalibrated + 0.1


def test_unseen_error_rate_caps_sure_reads_and_is_zero_without_errors() -> None:
    # 60 held-out reads the recogniser was sure of (posterior 0.999, 7 characters); 2 of them were wrong
    outcomes = [(k >= 2, 0.999, 7) for k in range(60)]
    eta = fit_char_error(outcomes)
    assert 0.001 < eta < 0.02
    ceiling = PlateCalibration(char_error=eta).ceiling(7)
    assert 0.9 < 0.999 * ceiling < 0.99  # a sure read no longer claims 0.99 when 1 in 30 such reads was wrong
    assert fit_char_error([(True, 0.999, 7)] * 60) < 1e-3  # no error seen: (almost) no cap
    # the cap reaches the read: the plate's posterior and each character's confidence
    pattern = parse_template("AADDDAA", "ar")
    candidates = Candidates(("AB123CD", "AB123CO"), (pattern,) * 2, np.array([0.0, -30.0]))
    plain, capped = choose(candidates, PlateCalibration()), choose(candidates, PlateCalibration(char_error=0.01))
    assert plain.confidence > 0.999 and capped.confidence == pytest.approx(0.99**7, rel=1e-6)
    assert max(capped.char_confidence) <= 0.99 + 1e-9


def test_calibration_file_round_trip_and_bounds(tmp_path) -> None:  # noqa: ANN001
    calibration = PlateCalibration(weight=1.2, priors={"ar": {"Q": 0.3}}, source="test", char_error=0.002)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(calibration.to_dict()))
    assert PlateCalibration.load(path) == calibration
    assert PlateCalibration.load(tmp_path / "missing.json") == PlateCalibration()
    with pytest.raises(ValueError, match="weight"):
        PlateCalibration.from_dict({"weight": 0, "priors": {}})
    with pytest.raises(ValueError, match="char_error"):
        PlateCalibration.from_dict({"weight": 1, "char_error": 0.7, "priors": {}})


@pytest.mark.parametrize(
    ("confidences", "correct", "expected"),
    [
        ([0.99, 0.99, 0.99, 0.99], [True, False, True, False], 0.49),  # confident and half wrong
        ([0.75, 0.75, 0.75, 0.75], [True, True, True, False], 0.0),  # perfectly calibrated
        ([0.05, 0.95], [False, True], 0.05),
        ([], [], 0.0),
    ],
)
def test_expected_calibration_error(confidences: list[float], correct: list[bool], expected: float) -> None:
    assert expected_calibration_error(confidences, correct) == pytest.approx(expected, abs=1e-9)
