"""Video synopsis: an hour of activity in a minute, every object clickable back to its original time.

Tube-based synopsis after Pritch, Rav-Acha and Peleg (TPAMI 2008), built on the track summaries the
detect worker publishes and the recordings ingest keeps. The functions an API calls:

- :func:`build_synopsis` (``workers.synopsis.builder``): build and store one synopsis now;
- :func:`submit_synopsis` / :func:`synopsis_status` (``workers.synopsis.worker``): queue a request for
  the synopsis worker and follow it;
- :func:`load_synopsis_index` and :func:`object_at` (``pipeline.synopsis.index``): the stored index and
  the object under a click.

Design: ``docs/design/synopsis.md``; use and measured figures: ``docs/synopsis.md``.
"""

from __future__ import annotations

from pipeline.synopsis.index import ObjectHit, SynopsisIndex, SynopsisObject, load_synopsis_index, object_at
from pipeline.synopsis.request import SynopsisKeys, SynopsisRequest, SynopsisStatus
from workers.synopsis.builder import NothingToShow, SynopsisResult, build_synopsis
from workers.synopsis.sources import BusTrackSource, MemoryTrackSource, TrackSource

__all__ = [
    "BusTrackSource",
    "MemoryTrackSource",
    "NothingToShow",
    "ObjectHit",
    "SynopsisIndex",
    "SynopsisKeys",
    "SynopsisObject",
    "SynopsisRequest",
    "SynopsisResult",
    "SynopsisStatus",
    "TrackSource",
    "build_synopsis",
    "load_synopsis_index",
    "object_at",
]
