"""Capped exponential backoff with jitter, the one retry schedule of the spool, the bus and the workers."""

from __future__ import annotations

import random


class RetryPolicy:
    """``delay(n)`` = uniform(0.5, 1) × min(max_s, initial_s × 2^n): spreads retries of many clients out."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.initial_s * (2 ** min(attempt, 30))) * self._rng.uniform(0.5, 1.0)
