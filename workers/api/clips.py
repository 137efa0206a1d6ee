"""Clip exports: the recording around a sighting, as an MP4 a browser plays, kept as evidence.

H.264 recordings are cut without re-encoding (:func:`pipeline.recordings.cut_clip`, accurate
to one GOP at the start). Other codecs (MPEG-4 part 2, MS-MPEG4, MJPEG, HEVC …) cannot go into an MP4
a browser plays, so their frames in [start, end) are decoded and encoded once to H.264
(``transcoded: true`` in the export record). The original segments stay untouched in ``recordings/``.

Each export is stored with a record, so the file a case holds can be checked against the audit log::

    exports/{export_id}.mp4    the clip
    exports/{export_id}.json   who, case, camera, range, SHA-256, size, whether it was transcoded

Serving uses a local cache folder (``api.cache_dir``) so the browser's range requests are answered
from a file, on whichever replica receives them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av

from pipeline.recordings import SegmentEntry, cut_clip, segments_between
from pipeline.store.base import ObjectNotFound, ObjectStore
from workers.api import cache

log = logging.getLogger(__name__)

EXPORTS_PREFIX = "exports"
REMUX_CODECS = frozenset({"h264"})
_MS = Fraction(1, 1000)


@dataclass(frozen=True)
class ExportRecord:
    export_id: str
    key: str
    user: str
    case: str
    camera_id: str
    sighting: str
    start: str
    end: str
    duration_s: float
    sha256: str
    bytes: int
    transcoded: bool
    source_codec: str
    created_at: str


def _encode_range(entries: list[SegmentEntry], store: ObjectStore, start: datetime, end: datetime,
                  out_path: Path) -> tuple[datetime, datetime]:
    """Decode the frames of [start, end) from ``entries`` and encode them to H.264 MP4."""
    out = av.open(str(out_path), mode="w", format="mp4", options={"movflags": "+faststart"})
    stream = None
    first: datetime | None = None
    last: datetime | None = None
    last_pts = -1
    try:
        with tempfile.TemporaryDirectory(prefix="tubeline-export-") as tmp:
            for entry in entries:
                local = Path(tmp) / ("segment" + Path(entry.key).suffix)
                store.download(entry.key, local)
                with av.open(str(local)) as src:
                    vs = src.streams.video[0]
                    tb = vs.time_base or Fraction(1, 90000)
                    base = None
                    for frame in src.decode(vs):
                        if frame.pts is None:
                            continue
                        base = frame.pts if base is None else base
                        utc = entry.start_dt + timedelta(seconds=float((frame.pts - base) * tb))
                        if utc < start:
                            continue
                        if utc >= end:
                            break
                        if stream is None:
                            stream = out.add_stream("libx264", rate=max(1, round(float(vs.average_rate or 10))))
                            stream.width, stream.height = frame.width // 2 * 2, frame.height // 2 * 2
                            stream.pix_fmt = "yuv420p"
                            stream.time_base = _MS
                            stream.options = {"preset": "veryfast", "crf": "23"}
                            first = utc
                        assert first is not None
                        pts = max(round((utc - first).total_seconds() * 1000), last_pts + 1)
                        image = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
                        image.pts, image.time_base = pts, _MS
                        out.mux(stream.encode(image))
                        last_pts, last = pts, utc
                local.unlink(missing_ok=True)
            if stream is not None:
                out.mux(stream.encode(None))
    finally:
        out.close()
    if first is None or last is None:
        msg = "no decodable frames in the requested range"
        raise LookupError(msg)
    frame_s = 1.0 / float(stream.average_rate or 10) if stream is not None else 0.1
    return first, last + timedelta(seconds=frame_s)


def make_clip(store: ObjectStore, camera_id: str, start: datetime, end: datetime, out_path: Path,
              *, prefix: str = "recordings") -> tuple[datetime, datetime, bool, str]:
    """Write the MP4 of [start, end) to ``out_path``; (first, end, transcoded, source codec).

    Raises LookupError when nothing was recorded in the range.
    """
    entries = segments_between(store, camera_id, start, end, prefix)
    if not entries:
        msg = f"no recording of camera {camera_id} between {start.isoformat()} and {end.isoformat()}"
        raise LookupError(msg)
    codec = entries[0].codec
    if all(e.codec in REMUX_CODECS for e in entries):
        result = cut_clip(store, camera_id, start, end, out_path, prefix=prefix)
        return result.start, result.end, False, codec
    first, last = _encode_range(entries, store, start, end, out_path)
    return first, last, True, codec


class ClipExporter:
    """Cuts, stores and serves clip exports."""

    def __init__(self, store: ObjectStore, cache_dir: Path, *, recordings_prefix: str = "recordings",
                 cache_root: Path | None = None, cache_max_bytes: int | None = None) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.recordings_prefix = recordings_prefix
        self.cache_root = cache_root or cache_dir
        self.cache_max_bytes = cache_max_bytes

    def has_recording(self, camera_id: str, start: datetime, end: datetime) -> bool:
        return bool(segments_between(self.store, camera_id, start, end, self.recordings_prefix))

    def export(self, *, user: str, case: str, camera_id: str, sighting: str, start: datetime,
               end: datetime) -> ExportRecord:
        export_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(6)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{export_id}.mp4"
        try:
            first, last, transcoded, codec = make_clip(self.store, camera_id, start, end, path,
                                                       prefix=self.recordings_prefix)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        data = path.read_bytes()
        key = f"{EXPORTS_PREFIX}/{export_id}.mp4"
        record = ExportRecord(
            export_id=export_id, key=key, user=user, case=case, camera_id=camera_id, sighting=sighting,
            start=first.isoformat(), end=last.isoformat(), duration_s=round((last - first).total_seconds(), 3),
            sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), transcoded=transcoded, source_codec=codec,
            created_at=datetime.now(UTC).isoformat(),
        )
        self.store.put(key, path, content_type="video/mp4",
                       metadata={"case": case, "sha256": record.sha256, "camera-id": camera_id})
        self.store.put(f"{EXPORTS_PREFIX}/{export_id}.json", json.dumps(asdict(record), indent=1).encode(),
                       content_type="application/json")
        log.info("export %s: camera %s, %.1f s, %d bytes", export_id, camera_id, record.duration_s, record.bytes)
        self._trim(path)
        return record

    def _trim(self, keep: Path) -> None:
        if self.cache_max_bytes is not None:
            cache.trim(self.cache_root, self.cache_max_bytes, keep=keep)

    def record(self, export_id: str) -> ExportRecord | None:
        if not export_id.replace("-", "").isalnum() or len(export_id) > 64:
            return None
        try:
            return ExportRecord(**json.loads(self.store.get(f"{EXPORTS_PREFIX}/{export_id}.json")))
        except (ObjectNotFound, ValueError, TypeError):
            return None

    def local_file(self, record: ExportRecord) -> Path:
        """The export as a local file (downloaded into the cache when another replica made it)."""
        return cache.fetch(self.store, record.key, self.cache_dir / f"{record.export_id}.mp4", root=self.cache_root,
                           max_bytes=self.cache_max_bytes)
