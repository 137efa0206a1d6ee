"""Hypothesis profiles for the parser fuzz tests.

``ci`` (the default, used by ``./test.sh``): a bounded number of examples per test, derandomised so a run
is reproducible, a per-example deadline that catches pathological slowness, and no example database
written into the checkout. ``long`` (by hand): ``HYPOTHESIS_PROFILE=long pytest tests/fuzz`` explores
randomly with many more examples and keeps the database in ``.hypothesis/`` so a failure replays.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=300, deadline=timedelta(seconds=2), derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=10_000, deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
