"""Hypothesis profiles for the parser fuzz tests.

``ci`` (the default, used by ``./test.sh``): a bounded number of examples per test, derandomised so a run
is reproducible, a per-example deadline that catches pathological slowness, and no example database
written into the checkout. ``long`` (by hand): ``HYPOTHESIS_PROFILE=long pytest tests/fuzz --timeout=0`` explores
randomly with many more examples (over pytest's 300 s per-test limit, hence ``--timeout=0``) and keeps the
database in ``.hypothesis/`` so a failure replays. The deadline (10 s for one example) is far above what any
parser needs and still catches an input that makes one loop or crawl; a lower one made loaded machines report
"flaky" failures.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=300, deadline=timedelta(seconds=10), derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=10_000, deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
