"""Camera inputs behind one interface (:class:`~workers.ingest.sources.base.Source`)."""

from __future__ import annotations

from workers.ingest.sources.base import (
    DecodedFrame,
    Source,
    SourceAuthError,
    SourceCodecError,
    SourceError,
    SourceItem,
    SourceNotFound,
    SourceProtocolError,
    SourceTimeout,
    SourceUnreachable,
    StreamInfo,
)
from workers.ingest.sources.file import FileSource
from workers.ingest.sources.rtsp import RtspSource

__all__ = [
    "DecodedFrame",
    "FileSource",
    "RtspSource",
    "Source",
    "SourceAuthError",
    "SourceCodecError",
    "SourceError",
    "SourceItem",
    "SourceNotFound",
    "SourceProtocolError",
    "SourceTimeout",
    "SourceUnreachable",
    "StreamInfo",
]
