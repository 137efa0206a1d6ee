"""Fitting the plate calibration (:class:`models.plates.scoring.PlateCalibration`) on labelled reads.

The model is log-linear over each plate's candidate texts: ``score(t) = weight × ll(t) + Σ prior[region][c]``,
and the fit maximises the log-posterior of the true text (multinomial logistic regression over the candidate
sets, convex) with an L2 penalty ``strength × Σ prior²`` that keeps the priors near 0 unless the data
insist. Samples whose true text is not among the candidates carry no information about the ranking and are
left out of the fit (they still count as errors when the result is scored).

:func:`cross_validate` reports what the fit is worth on plates it has not seen: folds are grouped by label (the
same plate photographed twice never sits on both sides), and with several ``strengths`` the penalty is chosen
inside each training part by an inner cross-validation (nested), so the outer figure is not tuned on its own
test plates.

The unseen-error rate η (``char_error``, :mod:`models.plates.scoring` step 5) cannot be fitted on the reads the
weight and priors were fitted on: there every read is explained. :func:`fit_char_error` fits it on held-out
reads instead (an inner k-fold inside whatever set is being fitted), by maximising the Bernoulli likelihood of
right and wrong under confidence = posterior × (1 − η)^n.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import logsumexp

from models.plates.scoring import Candidates, PlateCalibration

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One labelled plate: its candidates and the index of the true text among them (None: absent)."""

    candidates: Candidates
    truth: int | None
    group: str


@dataclass(frozen=True)
class Design:
    """The fit's inputs for one sample: log-likelihoods and per-(region, character) counts per candidate."""

    ll: np.ndarray
    counts: np.ndarray
    truth: int | None


def features(samples: Sequence[Sample]) -> tuple[list[tuple[str, str]], list[Design]]:
    """The (region, character) prior columns present in the samples, and each sample's design."""
    columns = sorted({(p.region, ch) for s in samples for t, p in zip(s.candidates.texts, s.candidates.patterns,
                                                                     strict=True) for ch in t})
    index = {c: i for i, c in enumerate(columns)}
    designs = []
    for sample in samples:
        counts = np.zeros((len(sample.candidates.texts), len(columns)))
        for row, (text, pattern) in enumerate(zip(sample.candidates.texts, sample.candidates.patterns, strict=True)):
            for ch in text:
                counts[row, index[(pattern.region, ch)]] += 1.0
        designs.append(Design(np.asarray(sample.candidates.log_likelihood, dtype=np.float64), counts, sample.truth))
    return columns, designs


def _objective(params: np.ndarray, designs: Sequence[Design], strength: float) -> tuple[float, np.ndarray]:
    weight, priors = params[0], params[1:]
    loss, grad = strength * float(priors @ priors), np.concatenate([[0.0], 2.0 * strength * priors])
    for d in designs:
        if d.truth is None:
            continue
        z = weight * d.ll + d.counts @ priors
        finite = np.isfinite(z)
        z = np.where(finite, z, -1e9)
        p = np.exp(z - logsumexp(z))
        loss -= z[d.truth] - logsumexp(z)
        ll = np.where(finite, d.ll, 0.0)
        grad[0] -= ll[d.truth] - p @ ll
        grad[1:] -= d.counts[d.truth] - p @ d.counts
    return loss, grad


def fit(samples: Sequence[Sample], strength: float, source: str = "") -> PlateCalibration:
    """The calibration that maximises the penalised log-posterior of the true texts of ``samples``."""
    columns, designs = features(samples)
    start = np.concatenate([[1.0], np.zeros(len(columns))])
    bounds = [(0.05, 10.0)] + [(-5.0, 5.0)] * len(columns)
    result = minimize(_objective, start, args=(designs, strength), jac=True, method="L-BFGS-B", bounds=bounds)
    priors: dict[str, dict[str, float]] = {}
    for (region, ch), value in zip(columns, result.x[1:], strict=True):
        if abs(value) >= 0.005:
            priors.setdefault(region, {})[ch] = round(float(value), 3)
    return PlateCalibration(weight=round(float(result.x[0]), 4), priors=priors, source=source)


def predict(sample: Sample, calibration: PlateCalibration) -> tuple[int, float]:
    """(index of the chosen candidate, its confidence) under ``calibration``."""
    scores = sample.candidates.scores(calibration)
    best = int(np.argmax(scores))
    ceiling = calibration.ceiling(len(sample.candidates.texts[best]))
    return best, float(ceiling / np.exp(scores - scores[best]).sum())


MAX_CHAR_ERROR = 0.2


def fit_char_error(outcomes: Sequence[tuple[bool, float, int]]) -> float:
    """η maximising the likelihood of held-out (right?, posterior, length) under posterior × (1 − η)^length."""
    if not outcomes:
        return 0.0
    right = np.array([o[0] for o in outcomes], dtype=np.float64)
    posterior = np.array([o[1] for o in outcomes], dtype=np.float64)
    length = np.array([o[2] for o in outcomes], dtype=np.float64)

    def loss(eta: float) -> float:
        q = np.clip(posterior * (1.0 - eta) ** length, 1e-9, 1.0 - 1e-9)
        return float(-(right * np.log(q) + (1.0 - right) * np.log(1.0 - q)).sum())

    result = minimize_scalar(loss, bounds=(0.0, MAX_CHAR_ERROR), method="bounded", options={"xatol": 1e-5})
    return round(float(result.x), 5)


def held_out(samples: Sequence[Sample], strengths: Sequence[float], k: int = 4,
             seed: int = 1) -> list[tuple[bool, float, int]]:
    """(right?, posterior, length of the chosen text) of every sample, predicted by a weight-and-priors fit on the
    other folds (strength chosen inside them; η not applied): what :func:`fit_char_error` is fitted on."""
    return _fold_predictions(samples, k, seed, lambda train: fit(train, choose_strength(train, strengths)))


def _fold_predictions(samples: Sequence[Sample], k: int, seed: int,
                      fitter: Callable[[Sequence[Sample]], PlateCalibration]) -> list[tuple[bool, float, int]]:
    """(right?, confidence, length of the chosen text) of every sample under ``fitter`` applied to the other folds
    (grouped: one plate's photos share a fold)."""
    folds = _folds([s.group for s in samples], k, seed)
    out: list[tuple[bool, float, int]] = [(False, 0.0, 0)] * len(samples)
    for f in range(k):
        train = [s for s, g in zip(samples, folds, strict=True) if g != f]
        if not train:
            continue
        calibration = fitter(train)
        for i, (s, g) in enumerate(zip(samples, folds, strict=True)):
            if g == f:
                chosen, confidence = predict(s, calibration)
                out[i] = (chosen == s.truth, confidence, len(s.candidates.texts[chosen]))
    return out


def fit_all(samples: Sequence[Sample], strengths: Sequence[float], source: str = "") -> PlateCalibration:
    """The calibration to ship: weight and priors fitted on every sample (strength by inner CV, named in the
    source), η on held-out reads of the same samples."""
    strength = choose_strength(samples, strengths)
    calibration = fit(samples, strength, f"{source}, L2 strength {strength}" if source else "")
    return replace(calibration, char_error=fit_char_error(held_out(samples, strengths)))


def _folds(groups: Sequence[str], k: int, seed: int) -> list[int]:
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: n % k for n, i in enumerate(order)}
    return [fold_of[g] for g in groups]


def choose_strength(samples: Sequence[Sample], strengths: Sequence[float], k: int = 4, seed: int = 1) -> float:
    """The penalty whose k-fold (grouped) held-out log-loss is lowest on ``samples``."""
    if len(strengths) == 1:
        return float(strengths[0])
    folds = _folds([s.group for s in samples], k, seed)
    losses = []
    for strength in strengths:
        loss = 0.0
        for f in range(k):
            train = [s for s, g in zip(samples, folds, strict=True) if g != f]
            calibration = fit(train, strength)
            for s, g in zip(samples, folds, strict=True):
                if g == f:
                    chosen, posterior = predict(s, calibration)
                    right = chosen == s.truth
                    loss -= np.log(max(1e-6, posterior if right else 1.0 - posterior))
        losses.append(loss)
    return float(strengths[int(np.argmin(losses))])


def cross_validate(samples: Sequence[Sample], strengths: Sequence[float], k: int = 5,
                   seed: int = 0, char_error: bool = True) -> list[tuple[bool, float]]:
    """(right?, confidence) for every sample, each predicted by a calibration fitted without its fold (η too,
    unless ``char_error`` is False)."""
    def fitter(train: Sequence[Sample]) -> PlateCalibration:
        return fit_all(train, strengths) if char_error else fit(train, choose_strength(train, strengths))

    return [(right, confidence) for right, confidence, _ in _fold_predictions(samples, k, seed, fitter)]
