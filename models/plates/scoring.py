"""Ranking plate reads: every reading of one plate scores every candidate text, and the score is a probability.

One plate is read several times — as one line and, when squarish, as two rows; from the detector's corners and
from the whole crop; optionally from slightly different rectifications (``views``). The constrained Viterbi
decoder (:mod:`models.plates.ctc`) proposes candidate texts from each reading; here each candidate is scored
against *all* readings:

1. **Likelihood.** ``ll(t)`` = log of the mean over readings of P(t | reading), each by the CTC forward algorithm
   (all alignments, not only the best path). A mixture, so one bad reading (a wrong quadrilateral, the two-row
   split of a one-row plate) cannot veto a text the others read well.
2. **Neighbours.** Besides the proposals, every text one character away from the best proposal (within its
   template's allowed characters) is scored, so that each position has its alternatives on the table.
3. **Calibration.** ``score(t) = weight × ll(t) + Σ prior[region][c] over the characters c of t``: a scale (an
   inverse temperature) and a per-character log-prior per plate region, which corrects the recogniser's known
   biases (PP-OCRv4 reads Argentinian ``Q`` as ``O`` and ``W`` as ``H``: it rarely saw them). Both are fitted on
   the dev set by ``benchmarks/models/plate_calibration.py`` (nested, grouped k-fold; figures in
   docs/models.md) and shipped as JSON beside this module; without a file the weight is 1 and the priors 0.
4. **Confidence.** The softmax of the scores over the candidates is the posterior of each text; the read's
   confidence is the winner's posterior (the probability that the whole plate is right, which is what the
   calibration error is measured on). A character's confidence is the winner's posterior against the
   candidates that differ from it at that position only.
5. **Errors the recogniser does not show.** Some misreads carry no doubt in the recogniser's own probabilities
   (PP-OCRv4 reads an Argentinian ``W`` as a sure ``H``); priors can only correct the biases seen in the fit. So
   each character is also wrong, unseen, with a small probability ``char_error`` (η), and the read's confidence is
   the posterior × (1 − η)^n for n characters (each character's × (1 − η)). η is fitted on reads held out from the
   fit of the weight and priors (:func:`models.plates.fit.fit_char_error`), never on the reads it is applied to
   in the figures (η = 0.00167 shipped: a sure 7-character read is reported at 0.988, not 1.00).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.plates.ctc import TextRead, ctc_log_likelihood
from models.plates.grammar import Pattern

logger = logging.getLogger(__name__)

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"
MAX_CANDIDATES = 512


@dataclass(frozen=True)
class PlateCalibration:
    """The fitted scale and per-region character priors (see the module docstring)."""

    weight: float = 1.0
    priors: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = "uncalibrated"
    char_error: float = 0.0

    def ceiling(self, length: int) -> float:
        """The most a read of ``length`` characters can be trusted: (1 − η)^length."""
        return float((1.0 - self.char_error) ** length)

    def prior(self, region: str, text: str) -> float:
        table = self.priors.get(region, {})
        return float(sum(table.get(ch, 0.0) for ch in text))

    def to_dict(self) -> dict[str, object]:
        return {"weight": self.weight, "char_error": self.char_error,
                "priors": {r: dict(p) for r, p in self.priors.items()}, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PlateCalibration:
        weight = float(data.get("weight", 1.0))  # type: ignore[arg-type]
        char_error = float(data.get("char_error", 0.0))  # type: ignore[arg-type]
        raw = data.get("priors", {})
        if not isinstance(raw, Mapping) or not 0.0 < weight <= 10.0 or not 0.0 <= char_error < 0.5:
            msg = ("plate calibration: 'weight' must be in (0, 10], 'char_error' in [0, 0.5) and 'priors' a mapping "
                   "region -> {char: log-prior}")
            raise ValueError(msg)
        priors = {
            str(region): {str(ch): float(np.clip(v, -5.0, 5.0)) for ch, v in table.items()}
            for region, table in raw.items()
        }
        return cls(weight=weight, priors=priors, source=str(data.get("source", "")), char_error=char_error)

    @classmethod
    def load(cls, path: Path | None = None) -> PlateCalibration:
        """The calibration in ``path`` (default: the shipped file); uncalibrated when there is none."""
        path = path or CALIBRATION_FILE
        if not path.is_file():
            logger.info("no plate calibration at %s: confidences are uncalibrated posteriors", path)
            return cls()
        if path.stat().st_size > 1_000_000:
            msg = f"plate calibration {path} is larger than 1 MB"
            raise ValueError(msg)
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Candidates:
    """Candidate texts of one plate with their pattern, log-likelihood and (after calibration) score."""

    texts: tuple[str, ...]
    patterns: tuple[Pattern, ...]
    log_likelihood: np.ndarray

    def scores(self, calibration: PlateCalibration) -> np.ndarray:
        priors = np.array(
            [calibration.prior(p.region, t) for t, p in zip(self.texts, self.patterns, strict=True)], dtype=np.float64
        )
        return calibration.weight * self.log_likelihood + priors


def mixture_log_likelihood(folded: Sequence[np.ndarray], texts: Sequence[str], alphabet_index: Mapping[str, int],
                           blank: int) -> np.ndarray:
    """log mean_r P(text | reading r) for each text (see the module docstring); ``folded`` are log-probabilities."""
    out = np.full(len(texts), -np.inf)
    by_length: dict[int, list[int]] = {}
    for i, text in enumerate(texts):
        by_length.setdefault(len(text), []).append(i)
    for length, rows in by_length.items():
        if length == 0:
            continue
        labels = np.array([[alphabet_index[ch] for ch in texts[i]] for i in rows], dtype=np.int64)
        per_reading = np.stack([ctc_log_likelihood(f, labels, blank) for f in folded])
        peak = per_reading.max(axis=0)
        safe = np.where(np.isfinite(peak), peak, 0.0)
        mean = np.log(np.exp(per_reading - safe).mean(axis=0)) + safe
        out[rows] = np.where(np.isfinite(peak), mean, -np.inf)
    return out


def neighbours(text: str, pattern: Pattern) -> list[str]:
    """Every text that differs from ``text`` in one position, with a character ``pattern`` allows there."""
    return [text[:i] + ch + text[i + 1 :] for i, allowed in enumerate(pattern.positions) for ch in allowed
            if ch != text[i]]


def gather(folded: Sequence[np.ndarray], proposals: Sequence[TextRead], alphabet: str) -> Candidates | None:
    """The proposals (grammar-valid only) and the neighbours of the most likely one, with their likelihoods."""
    index = {ch: i for i, ch in enumerate(alphabet)}
    found: dict[str, Pattern] = {}
    for read in proposals:
        if read.pattern is not None and read.text and read.text not in found:
            found[read.text] = read.pattern
    if not found:
        return None
    texts = list(found)
    ll = mixture_log_likelihood(folded, texts, index, len(alphabet))
    best = texts[int(np.argmax(ll))]
    extra = [t for t in neighbours(best, found[best]) if t not in found][: MAX_CANDIDATES - len(texts)]
    if extra:
        ll = np.concatenate([ll, mixture_log_likelihood(folded, extra, index, len(alphabet))])
        texts += extra
        found.update(dict.fromkeys(extra, found[best]))
    return Candidates(tuple(texts), tuple(found[t] for t in texts), ll)


def choose(candidates: Candidates, calibration: PlateCalibration) -> TextRead:
    """The most probable candidate with its posterior and per-character confidences (module docstring)."""
    scores = candidates.scores(calibration)
    order = int(np.argmax(scores))
    posterior = np.exp(scores - scores[order])
    total = float(posterior.sum())
    text = candidates.texts[order]
    char_conf = []
    for i in range(len(text)):
        rivals = sum(
            float(posterior[k]) for k, other in enumerate(candidates.texts)
            if len(other) == len(text) and other[i] != text[i] and _same_elsewhere(other, text, i)
        )
        char_conf.append((1.0 - calibration.char_error) / (1.0 + rivals))
    log_prob = float(candidates.log_likelihood[order])
    return TextRead(text, tuple(char_conf), log_prob, cost=0.0, pattern=candidates.patterns[order],
                    posterior=calibration.ceiling(len(text)) / total)


def _same_elsewhere(other: str, text: str, position: int) -> bool:
    return other[:position] == text[:position] and other[position + 1 :] == text[position + 1 :]
