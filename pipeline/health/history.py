"""Camera health history: online/offline intervals, quality-fault episodes, stream statistics and recording
completeness, computed from the catalog (``camera-status`` and ``camera-health`` kinds) and the recordings'
day indexes.

Everything is a query over what the indexer stored, so the history survives restarts and is the same for
every API process. Intervals are clipped to the asked window ``[start, end)``; a camera's state at
``start`` is its last connection event before ``start`` (``online``; ``offline`` or ``reconnecting`` count
as offline); a camera with no event at all is ``unknown`` until its first event, and unknown time is not
online. Quality episodes pair each ``fault_started`` with its ``fault_ended`` (same camera, fault, start);
an episode with no end yet is open (ongoing) and is clipped at ``end``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from pipeline.recordings import load_index
from pipeline.store.base import ObjectStore

log = logging.getLogger(__name__)

_LATEST = "ingested_at DESC, src_partition DESC, src_offset DESC"


@dataclass(frozen=True)
class Interval:
    camera_id: str
    state: str  # "online", "offline" or "unknown"
    start: datetime
    end: datetime
    reason: str | None = None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Episode:
    camera_id: str
    fault: str
    start: datetime
    end: datetime | None  # None: still open
    score: float
    thumbnail_key: str | None = None

    def seconds(self, until: datetime) -> float:
        return ((self.end or until) - self.start).total_seconds()


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class Completeness:
    camera_id: str
    day: str
    expected_s: float
    recorded_s: float
    gaps: list[Gap] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return min(1.0, self.recorded_s / self.expected_s) if self.expected_s > 0 else None


def day_window(day: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[00:00, 24:00) UTC of ``day`` (YYYY-MM-DD), the end capped at ``now`` for today."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    end = start + timedelta(days=1)
    if now is not None:
        end = max(start, min(end, now))
    return start, end


def _scope_sql(cameras: Collection[str] | None) -> tuple[str, list[Any]]:
    if cameras is None:
        return "TRUE", []
    return "camera_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(cameras)]


class HealthHistory:
    """Queries over the catalog's camera tables; ``cursor`` gives a DuckDB cursor on the catalog cache."""

    def __init__(self, cursor: Callable[[], duckdb.DuckDBPyConnection], store: ObjectStore,
                 recordings_prefix: str = "recordings") -> None:
        self._cursor = cursor
        self.store = store
        self.recordings_prefix = recordings_prefix

    @contextmanager
    def _cur(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self._cursor()
        try:
            yield cur
        finally:
            cur.close()

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        with self._cur() as cur:
            cur.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # -- connection --------------------------------------------------------------------------------
    def connection_events(self, cameras: Collection[str] | None, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Connection events (no stats) in [start, end) plus each camera's last one before start, by time."""
        scope, params = _scope_sql(cameras)
        sql = (
            "WITH s AS (SELECT * FROM camera_status WHERE event <> 'stats' AND " + scope + " "
            f"QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {_LATEST}) = 1), "
            "before AS (SELECT * FROM s WHERE observed_at < ? "
            "QUALIFY row_number() OVER (PARTITION BY camera_id ORDER BY observed_at DESC) = 1) "
            "SELECT camera_id, observed_at, event, reason FROM before UNION ALL "
            "SELECT camera_id, observed_at, event, reason FROM s WHERE observed_at >= ? AND observed_at < ? "
            "ORDER BY camera_id, observed_at"
        )
        return self._rows(sql, [*params, start, start, end])

    def intervals(self, cameras: Collection[str], start: datetime, end: datetime) -> dict[str, list[Interval]]:
        """Online/offline/unknown intervals per camera covering [start, end) exactly."""
        out: dict[str, list[Interval]] = {c: [] for c in cameras}
        events: dict[str, list[dict[str, Any]]] = {}
        for row in self.connection_events(cameras, start, end):
            events.setdefault(row["camera_id"], []).append(row)
        for camera in cameras:
            state, reason, since = "unknown", None, start
            spans: list[Interval] = []
            for ev in events.get(camera, []):
                at = max(start, ev["observed_at"].astimezone(UTC))
                new = "online" if ev["event"] == "online" else "offline"
                if new == state:
                    continue
                if at > since:
                    spans.append(Interval(camera, state, since, at, reason))
                state, reason, since = new, ev["reason"], at
            if end > since:
                spans.append(Interval(camera, state, since, end, reason))
            out[camera] = spans
        return out

    @staticmethod
    def online_rate(spans: list[Interval]) -> float | None:
        total = sum(s.seconds for s in spans)
        return sum(s.seconds for s in spans if s.state == "online") / total if total > 0 else None

    # -- quality -------------------------------------------------------------------------------------
    def episodes(self, cameras: Collection[str] | None, start: datetime, end: datetime) -> list[Episode]:
        """Fault episodes overlapping [start, end) and scene changes in it, by camera and start."""
        scope, params = _scope_sql(cameras)
        sql = (
            "WITH h AS (SELECT * FROM camera_health WHERE event <> 'summary' AND " + scope + " "
            f"QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {_LATEST}) = 1), "
            "st AS (SELECT camera_id, fault, started_at, max(score) AS score, max(thumbnail_key) AS thumb FROM h "
            "WHERE event IN ('fault_started', 'scene_change') GROUP BY ALL), "
            "en AS (SELECT camera_id, fault, started_at, max(ended_at) AS ended_at, max(score) AS score, "
            "max(thumbnail_key) AS thumb FROM h WHERE event IN ('fault_ended', 'scene_change') GROUP BY ALL), "
            "ep AS (SELECT coalesce(st.camera_id, en.camera_id) AS camera_id, coalesce(st.fault, en.fault) AS fault, "
            "coalesce(st.started_at, en.started_at) AS started_at, en.ended_at, "
            "greatest(coalesce(st.score, 0), coalesce(en.score, 0)) AS score, coalesce(st.thumb, en.thumb) AS thumb "
            "FROM st FULL OUTER JOIN en USING (camera_id, fault, started_at)) "
            "SELECT * FROM ep WHERE started_at < ? AND (ended_at IS NULL OR ended_at > ? "
            "OR (fault = 'scene_change' AND started_at >= ?)) ORDER BY camera_id, started_at, fault"
        )
        rows = self._rows(sql, [*params, end, start, start])
        return [Episode(r["camera_id"], r["fault"], r["started_at"].astimezone(UTC),
                        r["ended_at"].astimezone(UTC) if r["ended_at"] is not None else None, float(r["score"]),
                        r["thumb"]) for r in rows]

    def latest_health(self, cameras: Collection[str] | None) -> dict[str, dict[str, Any]]:
        """Each camera's newest camera-health message: its open faults and scores now."""
        scope, params = _scope_sql(cameras)
        sql = ("SELECT camera_id, observed_at, problems, verdict, scores FROM camera_health WHERE " + scope + " "
               "QUALIFY row_number() OVER (PARTITION BY camera_id ORDER BY observed_at DESC, ingested_at DESC) = 1")
        out = {}
        for r in self._rows(sql, params):
            r["scores"] = json.loads(r["scores"]) if r["scores"] else {}
            out[r["camera_id"]] = r
        return out

    # -- stream statistics -----------------------------------------------------------------------------
    def stream_stats(self, cameras: Collection[str] | None, start: datetime, end: datetime,
                     bucket_s: int = 3600) -> list[dict[str, Any]]:
        """Per camera and time bucket: mean fps in/out and bitrate, summed decode errors and drops."""
        scope, params = _scope_sql(cameras)
        sql = (
            "WITH s AS (SELECT * FROM camera_status WHERE event = 'stats' AND " + scope + " AND observed_at >= ? "
            f"AND observed_at < ? QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {_LATEST}) = 1) "
            "SELECT camera_id, to_timestamp(floor(epoch(observed_at) / ?) * ?) AS bucket, count(*) AS reports, "
            "avg(fps_in) AS fps_in, avg(fps_out) AS fps_out, avg(bitrate_kbps) AS bitrate_kbps, "
            "sum(coalesce(decode_errors, 0)) AS decode_errors, sum(coalesce(frames_dropped, 0)) AS frames_dropped, "
            "sum(coalesce(recording_drops, 0)) AS recording_drops, sum(coalesce(rtp_packets_lost, 0)) AS rtp_lost "
            "FROM s GROUP BY ALL ORDER BY camera_id, bucket"
        )
        return self._rows(sql, [*params, start, end, bucket_s, bucket_s])

    # -- recordings ----------------------------------------------------------------------------------
    def completeness(self, camera_id: str, day: str, expected: list[Interval] | None = None,
                     gap_min_s: float = 30.0, now: datetime | None = None) -> Completeness:
        """Recorded time of ``day`` over the expected time, and the gaps longer than ``gap_min_s``.

        Expected time is the whole day (up to ``now`` for today), or, when ``expected`` intervals are given,
        the time they say the camera was online: a camera that is offline cannot record, and that time
        counts against the online rate, not twice against recording completeness."""
        start, end = day_window(day, now)
        windows = [(s.start, s.end) for s in expected if s.state == "online"] if expected is not None else [(start, end)]
        segments = sorted((e.start_dt.astimezone(UTC), e.end_dt.astimezone(UTC))
                          for e in load_index(self.store, self.recordings_prefix, camera_id, day))
        expected_s = recorded_s = 0.0
        gaps: list[Gap] = []
        for w_start, w_end in windows:
            expected_s += (w_end - w_start).total_seconds()
            cursor = w_start
            for s_start, s_end in segments:
                a, b = max(s_start, w_start), min(s_end, w_end)
                if b <= a:
                    continue
                if (a - cursor).total_seconds() >= gap_min_s:
                    gaps.append(Gap(cursor, a))
                recorded_s += (b - max(a, cursor)).total_seconds() if b > cursor else 0.0
                cursor = max(cursor, b)
            if (w_end - cursor).total_seconds() >= gap_min_s:
                gaps.append(Gap(cursor, w_end))
        return Completeness(camera_id, day, expected_s, recorded_s, gaps)

    def resumed_gaps(self, camera_id: str, day: str, intervals: list[Interval], gap_min_s: float,
                     now: datetime | None = None) -> list[Gap]:
        """Gaps in the recording of online time that recording resumed after (they have an end)."""
        comp = self.completeness(camera_id, day, intervals, gap_min_s, now)
        ends = [e.start_dt.astimezone(UTC) for e in load_index(self.store, self.recordings_prefix, camera_id, day)]
        return [g for g in comp.gaps if any(abs((t - g.end).total_seconds()) < 1e-3 for t in ends)]
