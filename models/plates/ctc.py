"""CTC decoding for plate text: greedy, and grammar-constrained Viterbi over a plate's templates.

The recogniser emits, per time step, a probability for every vocabulary entry (index 0 is the CTC blank).
The constrained decoder finds the most probable CTC path whose collapsed label sequence fits one of the
grammar's templates, position by position. Before decoding, probabilities are folded onto the grammar's
alphabet: lower case onto upper case, full-width onto ASCII, and separator characters (``·``, ``-`` …) onto
the blank, so a dot between letter and digits never breaks a plate. The price of a constraint is the
log-probability the best constrained path loses against the unconstrained best path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.plates.grammar import SEPARATORS, Pattern, PlateGrammar

NEG = -1e9


@dataclass(frozen=True)
class TextRead:
    """One decoded plate string with its per-character confidence."""

    text: str
    char_confidence: tuple[float, ...]
    log_prob: float
    cost: float = 0.0
    pattern: Pattern | None = None
    posterior: float | None = None  # set by models.plates.scoring: P(the whole text is right)

    @property
    def confidence(self) -> float:
        """The posterior when the read was ranked (:mod:`models.plates.scoring`), else the geometric mean of the
        per-character confidences (0 for an empty read)."""
        if self.posterior is not None:
            return float(self.posterior)
        if not self.char_confidence:
            return 0.0
        return float(np.exp(np.mean(np.log(np.clip(self.char_confidence, 1e-9, 1.0)))))

    @property
    def valid(self) -> bool:
        return self.pattern is not None


def greedy_decode(probs: np.ndarray, vocab: Sequence[str]) -> TextRead:
    """Best path: argmax per step, merge repeats, drop blanks (index 0)."""
    best = probs.argmax(axis=1)
    top = probs[np.arange(len(best)), best]
    chars: list[str] = []
    confs: list[float] = []
    prev = 0
    for index, p in zip(best.tolist(), top.tolist(), strict=True):
        if index != prev and index != 0:
            chars.append(vocab[index])
            confs.append(p)
        elif index == prev and index != 0 and confs:
            confs[-1] = max(confs[-1], p)
        prev = index
    return TextRead("".join(chars), tuple(confs), float(np.log(np.clip(top, 1e-12, 1)).sum()))


class ConstrainedDecoder:
    """Viterbi decoding of CTC outputs restricted to a :class:`PlateGrammar`'s templates."""

    def __init__(self, vocab: Sequence[str], grammar: PlateGrammar) -> None:
        self.vocab = list(vocab)
        self.grammar = grammar
        self.alphabet = grammar.alphabet
        index = {ch: i for i, ch in enumerate(self.alphabet)}
        fold = np.full(len(self.vocab), -1, dtype=np.int64)  # -1: not in alphabet, -2: blank-like
        fold[0] = -2
        for v, ch in enumerate(self.vocab[1:], start=1):
            code = ord(ch[0]) if len(ch) == 1 else 0
            if 0xFF01 <= code <= 0xFF5E:
                ch = chr(code - 0xFEE0)
            if ch in SEPARATORS or ch == " ":
                fold[v] = -2
            elif ch.upper() in index and len(ch) == 1:
                fold[v] = index[ch.upper()]
        # Sparse fold: the vocabulary entries that land on each output column (alphabet..., blank last).
        target = np.where(fold == -2, len(self.alphabet), fold)
        sources = np.flatnonzero(target >= 0)
        order = np.argsort(target[sources], kind="stable")
        self._fold_src = sources[order]
        dst = target[sources][order]
        self._fold_starts = np.searchsorted(dst, np.arange(len(self.alphabet) + 1))
        self._fold_present = np.isin(np.arange(len(self.alphabet) + 1), dst)
        # Pattern tensor: (patterns, max_len, alphabet) allowed mask.
        self.patterns = list(grammar.patterns)
        self.max_len = max(len(p) for p in self.patterns)
        self._mask = np.full((len(self.patterns), self.max_len, len(self.alphabet)), NEG, dtype=np.float64)
        for i, pattern in enumerate(self.patterns):
            for k, allowed in enumerate(pattern.positions):
                self._mask[i, k, [index[ch] for ch in allowed]] = 0.0
        self._lengths = np.array([len(p) for p in self.patterns])

    def fold(self, probs: np.ndarray) -> np.ndarray:
        """T×V probabilities → T×(alphabet+1); the last column is the blank (plus separators)."""
        gathered = probs[:, self._fold_src].astype(np.float32)
        starts = np.minimum(self._fold_starts, gathered.shape[1] - 1)
        folded = np.add.reduceat(gathered, starts, axis=1)
        folded[:, ~self._fold_present] = 0.0  # a grammar character the vocabulary cannot produce
        return folded

    def decode(self, probs: np.ndarray) -> list[TextRead]:
        """Best read for every template, best first (highest log-probability)."""
        folded = np.clip(self.fold(probs), 1e-12, 1.0)
        reference = float(np.log(np.clip(probs.max(axis=1), 1e-12, 1.0)).sum())
        log_chars = np.log(folded[:, :-1]).astype(np.float64)
        log_blank = np.log(folded[:, -1]).astype(np.float64)
        reads = self._viterbi(log_chars, log_blank, folded[:, :-1])
        out = [
            TextRead(text, confs, lp, cost=max(0.0, reference - lp), pattern=self.patterns[i])
            for i, (text, confs, lp) in enumerate(reads)
            if lp > NEG / 2
        ]
        return sorted(out, key=lambda r: -r.log_prob)

    def _viterbi(
        self, log_chars: np.ndarray, log_blank: np.ndarray, probs: np.ndarray
    ) -> list[tuple[str, tuple[float, ...], float]]:
        steps, size = log_chars.shape
        n_pat, max_len = len(self.patterns), self.max_len
        # blank[p, k]: best score having emitted k characters and now in a blank; k = 0..max_len
        blank = np.full((n_pat, max_len + 1), NEG)
        char = np.full((n_pat, max_len, size), NEG)  # char[p, k, c]: emitting character k+1 = c
        blank[:, 0] = log_blank[0]
        char[:, 0, :] = log_chars[0] + self._mask[:, 0, :]
        back_blank = np.zeros((steps, n_pat, max_len + 1), dtype=np.int16)  # -1 stay, c: came from char c
        back_char = np.zeros((steps, n_pat, max_len, size), dtype=np.int16)  # -2 stay, -1 from blank, c'
        rows = np.arange(size)
        for t in range(1, steps):
            # Into blank k: stay in blank k, or leave char state k-1 (k >= 1).
            best_char = char.argmax(axis=2)
            best_char_score = np.take_along_axis(char, best_char[..., None], axis=2)[..., 0]
            new_blank = blank.copy()
            back_blank[t] = -1
            from_char = best_char_score > blank[:, 1:]
            new_blank[:, 1:] = np.where(from_char, best_char_score, blank[:, 1:])
            back_blank[t, :, 1:] = np.where(from_char, best_char, -1)
            new_blank += log_blank[t]
            # Into char (k, c): stay, come from blank k, or from char (k-1, c') with c' != c.
            masked = char.copy()
            masked[np.arange(n_pat)[:, None], np.arange(max_len)[None, :], best_char] = NEG
            second = masked.max(axis=2)
            prev_best = np.full((n_pat, max_len, size), NEG)
            prev_arg = np.full((n_pat, max_len, size), -1, dtype=np.int16)
            top_prev = np.where(
                rows[None, None, :] == best_char[:, :-1, None],
                second[:, :-1, None],
                best_char_score[:, :-1, None],
            )
            second_arg = masked.argmax(axis=2)
            arg_prev = np.where(
                rows[None, None, :] == best_char[:, :-1, None],
                second_arg[:, :-1, None],
                best_char[:, :-1, None],
            )
            prev_best[:, 1:, :] = top_prev
            prev_arg[:, 1:, :] = arg_prev
            from_blank = blank[:, :max_len, None]
            stay = char
            choice = np.where(stay >= from_blank, -2, -1).astype(np.int16)
            score = np.maximum(stay, from_blank)
            better = prev_best > score
            choice = np.where(better, prev_arg, choice)
            score = np.where(better, prev_best, score)
            char = score + log_chars[t][None, None, :] + self._mask
            back_char[t] = choice
            blank = new_blank
        results: list[tuple[str, tuple[float, ...], float]] = []
        for p in range(n_pat):
            length = int(self._lengths[p])
            end_char = int(char[p, length - 1].argmax())
            end_char_score = char[p, length - 1, end_char]
            end_blank_score = blank[p, length]
            if max(end_char_score, end_blank_score) < NEG / 2:
                results.append(("", (), NEG))
                continue
            total = float(max(end_char_score, end_blank_score))
            results.append(
                self._backtrack(
                    p,
                    length,
                    end_char if end_char_score >= end_blank_score else None,
                    back_blank,
                    back_char,
                    probs,
                    total,
                )
            )
        return results

    def _backtrack(
        self,
        p: int,
        length: int,
        end_char: int | None,
        back_blank: np.ndarray,
        back_char: np.ndarray,
        probs: np.ndarray,
        total: float,
    ) -> tuple[str, tuple[float, ...], float]:
        steps = len(probs)
        k = length if end_char is None else length - 1
        state_char = end_char  # None: in blank state k
        chars: list[int] = []
        confs: list[float] = []
        current_conf = 0.0
        for t in range(steps - 1, -1, -1):
            if state_char is None:
                came = int(back_blank[t, p, k]) if t > 0 else -1
                if t > 0 and came >= 0:
                    state_char, k = came, k - 1
                continue
            current_conf = max(current_conf, float(probs[t, state_char]))
            came = int(back_char[t, p, k, state_char]) if t > 0 else -3
            if came == -2:
                continue
            chars.append(state_char)
            confs.append(current_conf)
            current_conf = 0.0
            if came == -1:
                state_char = None
            elif came >= 0:
                state_char, k = came, k - 1
        text = "".join(self.alphabet[c] for c in reversed(chars))
        return text, tuple(reversed(confs)), total


def ctc_log_likelihood(log_probs: np.ndarray, labels: np.ndarray, blank: int) -> np.ndarray:
    """log P(label sequence | frames) by the CTC forward algorithm, for N sequences of one length at once.

    ``log_probs`` is T×C (natural log, per frame), ``labels`` N×L column indices (L ≥ 1), ``blank`` the blank's
    column. Sums over every alignment (blanks between and around the characters, repeats merged; two equal
    neighbours need a blank between them), unlike Viterbi, which keeps only the best one.
    """
    labels = np.asarray(labels, dtype=np.int64)
    count, length = labels.shape
    states = 2 * length + 1
    extended = np.full((count, states), blank, dtype=np.int64)
    extended[:, 1::2] = labels
    emissions = log_probs[:, extended]  # T×N×S
    alpha = np.full((count, states), -np.inf)
    alpha[:, :2] = emissions[0, :, :2]
    may_skip = np.zeros((count, states), dtype=bool)
    may_skip[:, 3::2] = labels[:, 1:] != labels[:, :-1]
    shifted = np.full((count, states + 2), -np.inf)
    for t in range(1, len(log_probs)):
        shifted[:, 2:] = alpha
        one_back = shifted[:, 1:-1]
        two_back = np.where(may_skip, shifted[:, :-2], -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, one_back), two_back) + emissions[t]
    return np.logaddexp(alpha[:, -1], alpha[:, -2])
