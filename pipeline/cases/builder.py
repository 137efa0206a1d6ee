"""Building an evidence package from a case's items: clips cut from the original recordings (remuxed, not
re-encoded), stills (the item's crop and the frame at its moment), enhanced copies with their originals, notes,
the chain-of-custody report and the signed manifest (:mod:`pipeline.cases.package`).

What goes in per item:

* a hit (plate read, track, face, alert) or a synopsis moment: the recording around it — the sighting's clip
  range, else ``pad_s`` either side of its time — cut with :func:`pipeline.recordings.cut_clip` into MP4 (H.264,
  HEVC), MPEG-TS (other codecs TS carries) or Matroska (the rest), and the recording segments it came from; the
  item's crop; the frame at the item's moment (PNG);
* a clip: the stored export (its SHA-256 checked against its record first);
* an enhanced frame: the original and the enhanced copy (marked, with its operation log);
* a note: its text in the manifest.

With a ``redactor`` the clips and stills are replaced by redacted copies (re-encoded, marked; the originals in
the store are never touched). Items whose recording is gone (retention) are listed with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import av
import cv2
import numpy as np

from pipeline.cameras.units import GB_ID
from pipeline.cases.package import PackageFile, build_package
from pipeline.cases.records import Case
from pipeline.cases.report import render_report
from pipeline.cases.signing import EvidenceKeys, b64, fingerprint
from pipeline.cases.workspace import CaseItem
from pipeline.config.ingest import CameraSpec
from pipeline.recordings import TS_CODECS, cut_clip, segments_between
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)


class Redactor(Protocol):
    """Blurs bystanders in a copy: ``clip(src, dst, item)`` and ``image(bgr, item)`` return what was blurred."""

    def clip(self, src: Path, dst: Path, item: CaseItem) -> dict[str, Any]: ...

    def image(self, bgr: np.ndarray, item: CaseItem) -> tuple[np.ndarray, dict[str, Any]]: ...


@dataclass
class PackageRequest:
    case: Case
    items: list[CaseItem]
    requested_by: str
    role: str
    reason: str
    audit_entries: list[str]
    package_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-"
                            + secrets.token_hex(6))


@dataclass
class BuildResult:
    path: Path
    manifest: dict[str, Any]
    sha256: str
    bytes: int
    skipped: list[str]


def gb_id(camera_id: str, spec: CameraSpec | None) -> str:
    if spec is not None and spec.gb_device_id:
        return spec.gb_device_id
    return camera_id if GB_ID.fullmatch(camera_id) else ""


def clip_suffix(codecs: set[str]) -> str:
    if codecs <= {"h264", "hevc"}:
        return ".mp4"
    return ".ts" if codecs <= TS_CODECS else ".mkv"


class PackageBuilder:
    """Builds packages into ``work_dir`` from the store's recordings, crops, exports and case frames."""

    def __init__(self, store: ObjectStore, keys: EvidenceKeys, *, cameras: Callable[[], Mapping[str, CameraSpec]],
                 timezone: str, recordings_prefix: str = "recordings", pad_s: float = 5.0,
                 max_bytes: int = 2 * 1024**3) -> None:
        self.store = store
        self.keys = keys
        self.cameras = cameras
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone
        self.recordings_prefix = recordings_prefix
        self.pad = timedelta(seconds=pad_s)
        self.max_bytes = max_bytes

    def build(self, request: PackageRequest, work_dir: Path, redactor: Redactor | None = None) -> BuildResult:
        work = work_dir / request.package_id
        work.mkdir(parents=True, exist_ok=True)
        cameras = dict(self.cameras())
        files: list[PackageFile] = []
        skipped: list[str] = []
        for number, item in enumerate(request.items, start=1):
            try:
                files += self._item_files(number, item, work, cameras, redactor)
            except LookupError as exc:
                skipped.append(f"{item.item_id}: {exc}")
                log.info("evidence %s: item %s skipped: %s", request.package_id, item.item_id, exc)
        total = sum(f.digest()[1] for f in files)
        if total > self.max_bytes:
            msg = f"the package would hold {total} bytes, more than cases.package_max_bytes ({self.max_bytes})"
            raise ValueError(msg)
        header = self._header(request, redactor, skipped)
        key_id, key = self.keys.current()
        from pipeline.cases.signing import public_bytes

        public = public_bytes(key.public_key())
        signing = {"algorithm": "Ed25519", "key_id": key_id, "public_key": b64(public),
                   "fingerprint": fingerprint(public)}
        entries = [{**f.entry, "path": f.path, "sha256": f.digest()[0], "bytes": f.digest()[1]} for f in files]
        report = PackageFile("report.html", render_report(header, entries, signing).encode("utf-8"),
                             {"kind": "report"})
        out = work_dir / f"{request.package_id}.zip"
        manifest = build_package(out, files, report, header, self.keys)
        data_hash = hashlib.sha256()
        with out.open("rb") as f:
            while chunk := f.read(1 << 20):
                data_hash.update(chunk)
        return BuildResult(out, manifest, data_hash.hexdigest(), out.stat().st_size, skipped)

    def clip_of(self, item: CaseItem, work: Path) -> tuple[Path, datetime | None]:
        """The item's clip as a local file (cut from the recordings, or its export) and the clip's start."""
        work.mkdir(parents=True, exist_ok=True)
        base = self._base(item, dict(self.cameras()))
        stem = f"preview-{item.item_id}"
        clip = self._export_file(stem, item, base, work) if item.kind == "clip" else self._cut(stem, item, base, work)
        assert isinstance(clip.source, Path)
        return clip.source, _parse(clip.entry.get("start_utc"))

    # -- header ---------------------------------------------------------------------------------
    def _local(self, t: datetime | None) -> str | None:
        return t.astimezone(self.zone).isoformat() if t is not None else None

    def _header(self, request: PackageRequest, redactor: Redactor | None, skipped: list[str]) -> dict[str, Any]:
        now = datetime.now(UTC)
        case = request.case
        return {
            "package_id": request.package_id, "created_at": now.isoformat(), "created_local": self._local(now),
            "timezone": self.timezone,
            "case": {k: case.public()[k] for k in ("number", "title", "case_type", "unit", "legal_basis", "purpose",
                                                  "status", "owner")},
            "requested_by": {"user": request.requested_by, "role": request.role}, "reason": request.reason,
            "audit_entries": request.audit_entries,
            "items": [{k: i.public()[k] for k in ("item_id", "kind", "ref", "camera_id", "text", "note", "added_by",
                                                  "added_at", "audit_id")} for i in request.items],
            "skipped": skipped,
            "redaction": {"summary": "bystanders' faces and plates not named in the case blurred on the exported "
                          "copies" if redactor is not None else "none"},
        }

    # -- files per item -------------------------------------------------------------------------
    def _base(self, item: CaseItem, cameras: Mapping[str, CameraSpec]) -> dict[str, Any]:
        spec = cameras.get(item.camera_id)
        return {"item_id": item.item_id, "item_kind": item.kind, "camera_id": item.camera_id,
                "camera_name": (spec.name if spec and spec.name else item.camera_id),
                "gb_id": gb_id(item.camera_id, spec), "timezone": self.timezone}

    def _times(self, entry: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
        return {**entry, "start_utc": start.astimezone(UTC).isoformat(), "end_utc": end.astimezone(UTC).isoformat(),
                "start_local": self._local(start), "end_local": self._local(end)}

    def _item_files(self, n: int, item: CaseItem, work: Path, cameras: Mapping[str, CameraSpec],
                    redactor: Redactor | None) -> list[PackageFile]:
        if item.kind == "note" or not item.camera_id:
            return []
        base = self._base(item, cameras)
        stem = f"{n:03d}-{item.kind}-{item.camera_id}"
        if item.kind == "frame":
            return self._frame_files(stem, item, base)
        files: list[PackageFile] = []
        if item.kind == "clip":
            clip = self._export_file(stem, item, base, work)
        else:
            clip = self._cut(stem, item, base, work)
        if redactor is not None:
            clip = self._redacted_clip(clip, item, work, redactor)
        files.append(clip)
        if item.crop_key:
            files += self._crop(stem, item, base, redactor)
        if item.time is not None and isinstance(clip.source, Path):
            still = self._frame_at(stem, item, base, clip.source, clip.entry)
            if still is not None:
                files.append(still if redactor is None else self._redacted_still(still, item, redactor))
        return files

    def _cut(self, stem: str, item: CaseItem, base: dict[str, Any], work: Path) -> PackageFile:
        assert item.time is not None
        start = _parse(item.details.get("clip_start")) or item.time - self.pad
        end = _parse(item.details.get("clip_end")) or (item.end or item.time) + self.pad
        entries = segments_between(self.store, item.camera_id, start, end, self.recordings_prefix)
        if not entries:
            msg = f"no recording of {item.camera_id} between {start.isoformat()} and {end.isoformat()}"
            raise LookupError(msg)
        suffix = clip_suffix({e.codec for e in entries})
        path = work / f"{stem}{suffix}"
        result = cut_clip(self.store, item.camera_id, start, end, path, prefix=self.recordings_prefix)
        entry = self._times({**base, "kind": "clip", "remuxed": True, "transcoded": False,
                             "codec": entries[0].codec, "source_segments": [e.key for e in entries]},
                            result.start, result.end)
        return PackageFile(f"clips/{path.name}", path, entry)

    def _export_file(self, stem: str, item: CaseItem, base: dict[str, Any], work: Path) -> PackageFile:
        key = item.media_keys[0] if item.media_keys else ""
        path = work / f"{stem}.mp4"
        try:
            self.store.download(key, path)
        except ObjectNotFound:
            msg = f"export {key} is gone (retention)"
            raise LookupError(msg) from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if item.sha256 and digest != item.sha256:
            msg = f"export {key} no longer matches the SHA-256 recorded when it was saved"
            raise LookupError(msg)
        start, end = item.time or datetime.now(UTC), item.end or item.time or datetime.now(UTC)
        details = item.details
        entry = self._times({**base, "kind": "clip", "remuxed": not details.get("transcoded", False),
                             "transcoded": bool(details.get("transcoded", False)),
                             "codec": details.get("source_codec", ""), "export_key": key, "export_sha256": digest},
                            start, end)
        return PackageFile(f"clips/{path.name}", path, entry)

    def _crop(self, stem: str, item: CaseItem, base: dict[str, Any], redactor: Redactor | None) -> list[PackageFile]:
        try:
            data = self.store.get(item.crop_key)
        except ObjectNotFound:
            return []
        t = item.time or datetime.now(UTC)
        entry = self._times({**base, "kind": "still", "note": "the sighting's crop as stored", "source": item.crop_key},
                            t, t)
        still = PackageFile(f"stills/{stem}-crop.jpg", data, entry)
        return [still if redactor is None else self._redacted_still(still, item, redactor)]

    def _frame_at(self, stem: str, item: CaseItem, base: dict[str, Any], clip: Path,
                  clip_entry: Mapping[str, Any]) -> PackageFile | None:
        assert item.time is not None
        start = _parse(clip_entry.get("start_utc"))
        if start is None:
            return None
        offset = max(0.0, (item.time - start).total_seconds())
        frame = grab_frame(clip, offset)
        if frame is None:
            return None
        ok, png = cv2.imencode(".png", frame)
        if not ok:
            return None
        entry = self._times({**base, "kind": "still", "note": f"frame at the item's moment ({offset:.2f} s into "
                             f"{Path(str(clip)).name})"}, item.time, item.time)
        return PackageFile(f"stills/{stem}-frame.png", png.tobytes(), entry)

    def _frame_files(self, stem: str, item: CaseItem, base: dict[str, Any]) -> list[PackageFile]:
        keys = item.details.get("keys", {})
        t = item.time or datetime.now(UTC)
        out = []
        try:
            original = self.store.get(str(keys.get("original", "")))
            enhanced = self.store.get(str(keys.get("enhanced", "")))
        except ObjectNotFound:
            msg = "the enhanced frame or its original is gone"
            raise LookupError(msg) from None
        orig_path = f"stills/{stem}-original.png"
        out.append(PackageFile(orig_path, original, self._times({**base, "kind": "still",
                                                                 "note": "original of an enhanced frame",
                                                                 "source": keys.get("source", "")}, t, t)))
        out.append(PackageFile(f"enhanced/{stem}-enhanced.png", enhanced, self._times(
            {**base, "kind": "enhanced", "enhanced": True, "original": orig_path,
             "operations": item.details.get("operations", [])}, t, t)))
        return out

    # -- redaction --------------------------------------------------------------------------------
    def _redacted_clip(self, clip: PackageFile, item: CaseItem, work: Path, redactor: Redactor) -> PackageFile:
        assert isinstance(clip.source, Path)
        dst = clip.source.with_name(clip.source.stem + "-redacted.mp4")
        info = redactor.clip(clip.source, dst, item)
        entry = {**clip.entry, "remuxed": False, "redacted": info, "redacted_from_sha256": clip.digest()[0]}
        return PackageFile(str(Path(clip.path).with_name(dst.name)), dst, entry)

    def _redacted_still(self, still: PackageFile, item: CaseItem, redactor: Redactor) -> PackageFile:
        data = still.source if isinstance(still.source, bytes) else still.source.read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return still
        out, info = redactor.image(image, item)
        ok, png = cv2.imencode(".png", out)
        assert ok
        entry = {**still.entry, "redacted": info, "redacted_from_sha256": still.digest()[0]}
        return PackageFile(str(Path(still.path).with_suffix("").as_posix()) + "-redacted.png", png.tobytes(), entry)


def _parse(value: object) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def iter_frames(path: Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame number, seconds from the first frame, BGR image) for every decoded frame of a clip."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = None
        for n, frame in enumerate(container.decode(stream)):
            pts = frame.pts if frame.pts is not None else n
            first = pts if first is None else first
            t = float((pts - first) * (frame.time_base or stream.time_base or Fraction(1, 25)))
            yield n, t, frame.to_ndarray(format="bgr24")


def grab_frame(path: Path, offset_s: float) -> np.ndarray | None:
    """The decoded frame (BGR) at ``offset_s`` seconds into a clip (the first at or after it, else the last)."""
    last = None
    for _, t, image in iter_frames(path):
        last = image
        if t >= offset_s:
            break
    return last


def frames_around(path: Path, offset_s: float, count: int) -> list[np.ndarray]:
    """The ``count`` frames nearest ``offset_s`` seconds into a clip, in time order."""
    frames: list[tuple[float, np.ndarray]] = []
    after = 0
    for _, t, image in iter_frames(path):
        frames.append((t, image))
        after += t > offset_s
        if after >= count:
            break
    nearest = sorted(frames, key=lambda f: abs(f[0] - offset_s))[:count]
    return [image for _, image in sorted(nearest, key=lambda f: f[0])]


def manifest_json(result: BuildResult) -> bytes:
    return json.dumps(result.manifest, ensure_ascii=False, indent=1).encode("utf-8")
