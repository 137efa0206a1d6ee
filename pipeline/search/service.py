"""The query layer: plate, vehicle, face, trajectory, alert and camera-status search over the catalog.

:class:`SearchService` is what the REST API calls. It reads the Parquet catalog and the FAISS face
shards the indexer (``workers.index``) writes to the object store, through a local cache folder
(``index.cache_dir``, segments kept by etag; :mod:`pipeline.search.catalog`), and answers with the
dataclasses of :mod:`pipeline.search.hits`. The first query refreshes once; after that call
:meth:`SearchService.refresh` to see newer segments (it costs one listing of the catalog).
With ``index.catalog_format: delta`` plate search reads the Delta tables through
:mod:`pipeline.search.tables` and every other structured query through :mod:`pipeline.search.table_kinds`
(pruned scans, nothing loaded into memory); face search stays on the FAISS shards and the face segments.

Camera scope: every method takes ``cameras``. ``None`` means every camera; otherwise nothing from a
camera outside the collection is ever returned — not as a hit, not inside a trajectory, not
through a sighting's detail. An empty collection returns nothing. The scope is applied in the
query itself and checked again on every result.

Duplicates: the catalog may hold a record more than once (redelivery); every query keeps one row
per idempotency key, and for plate reads the highest revision (a superseded read never matches).

Times: ``start`` and ``end`` are timezone-aware datetimes (naive ones are rejected with
:class:`QueryError`); ``start`` is inclusive, ``end`` exclusive; a track matches when its time span
overlaps [start, end). Every returned time is UTC. Methods are safe to call from several threads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from pipeline.catalog.format import PLATE_KIND, TRACK_KIND
from pipeline.catalog.table import TableCatalog, TableMissing
from pipeline.config.index import IndexConfig
from pipeline.lookalikes import LookAlikes
from pipeline.search.catalog import CatalogCache
from pipeline.search.faces import FaceCandidate, FaceIndex
from pipeline.search.hits import (
    AlertHit,
    CameraState,
    FaceHit,
    PlateHit,
    PlateMode,
    QueryError,
    Sighting,
    SightingKind,
    TrackHit,
)
from pipeline.search.plates import anchors, check_edits, exact_plate, fuzzy_pieces, wildcard_to_like
from pipeline.search.registry import CameraDirectory
from pipeline.search.table_kinds import TableScan, track_dates
from pipeline.search.tables import PlateQuery, TablePlates, like_prefix
from schemas.alerts import AlertType
from schemas.tracks import Colour, VehicleType

if TYPE_CHECKING:
    from pipeline.config import TubelineConfig
    from pipeline.store.base import ObjectStore

__all__ = [
    "AlertHit",
    "CameraState",
    "FaceHit",
    "PlateHit",
    "QueryError",
    "SearchService",
    "Sighting",
    "TrackHit",
]

log = logging.getLogger(__name__)

MAX_LIMIT = 10_000
_LATEST = "ingested_at DESC, src_partition DESC, src_offset DESC"
LOOKALIKES = LookAlikes()
"""The default look-alike groups (docs/search.md); the same groups as hotlist matching's defaults."""
_PLATE_COLUMNS = "read_id, track_id, camera_id, captured_at, text, confidence, plate_kind, region, crop_key, box, " \
                 "revision, model_id"
_TRACK_COLUMNS = ", ".join(f.name for f in TRACK_KIND.schema if f.name != "path")
"""What a track query reads (the path, bulky, stays in the files as in the Parquet path's cache)."""


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _check_time(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name} must be a timezone-aware datetime"
        raise QueryError(msg)
    return _utc(value)


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        msg = f"limit must be between 1 and {MAX_LIMIT}, got {limit}"
        raise QueryError(msg)
    return limit


def _check_choice(value: str | None, allowed: tuple[str, ...], name: str) -> None:
    if value is not None and value not in allowed:
        msg = f"unknown {name} {value!r}; one of: {', '.join(allowed)}"
        raise QueryError(msg)


SHADES: dict[str, tuple[str, ...]] = {"dark": ("black", "grey"), "light": ("white", "silver")}
"""Colour words a search accepts besides the palette: ``dark`` trousers are black or grey, a ``light`` top white or
silver (docs/search.md)."""


def colour_choices(value: str | None, name: str) -> tuple[str, ...] | None:
    """The palette colours a colour query means (a palette name, or a shade of ``SHADES``); None: any colour."""
    if value is None:
        return None
    if value in SHADES:
        return SHADES[value]
    _check_choice(value, (*get_args(Colour), *SHADES), name)
    return (value,)


class _Filter:
    """WHERE clauses and their parameters for camera scope and time range."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> _Filter:
        self.clauses.append(clause)
        self.params.extend(params)
        return self

    def scope(self, cameras: list[str] | None) -> _Filter:
        if cameras is not None:
            self.add("camera_id IN (SELECT unnest(?::VARCHAR[]))", cameras)
        return self

    def at(self, column: str, start: datetime | None, end: datetime | None) -> _Filter:
        if start is not None:
            self.add(f"{column} >= ?", start)
        if end is not None:
            self.add(f"{column} < ?", end)
        return self

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


class SearchService:
    """Structured search with DuckDB over the Parquet catalog, vector search with FAISS shards."""

    def __init__(self, store: ObjectStore, config: TubelineConfig, *, settings: IndexConfig | None = None) -> None:
        """``settings`` overrides the configuration's ``index`` section (tests, benchmarks)."""
        self.store = store
        self.config = config
        self.settings = settings if settings is not None else config.index
        self.catalog = CatalogCache(store, self.settings)
        self.face_index = FaceIndex(store, self.settings, self.catalog)
        self.directory = CameraDirectory(store, config)
        self.table_plates: TablePlates | None = None
        self.table_scan: TableScan | None = None
        """The other kinds' pruned scans with ``catalog_format: delta`` (:mod:`pipeline.search.table_kinds`)."""
        if self.settings.catalog_format == "delta":
            tables = TableCatalog(config.store, self.settings, create=False)  # the API only reads the tables
            self.table_plates = TablePlates(tables)
            self.table_scan = TableScan(tables, db=self.table_plates.db)  # one memory limit for every scan
        self._refreshed = False

    def refresh(self) -> None:
        """Pick up newly flushed Parquet segments and FAISS snapshots (and forget deleted ones)."""
        self.catalog.refresh()
        if self.table_plates is not None:
            try:
                self.table_plates.refresh()
            except TableMissing:
                log.info("search: no plates table yet")
        if self.table_scan is not None:
            self.table_scan.refresh(["tracks", "alerts", "camera-status"])
        self.directory.refresh()
        self._refreshed = True

    def close(self) -> None:
        self.catalog.close()
        if self.table_plates is not None:
            self.table_plates.close()
        if self.table_scan is not None:
            self.table_scan.close()

    # -- helpers ---------------------------------------------------------------------------------
    def _query(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        if not self._refreshed:
            self.refresh()
        cur = self.catalog.cursor()
        try:
            cur.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def _rows(self, kind: str, sql: Callable[[str], str], params: list[Any], *, memory_table: str,
              start: datetime | None = None, end: datetime | None = None, scope: list[str] | None = None,
              lookback: timedelta = timedelta(0)) -> list[dict[str, Any]]:
        """Rows of ``sql(table)``: over the in-memory ``memory_table`` (Parquet path), or over the files of the
        kind's Delta table that [start - lookback, end) and the scope select (``catalog_format: delta``)."""
        if self.table_scan is None:
            return self._query(sql(memory_table), params)
        if not self._refreshed:
            self.refresh()
        files = self.table_scan.plan(kind, start=start, end=end, cameras=scope, lookback=lookback)
        return self.table_scan.rows({"scan": (kind, files)}, sql("scan"), params)

    @property
    def _track_lookback(self) -> timedelta:
        """How long before a window a track overlapping it may have started (the longest track segment)."""
        return timedelta(seconds=self.config.detect.max_track_s)

    @staticmethod
    def _scope(cameras: Collection[str] | None) -> list[str] | None:
        if cameras is None:
            return None
        if isinstance(cameras, str):
            msg = "cameras must be a collection of camera IDs, not one string"
            raise QueryError(msg)
        return sorted(set(cameras))

    @staticmethod
    def _in_scope(camera_id: str, scope: list[str] | None) -> bool:
        return scope is None or camera_id in scope

    # -- plates ----------------------------------------------------------------------------------
    def plates(
        self,
        query: str,
        *,
        mode: PlateMode = "exact",
        max_edits: int = 1,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        lookalikes: bool = False,
    ) -> list[PlateHit]:
        """Plate reads whose text matches ``query``; newest first (fuzzy: fewest edits first).

        ``wildcard``: ``*`` matches any run of characters, ``?`` exactly one (``川A*58?``).
        ``fuzzy``: Levenshtein distance at most ``max_edits`` (0-3).
        ``exact`` with ``lookalikes``: also reads that differ only by look-alike characters (``0/O/D/Q``,
        ``1/I/T``, ``8/B`` ..., :mod:`pipeline.lookalikes`), any number of them; ``edits`` counts them and the
        exact reads come first.
        """
        scope = self._scope(cameras)
        start, end, limit = _check_time(start, "start"), _check_time(end, "end"), _check_limit(limit)
        if scope == []:
            return []
        if lookalikes and mode == "exact":
            match, match_params, edits, edits_params, order = self._lookalike_match(query)
        else:
            match, match_params, edits, edits_params, order = self._plate_match(query, mode, max_edits)
        where = _Filter().add(match, *match_params).scope(scope).at("captured_at", start, end)
        if self.table_plates is not None:
            rows = self._table_plates(query, mode, max_edits, lookalikes, where, edits, edits_params, order, start,
                                      end, limit)
            return [self._plate_hit(r) for r in rows if self._in_scope(r["camera_id"], scope)]
        sql = (
            f"SELECT {_PLATE_COLUMNS}, {edits} AS edits FROM plates_latest WHERE {where.sql()} "
            f"ORDER BY {order}, read_id LIMIT ?"
        )
        rows = self._query(sql, [*edits_params, *where.params, limit])
        return [self._plate_hit(r) for r in rows if self._in_scope(r["camera_id"], scope)]

    def plate_reads(
        self,
        *,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[PlateHit]:
        """Every plate read in [start, end), oldest first (a camera's timeline)."""
        scope = self._scope(cameras)
        start, end, limit = _check_time(start, "start"), _check_time(end, "end"), _check_limit(limit)
        if scope == []:
            return []
        where = _Filter().scope(scope).at("captured_at", start, end)
        latest = "" if self.table_scan is None else \
            f" QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {PLATE_KIND.latest_first}) = 1"
        rows = self._rows(PLATE_KIND.name, lambda t: f"SELECT {_PLATE_COLUMNS}, 0 AS edits FROM {t} WHERE {where.sql()}"
                          f"{latest} ORDER BY captured_at, read_id LIMIT ?", [*where.params, limit],
                          memory_table="plates_latest", start=start, end=end)
        return [self._plate_hit(r) for r in rows if self._in_scope(r["camera_id"], scope)]

    def _table_plates(self, query: str, mode: str, max_edits: int, lookalikes: bool, where: _Filter, edits: str,
                      edits_params: list[Any], order: str, start: datetime | None, end: datetime | None,
                      limit: int) -> list[dict[str, Any]]:
        """The same plate query over the Delta tables (narrowed by the plate index, pruned, streamed)."""
        assert self.table_plates is not None
        if not self._refreshed:
            self.refresh()
        match = where.clauses[0]  # plates(): the text match is the first clause, its parameters come first
        return self.table_plates.search(PlateQuery(
            match=match, match_params=where.params[:match.count("?")], where=where.sql(), where_params=where.params,
            select=f"{_PLATE_COLUMNS}, {edits} AS edits", select_params=edits_params, order=order, limit=limit,
            start=start, end=end, exact=exact_plate(query) if mode == "exact" and not lookalikes else None,
            prefix=like_prefix(wildcard_to_like(query)) if mode == "wildcard" else "",
            **anchors(query, mode, max_edits) if not lookalikes else {}))

    @staticmethod
    def _plate_match(query: str, mode: str, max_edits: int) -> tuple[str, list[Any], str, list[Any], str]:
        """(WHERE clause, its params, SQL for the edit count, its params, ORDER BY) for a plate query.

        Every value from the query travels as a parameter; the SQL text holds only constants."""
        if mode == "exact":
            return "text = ?", [exact_plate(query)], "0", [], "captured_at DESC"
        if mode == "wildcard":
            return "text LIKE ? ESCAPE '\\'", [wildcard_to_like(query)], "0", [], "captured_at DESC"
        if mode == "fuzzy":
            plate, k = exact_plate(query), check_edits(max_edits)
            pieces = fuzzy_pieces(plate, k)
            clause = ("length(text) BETWEEN ? AND ? AND (" + " OR ".join(["contains(text, ?)"] * len(pieces))
                      + ") AND levenshtein(text, ?) <= ?")
            return clause, [len(plate) - k, len(plate) + k, *pieces, plate, k], "levenshtein(text, ?)", [plate], \
                "edits ASC, captured_at DESC"
        msg = f"unknown plate search mode {mode!r}; one of: exact, wildcard, fuzzy"
        raise QueryError(msg)

    @staticmethod
    def _lookalike_match(query: str) -> tuple[str, list[Any], str, list[Any], str]:
        """Exact up to look-alikes: equal after mapping each character onto its group's representative.
        (Same shape as :meth:`_plate_match`; the plate travels as a parameter.)"""
        plate = exact_plate(query)
        source, target = LOOKALIKES.translation()
        return ("length(text) = ? AND translate(text, ?, ?) = ?", [len(plate), source, target,
                LOOKALIKES.canonical(plate)], "hamming(text, ?)", [plate], "edits ASC, captured_at DESC")

    @staticmethod
    def _plate_hit(r: dict[str, Any]) -> PlateHit:
        return PlateHit(
            read_id=r["read_id"], track_id=r["track_id"], camera_id=r["camera_id"], captured_at=_utc(r["captured_at"]),
            text=r["text"], confidence=float(r["confidence"]), plate_kind=r["plate_kind"], region=r["region"],
            crop_key=r["crop_key"], box=tuple(r["box"]), revision=int(r["revision"]), model_id=r["model_id"],
            edits=int(r["edits"]),
        )

    # -- vehicles --------------------------------------------------------------------------------
    def vehicles(
        self,
        *,
        vehicle_type: str | None = None,
        colour: str | None = None,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[TrackHit]:
        """Vehicle tracks overlapping [start, end) with the given type and colour; newest first."""
        scope = self._scope(cameras)
        start, end, limit = _check_time(start, "start"), _check_time(end, "end"), _check_limit(limit)
        _check_choice(vehicle_type, get_args(VehicleType), "vehicle type")
        _check_choice(colour, get_args(Colour), "colour")
        if scope == []:
            return []
        where = _Filter().add("vehicle_type IS NOT NULL").scope(scope)
        if vehicle_type is not None:
            where.add("vehicle_type = ?", vehicle_type)
        if colour is not None:
            where.add("colour = ?", colour)
        where.at("ended_at", start, None).at("started_at", None, end)
        return self._tracks(where, "started_at DESC, track_id, segment", limit, scope, (start, end))

    def tracks(
        self,
        *,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[TrackHit]:
        """Tracks of every class overlapping [start, end); oldest first (a camera's timeline)."""
        scope = self._scope(cameras)
        start, end, limit = _check_time(start, "start"), _check_time(end, "end"), _check_limit(limit)
        if scope == []:
            return []
        where = _Filter().scope(scope).at("ended_at", start, None).at("started_at", None, end)
        return self._tracks(where, "started_at, track_id, segment", limit, scope, (start, end))

    def persons(
        self,
        *,
        upper: str | None = None,
        lower: str | None = None,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[TrackHit]:
        """Person tracks overlapping [start, end) by clothing colours ("red top, dark trousers"); newest first.

        ``upper`` / ``lower`` are palette colours or a shade (``dark``, ``light``); tracks indexed before persons had
        upper/lower colours have none and match only when no colour is asked for."""
        scope = self._scope(cameras)
        start, end, limit = _check_time(start, "start"), _check_time(end, "end"), _check_limit(limit)
        uppers, lowers = colour_choices(upper, "upper colour"), colour_choices(lower, "lower colour")
        if scope == []:
            return []
        where = _Filter().add("class_name = 'person'").scope(scope)
        if uppers is not None:
            where.add("upper_colour IN (SELECT unnest(?::VARCHAR[]))", list(uppers))
        if lowers is not None:
            where.add("lower_colour IN (SELECT unnest(?::VARCHAR[]))", list(lowers))
        where.at("ended_at", start, None).at("started_at", None, end)
        return self._tracks(where, "started_at DESC, track_id, segment", limit, scope, (start, end))

    def _tracks(self, where: _Filter, order: str, limit: int, scope: list[str] | None,
                window: tuple[datetime | None, datetime | None] = (None, None)) -> list[TrackHit]:
        if self.table_scan is not None:
            return [self._track_hit(r) for r in self._table_tracks(where, order, limit, scope, window)
                    if self._in_scope(r["camera_id"], scope)]
        sql = (
            f"WITH t AS (SELECT * FROM tracks WHERE {where.sql()} "
            f"QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY {_LATEST}) = 1 ORDER BY {order} LIMIT ?), "
            "p AS (SELECT track_id, camera_id, text FROM plates_latest WHERE track_id IN (SELECT track_id FROM t)) "
            f"SELECT t.*, p.text AS plate FROM t LEFT JOIN p ON p.track_id = t.track_id AND p.camera_id = t.camera_id "
            f"ORDER BY {order}"
        )
        rows = self._query(sql, [*where.params, limit])
        return [self._track_hit(r) for r in rows if self._in_scope(r["camera_id"], scope)]

    def _table_tracks(self, where: _Filter, order: str, limit: int, scope: list[str] | None,
                      window: tuple[datetime | None, datetime | None]) -> list[dict[str, Any]]:
        """:meth:`_tracks` over the Delta tables: the top ``limit`` tracks from the files of the window's dates
        (widened by the longest track) and the scope's buckets, then the plate reads of those tracks from the
        plate files of the dates they span — one row per (track, plate read), as the Parquet path's join."""
        tracks = self._rows("tracks", lambda t: f"SELECT {_TRACK_COLUMNS} FROM {t} WHERE {where.sql()} QUALIFY "
                            f"row_number() OVER (PARTITION BY ikey ORDER BY {_LATEST}) = 1 ORDER BY {order} LIMIT ?",
                            [*where.params, limit], memory_table="tracks", start=window[0], end=window[1],
                            scope=scope, lookback=self._track_lookback)
        span = track_dates(tracks)
        if span is None:
            return []
        plates = self._rows(PLATE_KIND.name, lambda t: f"SELECT track_id, camera_id, text FROM {t} WHERE track_id IN "
                            f"(SELECT unnest(?::VARCHAR[])) QUALIFY row_number() OVER (PARTITION BY ikey ORDER BY "
                            f"{PLATE_KIND.latest_first}) = 1 ORDER BY text", [sorted({r["track_id"] for r in tracks})],
                            memory_table="plates_latest", start=span[0], end=span[1])
        texts: dict[tuple[str, str], list[str]] = {}
        for p in plates:
            texts.setdefault((p["track_id"], p["camera_id"]), []).append(p["text"])
        return [{**r, "plate": text} for r in tracks for text in texts.get((r["track_id"], r["camera_id"]), [None])]

    @staticmethod
    def _track_hit(r: dict[str, Any]) -> TrackHit:
        return TrackHit(
            track_id=r["track_id"], segment=int(r["segment"]), camera_id=r["camera_id"],
            started_at=_utc(r["started_at"]), ended_at=_utc(r["ended_at"]), class_name=r["class_name"],
            vehicle_type=r["vehicle_type"], colour=r["colour"], colour_confidence=float(r["colour_confidence"]),
            score=float(r["mean_score"]), crop_key=r["best_crop_key"], box=tuple(r["box"]), plate=r.get("plate"),
            upper_colour=r.get("upper_colour"), lower_colour=r.get("lower_colour"),
        )

    # -- faces -----------------------------------------------------------------------------------
    def faces(
        self,
        embedding: np.ndarray,
        *,
        model_id: str,
        k: int = 20,
        threshold: float | None = None,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[FaceHit]:
        """The ``k`` faces most similar to ``embedding`` (same model), exactly re-ranked; best first."""
        found = self._face_candidates(embedding, model_id, k, threshold, cameras, start, end)
        return [self._face_hit(c) for c in found]

    def _face_candidates(
        self, embedding: np.ndarray, model_id: str, k: int, threshold: float | None,
        cameras: Collection[str] | None, start: datetime | None, end: datetime | None,
    ) -> list[FaceCandidate]:
        scope = self._scope(cameras)
        start, end = _check_time(start, "start"), _check_time(end, "end")
        if not 1 <= k <= MAX_LIMIT:
            msg = f"k must be between 1 and {MAX_LIMIT}, got {k}"
            raise QueryError(msg)
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            msg = f"threshold must be a cosine similarity in [-1, 1], got {threshold}"
            raise QueryError(msg)
        if scope == []:
            return []
        if not self._refreshed:
            self.refresh()
        found = self.face_index.search(embedding, model_id=model_id, k=k, threshold=threshold, cameras=scope,
                                       start=start, end=end)
        return [c for c in found if self._in_scope(c.row["camera_id"], scope)]

    @staticmethod
    def _face_hit(c: FaceCandidate) -> FaceHit:
        r = c.row
        return FaceHit(
            face_id=r["face_id"], track_id=r["track_id"], camera_id=r["camera_id"], captured_at=_utc(r["captured_at"]),
            score=c.score, quality=float(r["quality"]), crop_key=r["crop_key"], box=tuple(r["box"]),
            model_id=r["model_id"],
        )

    def face_embeddings(self, face_ids: Collection[str], *, cameras: Collection[str] | None = None
                        ) -> dict[str, np.ndarray]:
        """The unit embeddings of the given faces that the catalog holds in ``cameras`` (face ID → vector);
        what case linking compares (:mod:`pipeline.cases.links`)."""
        scope = self._scope(cameras)
        wanted = sorted(set(face_ids))
        if scope == [] or not wanted:
            return {}
        where = _Filter().add("face_id IN (SELECT unnest(?::VARCHAR[]))", wanted).scope(scope)
        rows = self._query(f"SELECT DISTINCT face_id, _segment FROM faces WHERE {where.sql()}", where.params)
        out: dict[str, np.ndarray] = {}
        for segment in sorted({r["_segment"] for r in rows}):
            etag = self.catalog.loaded.get(segment)
            if etag is None:
                continue
            table = self.catalog.fetch(segment, etag, ["face_id", "camera_id", "embedding"])
            for fid, cam, vec in zip(*(table[c].to_pylist() for c in ("face_id", "camera_id", "embedding")),
                                     strict=True):
                if fid in wanted and self._in_scope(cam, scope) and vec:
                    v = np.asarray(vec, dtype=np.float32)
                    out[fid] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out

    # -- trajectories and sightings --------------------------------------------------------------
    def plate_trajectory(
        self,
        plate: str,
        *,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Sighting]:
        """Every read of exactly this plate, in time order, with camera positions."""
        hits = self.plates(plate, mode="exact", cameras=cameras, start=start, end=end,
                           limit=self.settings.max_trajectory_points)
        hits.sort(key=lambda h: (h.captured_at, h.read_id))
        spans = self._track_spans([h.track_id for h in hits], self._scope(cameras), [h.captured_at for h in hits])
        return [self._plate_sighting(h, spans) for h in hits]

    def face_trajectory(
        self,
        embedding: np.ndarray,
        *,
        model_id: str,
        threshold: float,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Sighting]:
        """Person tracks with a face at least ``threshold`` similar, one sighting per track, in time order."""
        found = self._face_candidates(embedding, model_id, self.settings.max_trajectory_points, threshold,
                                      cameras, start, end)
        best: dict[str, FaceCandidate] = {}
        for cand in found:  # best first, so the first face of a track is its best
            best.setdefault(cand.row["track_id"], cand)
        hits = sorted((self._face_hit(c) for c in best.values()), key=lambda h: (h.captured_at, h.face_id))
        spans = self._track_spans([h.track_id for h in hits], self._scope(cameras), [h.captured_at for h in hits])
        return [self._face_sighting(h, spans) for h in hits]

    def sighting(
        self,
        kind: SightingKind,
        sighting_id: str,
        *,
        cameras: Collection[str] | None = None,
    ) -> Sighting | None:
        """One sighting by ID (``read_id``, ``{track_id}/{segment}`` or ``track_id``, ``face_id``); None if
        unknown or outside ``cameras``."""
        scope = self._scope(cameras)
        if scope == []:
            return None
        if kind == "plate":
            where = _Filter().add("read_id = ?", sighting_id).scope(scope)
            rows = self._rows(PLATE_KIND.name, lambda t: f"SELECT {_PLATE_COLUMNS}, 0 AS edits FROM {t} WHERE "
                              f"{where.sql()} ORDER BY {_LATEST} LIMIT 1", where.params, memory_table="plates")
            hits = [self._plate_hit(r) for r in rows if self._in_scope(r["camera_id"], scope)]
            spans = self._track_spans([h.track_id for h in hits], scope, [h.captured_at for h in hits])
            return self._plate_sighting(hits[0], spans) if hits else None
        if kind == "track":
            return self._track_sighting(sighting_id, scope)
        if kind == "face":
            where = _Filter().add("face_id = ?", sighting_id).scope(scope)
            rows = self._query(f"SELECT *, 0.0 AS score FROM faces WHERE {where.sql()} ORDER BY {_LATEST} LIMIT 1",
                               where.params)
            faces = [self._face_hit(FaceCandidate(r, 0.0)) for r in rows if self._in_scope(r["camera_id"], scope)]
            if not faces:
                return None
            hit = faces[0]
            return self._face_sighting(hit, self._track_spans([hit.track_id], scope, [hit.captured_at]),
                                       with_score=False)
        msg = f"unknown sighting kind {kind!r}; one of: plate, track, face"
        raise QueryError(msg)

    def _track_sighting(self, sighting_id: str, scope: list[str] | None) -> Sighting | None:
        track_id, _, segment = sighting_id.partition("/")
        where = _Filter().add("track_id = ?", track_id).scope(scope)
        if segment:
            if not segment.isdigit():
                return None
            where.add("segment = ?", int(segment))
        hits = self._tracks(where, "segment, started_at", MAX_LIMIT, scope)
        if not hits:
            return None
        first = hits[0]
        began = min(h.started_at for h in hits)
        ended = max(h.ended_at for h in hits)
        pad = timedelta(seconds=self.settings.clip_padding_s)
        return self._make_sighting(
            "track", sighting_id, first.camera_id, began, first.crop_key, track_id, began - pad, ended + pad,
            box=first.box, text=first.plate, score=first.score,
        )

    def _track_spans(self, track_ids: list[str], scope: list[str] | None,
                     around: Sequence[datetime] = ()) -> dict[str, tuple[datetime, datetime]]:
        """Track ID → (first start, last end) over its segments, for clip ranges. On the Delta tables only the
        segments within the longest track duration of the sighting times ``around`` are read."""
        if not track_ids:
            return {}
        where = _Filter().add("track_id IN (SELECT unnest(?::VARCHAR[]))", sorted(set(track_ids))).scope(scope)
        first = min(around) if around else None
        last = max(around) + self._track_lookback + timedelta(microseconds=1) if around else None
        rows = self._rows("tracks", lambda t: f"SELECT track_id, min(started_at) AS s, max(ended_at) AS e FROM {t} "
                          f"WHERE {where.sql()} GROUP BY track_id", where.params, memory_table="tracks",
                          start=first, end=last, scope=scope, lookback=self._track_lookback)
        return {r["track_id"]: (_utc(r["s"]), _utc(r["e"])) for r in rows}

    def _clip(self, at: datetime, track_id: str, spans: dict[str, tuple[datetime, datetime]]) -> tuple[datetime, datetime]:
        pad = timedelta(seconds=self.settings.clip_padding_s)
        began, ended = spans.get(track_id, (at, at))
        return min(began, at) - pad, max(ended, at) + pad

    def _plate_sighting(self, h: PlateHit, spans: dict[str, tuple[datetime, datetime]]) -> Sighting:
        clip_start, clip_end = self._clip(h.captured_at, h.track_id, spans)
        return self._make_sighting("plate", h.read_id, h.camera_id, h.captured_at, h.crop_key, h.track_id,
                                   clip_start, clip_end, box=h.box, text=h.text, score=h.confidence)

    def _face_sighting(
        self, h: FaceHit, spans: dict[str, tuple[datetime, datetime]], *, with_score: bool = True
    ) -> Sighting:
        clip_start, clip_end = self._clip(h.captured_at, h.track_id, spans)
        return self._make_sighting("face", h.face_id, h.camera_id, h.captured_at, h.crop_key, h.track_id,
                                   clip_start, clip_end, box=h.box, score=h.score if with_score else None)

    def _make_sighting(
        self, kind: SightingKind, ident: str, camera_id: str, at: datetime, crop_key: str | None,
        track_id: str, clip_start: datetime, clip_end: datetime, **extra: Any,
    ) -> Sighting:
        cam = self.directory.get(camera_id)
        return Sighting(
            kind=kind, id=ident, camera_id=camera_id, camera_name=(cam.name if cam and cam.name else camera_id),
            lat=cam.latitude if cam else None, lon=cam.longitude if cam else None, time=at, crop_key=crop_key,
            track_id=track_id, clip_start=clip_start, clip_end=clip_end, **extra,
        )

    # -- alerts and cameras ----------------------------------------------------------------------
    def alerts(
        self,
        *,
        cameras: Collection[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        alert_type: str | None = None,
        limit: int = 100,
    ) -> list[AlertHit]:
        """Alerts in [start, end), newest first."""
        scope = self._scope(cameras)
        start, end, limit = _check_time(start, "start"), _check_time(end, "end"), _check_limit(limit)
        _check_choice(alert_type, get_args(AlertType), "alert type")
        if scope == []:
            return []
        where = _Filter().scope(scope).at("occurred_at", start, end)
        if alert_type is not None:
            where.add("alert_type = ?", alert_type)
        rows = self._rows(
            "alerts", lambda t: f"SELECT * FROM {t} WHERE {where.sql()} QUALIFY row_number() OVER (PARTITION BY ikey "
            f"ORDER BY {_LATEST}) = 1 ORDER BY occurred_at DESC, alert_id LIMIT ?", [*where.params, limit],
            memory_table="alerts", start=start, end=end, scope=scope)
        return [
            AlertHit(
                alert_id=r["alert_id"], alert_type=r["alert_type"], camera_id=r["camera_id"],
                occurred_at=_utc(r["occurred_at"]), severity=r["severity"], rule_id=r["rule_id"],
                track_id=r["track_id"], message=r["message"], evidence_keys=tuple(r["evidence_keys"] or ()),
                details=json.loads(r["details"] or "{}"),
            )
            for r in rows if self._in_scope(r["camera_id"], scope)
        ]

    def camera_status(self, *, cameras: Collection[str] | None = None) -> list[CameraState]:
        """Every camera (registry and any camera that reported status), with its latest state; by ID."""
        scope = self._scope(cameras)
        if scope == []:
            return []
        where = _Filter().scope(scope)
        order = f"observed_at DESC, {_LATEST}"
        rows = self._rows(
            "camera-status", lambda t: f"WITH s AS (SELECT * FROM {t} WHERE {where.sql()}), "
            f"conn AS (SELECT camera_id, event, reason, detail, observed_at FROM s WHERE event <> 'stats' "
            f"QUALIFY row_number() OVER (PARTITION BY camera_id ORDER BY {order}) = 1), "
            f"stats AS (SELECT camera_id, observed_at, fps_in, fps_out, bitrate_kbps FROM s WHERE event = 'stats' "
            f"QUALIFY row_number() OVER (PARTITION BY camera_id ORDER BY {order}) = 1) "
            "SELECT coalesce(conn.camera_id, stats.camera_id) AS camera_id, conn.event, conn.reason, conn.detail, "
            "conn.observed_at AS changed_at, stats.observed_at AS stats_at, stats.fps_in, stats.fps_out, "
            "stats.bitrate_kbps FROM conn FULL OUTER JOIN stats ON conn.camera_id = stats.camera_id",
            where.params, memory_table="camera_status", scope=scope)
        return self.directory.states(rows, scope)
