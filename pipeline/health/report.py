"""The daily inspection report of one unit (or every camera) and day: HTML and CSV, kept in the object store.

The plan behind the product asks for a daily image-quality inspection of every camera. The report lists,
per camera: online rate and offline time, picture faults (with a thumbnail of each faulty camera: the
frame the quality worker kept when the fault started, else a frame cut from the recording at that
moment), recording completeness and gaps; the KPIs of the day head it. Keys::

    {quality.report_prefix}/{YYYY-MM-DD}/{unit}.html      unit "all" for every camera; "/" in a unit becomes "~"
    {quality.report_prefix}/{YYYY-MM-DD}/{unit}.csv

The HTML is one self-contained file (thumbnails inline as data URIs, styles inline, no script), so it
can be archived, mailed or opened from the store as it is. Values from the registry are HTML-escaped.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import av
import av.error
import cv2
import numpy as np

from pipeline.health.kpi import CameraDay, Kpis
from pipeline.recordings import segments_between
from pipeline.store.base import ObjectNotFound, ObjectStore, StoreError

log = logging.getLogger(__name__)

ALL_UNITS = "all"
THUMB_WIDTH = 240
MAX_THUMB_BYTES = 4_000_000
CSV_FIELDS = ("camera_id", "name", "unit", "point_class", "online_rate", "offline_s", "faults", "fault_s",
              "recording_completeness", "recording_gaps", "missing_fields", "healthy")


def unit_slug(unit: str | None) -> str:
    return ALL_UNITS if not unit else unit.replace("/", "~")


def report_keys(prefix: str, day: str, unit: str | None) -> tuple[str, str]:
    base = f"{prefix}/{day}/{unit_slug(unit)}"
    return base + ".html", base + ".csv"


@dataclass(frozen=True)
class Report:
    day: str
    unit: str | None
    html: bytes
    csv: bytes
    faulty: int


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _dur(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _small_jpeg(image: np.ndarray) -> bytes:
    h, w = image.shape[:2]
    scale = THUMB_WIDTH / w
    small = cv2.resize(image, (THUMB_WIDTH, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else b""


def frame_from_recording(store: ObjectStore, prefix: str, camera_id: str, at: datetime) -> bytes | None:
    """A small JPEG of the recorded picture at ``at`` (the first frame at or after it), or None."""
    entries = segments_between(store, camera_id, at, at + timedelta(seconds=1), prefix)
    if not entries:
        return None
    entry = entries[0]
    with tempfile.TemporaryDirectory(prefix="tubeline-thumb-") as tmp:
        local = Path(tmp) / ("segment" + Path(entry.key).suffix)
        try:
            store.download(entry.key, local)
            with av.open(str(local)) as container:
                stream = container.streams.video[0]
                wanted = (at - entry.start_dt).total_seconds()
                first = None
                for frame in container.decode(stream):
                    t = float(frame.pts * stream.time_base) if frame.pts is not None and stream.time_base else 0.0
                    first = first if first is not None else t
                    if t - first >= wanted:
                        return _small_jpeg(frame.to_ndarray(format="bgr24"))
        except (StoreError, av.error.FFmpegError, OSError, IndexError) as exc:
            log.warning("report: no frame of %s at %s from the recording: %s", camera_id, at.isoformat(), exc)
    return None


def thumbnail(store: ObjectStore, recordings_prefix: str, day: CameraDay) -> bytes | None:
    """The kept thumbnail of the camera's first fault, else a frame cut from the recording."""
    for ep in day.episodes:
        if ep.thumbnail_key:
            try:
                data = store.get(ep.thumbnail_key)
            except (ObjectNotFound, StoreError):
                continue
            if len(data) <= MAX_THUMB_BYTES:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if image is not None:
                    return _small_jpeg(image)
    for ep in day.episodes:
        found = frame_from_recording(store, recordings_prefix, day.camera.id, ep.start)
        if found:
            return found
    return None


def _kpi_table(k: Kpis) -> str:
    rows = [("Cameras", f"{k.cameras} ({k.enabled} enabled)"),
            ("By point class", ", ".join(f"{c}: {n}" for c, n in k.by_class.items()) or "–"),
            ("Online rate", f"{_pct(k.online_rate)} (target {_pct(k.online_target)}; "
                            f"{k.cameras_meeting_target} of {k.cameras} cameras meet it)"),
            ("Health rate", _pct(k.health_rate)), ("Archive completeness", _pct(k.archive_completeness)),
            ("Geo-tag rate", _pct(k.geotag_rate)), ("Recording completeness", _pct(k.recording_completeness)),
            ("Case-video intake", k.case_video_note if k.case_video_intake is None else str(k.case_video_intake))]
    return "<table class=k>" + "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows) + "</table>"


def _camera_row(d: CameraDay, thumb: bytes | None) -> str:
    e = html.escape
    faults = "<br>".join(f"{e(ep.fault)} {ep.start:%H:%M:%S}–{ep.end:%H:%M:%S} ({ep.score:.2f})" if ep.end else
                         f"{e(ep.fault)} from {ep.start:%H:%M:%S} (open, {ep.score:.2f})" for ep in d.episodes) or "–"
    offline = "<br>".join(f"{s.start:%H:%M:%S}–{s.end:%H:%M:%S} {e(s.state)}{' (' + e(s.reason) + ')' if s.reason else ''}"
                          for s in d.intervals if s.state != "online") or "–"
    comp = d.completeness
    gaps = "<br>".join(f"{g.start:%H:%M:%S}–{g.end:%H:%M:%S}" for g in comp.gaps) if comp and comp.gaps else "–"
    img = (f'<img alt="picture of {e(d.camera.id)}" src="data:image/jpeg;base64,{base64.b64encode(thumb).decode()}">'
           if thumb else "")
    cls = "ok" if d.healthy else "bad"
    return (f"<tr class={cls}><td><b>{e(d.camera.name or d.camera.id)}</b><br><small>{e(d.camera.id)}</small></td>"
            f"<td>{e(d.unit)}</td><td>{_pct(d.online_rate)}</td><td>{offline}</td><td>{faults}</td>"
            f"<td>{_pct(comp.ratio) if comp else 'not recorded'}</td><td>{gaps}</td><td>{img}</td></tr>")


STYLE = ("body{font:14px system-ui,sans-serif;margin:24px;color:#1b2430}h1{font-size:20px}table{border-collapse:collapse;"
         "margin:12px 0}th,td{border:1px solid #ccd3dc;padding:4px 8px;text-align:left;vertical-align:top}"
         "table.k th{background:#eef2f6}tr.bad td:first-child{border-left:4px solid #c0392b}"
         "tr.ok td:first-child{border-left:4px solid #2e8b57}img{width:240px;display:block}small{color:#5b6776}")


def build_report(days: list[CameraDay], kpis: Kpis, day: str, unit: str | None, store: ObjectStore,
                 recordings_prefix: str, generated_at: datetime) -> Report:
    faulty = [d for d in days if not d.healthy or d.episodes or (d.completeness and d.completeness.gaps)]
    rows = "".join(_camera_row(d, thumbnail(store, recordings_prefix, d) if d.episodes else None) for d in faulty)
    title = f"Daily inspection {day} — {html.escape(unit or 'all units')}"
    body = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title><style>{STYLE}</style>"
            f"</head><body><h1>{title}</h1><p>Generated {generated_at:%Y-%m-%d %H:%M} UTC. {len(faulty)} of "
            f"{len(days)} camera(s) need attention.</p>{_kpi_table(kpis)}<h2>Cameras that need attention</h2>"
            "<table><tr><th>Camera</th><th>Unit</th><th>Online</th><th>Offline</th><th>Picture faults</th>"
            f"<th>Recorded</th><th>Recording gaps</th><th>Picture</th></tr>{rows}</table></body></html>")
    return Report(day, unit, body.encode("utf-8"), _csv(days), len(faulty))


def _csv(days: list[CameraDay]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for d in days:
        comp = d.completeness
        writer.writerow([
            d.camera.id, d.camera.name, d.unit, d.camera.point_class or "",
            "" if d.online_rate is None else f"{d.online_rate:.4f}", f"{d.offline_s:.0f}",
            ";".join(f"{e.fault}@{e.start.isoformat()}" for e in d.episodes), f"{d.fault_s:.0f}",
            "" if comp is None or comp.ratio is None else f"{comp.ratio:.4f}",
            ";".join(f"{g.start.isoformat()}/{g.end.isoformat()}" for g in comp.gaps) if comp else "",
            ";".join(m for m in ("name", "point_class", "latitude", "longitude", "admin_unit")
                     if getattr(d.camera, m) in (None, "")),
            "yes" if d.healthy else "no",
        ])
    return out.getvalue().encode("utf-8")


def store_report(store: ObjectStore, prefix: str, report: Report) -> tuple[str, str]:
    html_key, csv_key = report_keys(prefix, report.day, report.unit)
    store.put(html_key, report.html, content_type="text/html; charset=utf-8")
    store.put(csv_key, report.csv, content_type="text/csv; charset=utf-8")
    return html_key, csv_key


def list_reports(store: ObjectStore, prefix: str, limit: int = 200) -> list[dict[str, str]]:
    """Stored reports, newest day first: ``{"day", "unit", "html", "csv"}``."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for info in store.list(prefix + "/"):
        rest = info.key[len(prefix) + 1:]
        parts = rest.split("/")
        if len(parts) != 2 or not parts[1].endswith((".html", ".csv")):
            continue
        day, name = parts
        slug, ext = name.rsplit(".", 1)
        entry = found.setdefault((day, slug), {"day": day, "unit": slug.replace("~", "/")})
        entry[ext] = info.key
    return sorted(found.values(), key=lambda r: (r["day"], r["unit"]), reverse=True)[:limit]
