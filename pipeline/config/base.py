"""The base class every configuration section derives from.

Sections are strict (``extra="forbid"``: a misspelt key is an error, not a silent
default), frozen, and every field carries a title, a description and bounds.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
