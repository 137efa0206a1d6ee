"""Shared helpers of the model harnesses: paths, the model zoo, and table printing."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TESTDATA = ROOT.parent / "shared" / "testdata"
DATA = Path(__file__).resolve().parent / "data"


def zoo():  # noqa: ANN201 - models.zoo.ModelZoo
    from models.zoo import ModelZoo

    return ModelZoo.from_config()


def table(header: list[str], rows: list[list[str]]) -> str:
    from models.benchmark import format_table

    return format_table(header, rows)
