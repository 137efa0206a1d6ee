"""FAISS face shards: one index per embedding model and time window, built from the Parquet truth.

A shard holds every face of one model (``model_id``) whose capture time falls in one window (a UTC
day, or an hour with ``index.face_window: hour``). Vector IDs are positions ``0..count-1`` in the
order the faces were added: segment by segment (each segment's rows in file order), a face ID seen
before in the shard being skipped, so the same segments always give the same IDs. The manifest
lists the segments (key, etag, first ID, count), which is all it takes to map an ID back to its row
and to tell whether the shard is still in step with the catalog.

Snapshots live at ``{index_prefix}/faces/{model}/{window}/shard.faiss`` and ``manifest.json``
(written in that order). The manifest records the shard file's size and SHA-256 as its writer computed
them, and nothing is handed to FAISS's parser (C++, not built for hostile input) before the file
matches both: the size is compared before the file is fetched, the digest before it is parsed. The
manifest itself is JSON, at most :data:`MAX_MANIFEST_BYTES`, validated field by field.
:meth:`ShardBuilder.open` loads a snapshot, checks it against the catalog and catches up with
segments written since; a missing snapshot, a refused one (size or digest mismatch, unreadable
manifest or index, counted in :attr:`ShardBuilder.refused`) or one that names a segment the catalog
no longer has is rebuilt from the segments — the Parquet truth.

Index type by size (``docs/performance.md``, "Face index", has the measurements behind the defaults): up
to ``index.flat_max_vectors`` exact ``IndexFlatIP`` on the L2-normalised vectors (inner product =
cosine); above it, by ``index.large_index``:

* ``pq-refine`` (default) — ``PQ{d/pq_sub_dims}x4fs,RFlat``: every vector is scanned as a 4-bit product
  code with FAISS's SIMD fast-scan, and the best ``refine_k_factor`` × k candidates are re-scored on the
  stored float32 vectors. An exhaustive scan, so recall does not depend on the data having structure a
  graph or a partition can exploit (uniform-looking data is where HNSW and IVF lose recall); it trains
  PQ codebooks on a sample in seconds. Cost grows linearly with the shard (~4 ms per 10^6 × 128 here).
* ``hnsw`` — ``HNSW{M},Flat`` (``hnsw_m``, ``hnsw_ef_construction``, ``hnsw_ef_search``).
* ``ivf`` — ``IVF{nlist},Flat`` (``nlist`` the power of two nearest ``sqrt(n)``, trained on up to 64
  vectors per list, searched with ``ivf_nprobe`` lists).

Every factory keeps full float32 vectors, so the exact re-ranking reconstructs the candidates' vectors
from the index itself. Whatever the type, a snapshot is handed to FAISS's parser only after its size and
SHA-256 matched the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter

from pipeline.catalog.format import FACE_KIND
from pipeline.config.index import IndexConfig
from pipeline.documents import DocumentRefused, read_document
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""A manifest lists one entry (~150 bytes) per segment of a window: far below this."""
SHARD_FILE = "shard.faiss"
MANIFEST_FILE = "manifest.json"
META_COLUMNS = ["face_id", "track_id", "camera_id", "captured_at", "model_id", "quality", "crop_key", "box"]
"""What a shard keeps per vector (and all it reads of a segment when it loads from a snapshot)."""
EXACT_SUBSET_MAX = 32768
"""A filter leaving at most this many vectors of an approximate index is searched exactly instead:
graph and list searches lose recall and speed when most of the index is filtered out."""
MIN_ANN_VECTORS = 2048
"""Below this an approximate index is pointless (and IVF could not train ~39 vectors per list)."""
PQ_TRAIN_VECTORS = 65536
"""Training sample of the PQ codebooks (16 centroids per sub-quantizer: 4096 vectors per centroid)."""
META_SCHEMA = pa.schema([FACE_KIND.schema.field(c) for c in META_COLUMNS])
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]")

SegmentFetcher = Callable[[str, str, "list[str] | None"], pa.Table]
"""``fetch(key, etag, columns)``: the segment's table, all columns (None) or only ``columns``."""


class ShardError(RuntimeError):
    """A snapshot cannot be used (missing, corrupt, or out of step with the catalog)."""


class ShardMissing(ShardError):
    """There is no snapshot (yet) for the window."""


class ShardOutOfStep(ShardError):
    """The snapshot covers a segment that changed or left the catalog since (compaction, retention)."""


# -- naming --------------------------------------------------------------------------------------
def window_of(ts: datetime, window: str) -> str:
    """The window key of a UTC time: ``2024-05-01`` (day) or ``2024-05-01T08`` (hour)."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%d") if window == "day" else ts.strftime("%Y-%m-%dT%H")


def window_bounds(key: str) -> tuple[datetime, datetime]:
    """[start, end) of a window key."""
    if "T" in key:
        start = datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        return start, datetime.fromtimestamp(start.timestamp() + 3600, tz=UTC)
    start = datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)
    return start, datetime.fromtimestamp(start.timestamp() + 86400, tz=UTC)


def model_key(model_id: str) -> str:
    """A path segment for a model ID (``/`` and odd characters replaced, a hash added when anything was)."""
    safe = _UNSAFE.sub("_", model_id)
    if safe != model_id:
        safe += "-" + hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return safe


def model_version(model_id: str) -> str:
    """The version part of a model-registry ID (``arcface-r50@1`` → ``1``); empty when there is none."""
    return model_id.rsplit("@", 1)[1] if "@" in model_id else ""


def shard_prefix(index_prefix: str, model_id: str, window: str) -> str:
    return f"{index_prefix}/faces/{model_key(model_id)}/{window}"


# -- index type ----------------------------------------------------------------------------------
def nlist_for(n: int) -> int:
    """IVF lists: the power of two nearest sqrt(n), at least 16."""
    return max(16, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))


def pq_codes(dim: int, settings: IndexConfig) -> int:
    """Sub-quantizers of the pq-refine index: ``dim / pq_sub_dims``, one per dimension when it does not divide."""
    return dim // settings.pq_sub_dims if dim % settings.pq_sub_dims == 0 else dim


def choose_factory(n: int, settings: IndexConfig, dim: int = 128) -> str:
    """The FAISS factory string for a shard of ``n`` vectors of ``dim`` (never approximate below MIN_ANN_VECTORS)."""
    if n <= max(settings.flat_max_vectors, MIN_ANN_VECTORS - 1):
        return "Flat"
    if settings.large_index == "hnsw":
        return f"HNSW{settings.hnsw_m},Flat"
    if settings.large_index == "pq-refine":
        return f"PQ{pq_codes(dim, settings)}x4fs,RFlat"
    return f"IVF{nlist_for(n)},Flat"


def metric_for(factory: str) -> int:
    """Inner product, except for PQ fast-scan indexes, which rank by L2 distance.

    Fast-scan quantises its per-query lookup tables to 8 bits. Face embeddings sit in a narrow cone (dlib:
    different people at cosine ~0.88), so inner-product tables are dominated by the shared component and the 8 bits
    are spent on it: recall@10 0.59 on the real-statistics set at 10^6, 0.87 at 10^5. L2 tables are differences,
    free of that offset (1.000 at 10^5). Shard vectors are L2-normalised, so ranking by L2 distance is ranking by
    inner product for any query (|q − x|² = |q|² + 1 − 2 q·x), and the exact re-rank scores inner products anyway.
    """
    fast_scan = any(part.endswith("fs") for part in factory.split(","))
    return faiss.METRIC_L2 if fast_scan else faiss.METRIC_INNER_PRODUCT


def build_index(vectors: np.ndarray, factory: str, settings: IndexConfig, seed: int = 1234) -> faiss.Index:
    """An index of ``factory`` over ``vectors`` ranking by inner product (see :func:`metric_for`), trained on a
    sample when it needs training."""
    dim = vectors.shape[1]
    index = faiss.index_factory(dim, factory, metric_for(factory))
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efConstruction = settings.hnsw_ef_construction
    if not index.is_trained:
        ivf = _ivf_of(index)
        sample = min(len(vectors), 64 * ivf.nlist if ivf is not None else PQ_TRAIN_VECTORS)
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(vectors), size=sample, replace=False)) if sample < len(vectors) else slice(None)
        index.train(np.ascontiguousarray(vectors[rows]))
    if len(vectors):
        index.add(np.ascontiguousarray(vectors))
    configure(index, settings)
    return index


def _ivf_of(index: faiss.Index) -> Any:
    """The IVF inside ``index`` (also under a refine stage), or None."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def configure(index: faiss.Index, settings: IndexConfig) -> None:
    """Search-time parameters (nprobe, efSearch, refine factor) and the direct map IVF needs to reconstruct
    vectors (a refine stage reconstructs from its own float32 copy instead)."""
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = settings.hnsw_ef_search
        return
    if isinstance(index, faiss.IndexRefine):
        index.k_factor = float(settings.refine_k_factor)
    ivf = _ivf_of(index)
    if ivf is None:
        return
    ivf.nprobe = settings.ivf_nprobe
    if not isinstance(index, faiss.IndexRefine):
        ivf.make_direct_map()


def selects_inside(index: faiss.Index) -> bool:
    """Whether FAISS can filter by an ID selector inside this index's search (fast-scan PQ cannot, and an
    IndexRefine silently ignores a selector of its own: it must reach the base index)."""
    if isinstance(index, faiss.IndexRefine):
        return _ivf_of(index) is not None
    return True


def search_params(index: faiss.Index, settings: IndexConfig, selector: Any) -> faiss.SearchParameters:
    """Search parameters carrying the ID selector (FAISS's Python layer takes them as keywords)."""
    if isinstance(index, faiss.IndexRefine):
        base = faiss.SearchParametersIVF(sel=selector, nprobe=settings.ivf_nprobe)  # type: ignore[call-arg]
        return faiss.IndexRefineSearchParameters(  # type: ignore[call-arg]
            k_factor=float(settings.refine_k_factor), base_index_params=base)
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=settings.hnsw_ef_search)  # type: ignore[attr-defined]
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=settings.ivf_nprobe)  # type: ignore[call-arg]
    return faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]


# -- manifest ------------------------------------------------------------------------------------
@dataclass
class SegmentEntry:
    key: str
    etag: str
    first_id: int
    count: int


@dataclass
class Manifest:
    """What a shard snapshot holds and how it was built."""

    model_id: str
    window: str
    dimension: int
    factory: str
    count: int = 0
    model_version: str = ""
    metric: str = "inner_product"
    params: dict[str, Any] = field(default_factory=dict)
    time_range: tuple[str, str] | None = None
    created_at: str = ""
    updated_at: str = ""
    shard_sha256: str = ""
    shard_bytes: int = 0
    segments: list[SegmentEntry] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    @property
    def id_range(self) -> tuple[int, int]:
        """[first, last + 1) of the vector IDs."""
        return (0, self.count)

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["id_range"] = list(self.id_range)
        return json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """The manifest in ``data``; ShardError unless it is one of this version, every field of its type."""
        try:
            manifest = read_document(data, _MANIFEST, max_bytes=MAX_MANIFEST_BYTES, version=MANIFEST_VERSION)
        except DocumentRefused as exc:
            msg = f"manifest refused: {exc}"
            raise ShardError(msg) from None
        if not (_SHA256.fullmatch(manifest.shard_sha256) and 0 < manifest.dimension <= 65536
                and manifest.count >= 0 and manifest.shard_bytes > 0
                and all(s.first_id >= 0 and s.count >= 0 for s in manifest.segments)):
            msg = "manifest values out of range (digest, dimension, counts or size)"
            raise ShardError(msg)
        return manifest


_MANIFEST = TypeAdapter(Manifest)
_SHA256 = re.compile(r"[0-9a-f]{64}")


# -- one shard in memory -------------------------------------------------------------------------
class Shard:
    """A loaded shard: the FAISS index, its manifest and the metadata of every vector, by ID."""

    def __init__(self, manifest: Manifest, index: faiss.Index) -> None:
        self.manifest = manifest
        self.index = index
        self.dirty = False
        self._chunks: list[pa.Table] = []
        self._meta: pa.Table | None = None
        self._seen: set[str] = set()
        self._camera_codes: np.ndarray | None = None
        self._camera_names: list[str] = []
        self._times: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def covered(self) -> dict[str, str]:
        return {s.key: s.etag for s in self.manifest.segments}

    def select_rows(self, table: pa.Table, *, vectors: bool = True) -> tuple[pa.Table, np.ndarray]:
        """The rows of a segment that belong to this shard and are new to it, and (if asked) their vectors."""
        start, end = window_bounds(self.manifest.window)
        mask = pc.and_(
            pc.equal(table["model_id"], self.manifest.model_id),
            pc.and_(pc.greater_equal(table["captured_at"], pa.scalar(start, type=table["captured_at"].type)),
                    pc.less(table["captured_at"], pa.scalar(end, type=table["captured_at"].type))),
        )
        rows = table.filter(mask)
        keep = []
        for i, face_id in enumerate(rows["face_id"].to_pylist()):
            if face_id not in self._seen:
                self._seen.add(face_id)
                keep.append(i)
        rows = rows.take(pa.array(keep, type=pa.int64()))
        empty = np.zeros((0, self.manifest.dimension), dtype=np.float32)
        if rows.num_rows == 0 or not vectors:
            return rows.select(META_COLUMNS), empty
        flat = rows["embedding"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        matrix = np.ascontiguousarray(flat.reshape(rows.num_rows, -1), dtype=np.float32)
        if matrix.shape[1] != self.manifest.dimension:
            msg = (f"segment rows of {self.manifest.model_id} have dimension {matrix.shape[1]}, "
                   f"the shard has {self.manifest.dimension}")
            raise ShardError(msg)
        faiss.normalize_L2(matrix)
        return rows.select(META_COLUMNS), matrix

    def attach(self, key: str, etag: str, meta: pa.Table, first_id: int) -> None:
        """Record that IDs ``first_id…`` are ``meta``'s rows from segment ``key``."""
        self.manifest.segments.append(SegmentEntry(key, etag, first_id, meta.num_rows))
        self._chunks.append(meta.cast(META_SCHEMA))
        self._meta = None

    def add_segment(self, key: str, etag: str, table: pa.Table) -> int:
        """Add a segment's new rows to the index (and the manifest); the number of vectors added."""
        meta, vectors = self.select_rows(table)
        first = self.count
        if len(vectors):
            self.index.add(vectors)
        self.attach(key, etag, meta, first)
        self.manifest.count = self.count
        self.dirty = True
        return len(vectors)

    # -- lookups ---------------------------------------------------------------------------------
    @property
    def meta(self) -> pa.Table:
        if self._meta is None:
            self._meta = pa.concat_tables(self._chunks).combine_chunks() if self._chunks else META_SCHEMA.empty_table()
            cams = self._meta["camera_id"].dictionary_encode().combine_chunks() if self._meta.num_rows else None
            if cams is not None:
                self._camera_codes = cams.indices.to_numpy(zero_copy_only=False).astype(np.int32)
                self._camera_names = cams.dictionary.to_pylist()
                ts = self._meta["captured_at"].cast(pa.int64()).combine_chunks()
                self._times = ts.to_numpy(zero_copy_only=False)
            else:
                self._camera_codes, self._camera_names = np.zeros(0, np.int32), []
                self._times = np.zeros(0, np.int64)
        return self._meta

    def filter_mask(
        self, cameras: Iterable[str] | None, start: datetime | None, end: datetime | None
    ) -> np.ndarray | None:
        """Boolean mask over IDs for the camera scope and [start, end); None when nothing is filtered."""
        if cameras is None and start is None and end is None:
            return None
        _ = self.meta
        assert self._camera_codes is not None and self._times is not None
        mask = np.ones(self.count, dtype=bool)
        if cameras is not None:
            allowed = {c for c in cameras}
            codes = [i for i, name in enumerate(self._camera_names) if name in allowed]
            mask &= np.isin(self._camera_codes, np.array(codes, dtype=np.int32))
        if start is not None:
            mask &= self._times >= int(start.timestamp() * 1_000_000)
        if end is not None:
            mask &= self._times < int(end.timestamp() * 1_000_000)
        return mask

    def search(
        self, query: np.ndarray, k: int, settings: IndexConfig, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` (ids, exact cosine scores) best first, only among ``mask``'s IDs when given.

        FAISS proposes ``k × rerank_factor`` candidates (filtered inside the search with an ID
        selector); their stored vectors are scored exactly against the query and sorted. When the
        filter leaves few vectors (or at most EXACT_SUBSET_MAX of an approximate index) they are all
        scored exactly instead.
        """
        if self.count == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        wanted = min(self.count, k * settings.rerank_factor)
        if mask is not None:
            allowed = np.flatnonzero(mask)
            if len(allowed) == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            if len(allowed) <= max(4 * wanted, 4096) or (
                    len(allowed) <= EXACT_SUBSET_MAX and not isinstance(self.index, faiss.IndexFlat)):
                return self._exact(q, allowed, k)
            if not selects_inside(self.index):
                return self._exact(q, self._overfetch(q, mask, len(allowed), wanted), k)
            bits = np.packbits(mask.astype(np.uint8), bitorder="little")
            selector = faiss.IDSelectorBitmap(self.count, faiss.swig_ptr(bits))
            _, ids = self.index.search(q, wanted, params=search_params(self.index, settings, selector))
        else:
            _, ids = self.index.search(q, wanted)
        candidates = ids[0][ids[0] >= 0]
        return self._exact(q, candidates, k)

    def _overfetch(self, q: np.ndarray, mask: np.ndarray, allowed: int, wanted: int) -> np.ndarray:
        """Candidates among ``mask`` from a refine index whose base cannot take an ID selector (PQ fast-scan):
        the base proposes enough codes that ``wanted × k_factor`` of them are allowed at the filter's
        selectivity (×1.5), four times more while short; the caller re-scores them exactly."""
        base = self.index.base_index  # type: ignore[attr-defined]
        need = min(allowed, int(wanted * max(1.0, float(self.index.k_factor))))  # type: ignore[attr-defined]
        fetch = min(self.count, math.ceil(need * self.count / allowed * 1.5))
        while True:
            _, ids = base.search(q, fetch)
            ids = ids[0][ids[0] >= 0]
            kept = ids[mask[ids]]
            if len(kept) >= need or fetch >= self.count:
                return kept[:need]
            fetch = min(self.count, fetch * 4)

    def _exact(self, q: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return ids, np.zeros(0, np.float32)
        vectors = self.index.reconstruct_batch(ids)
        scores = vectors @ q[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return ids[order], scores[order]


# -- building, loading, snapshots ------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class ShardBuilder:
    """Opens, catches up, rebuilds and snapshots shards; used by the indexer and by the query layer."""

    def __init__(self, store: ObjectStore, settings: IndexConfig, fetch: SegmentFetcher) -> None:
        self.store = store
        self.settings = settings
        self.fetch = fetch
        self.refused = 0

    def keys(self, model_id: str, window: str) -> tuple[str, str]:
        prefix = shard_prefix(self.settings.index_prefix, model_id, window)
        return f"{prefix}/{SHARD_FILE}", f"{prefix}/{MANIFEST_FILE}"

    def open(self, model_id: str, window: str, segments: dict[str, str]) -> tuple[Shard, bool]:
        """The shard for ``segments`` (key → etag of every face segment of the window's date), and
        whether it had to be rebuilt from the catalog."""
        try:
            shard = self.load(model_id, window, segments)
        except (ShardMissing, ShardOutOfStep) as exc:
            log.info("face shard %s/%s: %s; building it from the catalog", model_id, window, exc)
            return self.rebuild(model_id, window, segments), True
        except ShardError as exc:
            self.refused += 1
            log.warning("face shard %s/%s: snapshot refused (%s); building it from the catalog", model_id, window,
                        exc)
            return self.rebuild(model_id, window, segments), True
        self.catch_up(shard, segments)
        return shard, False

    def load(self, model_id: str, window: str, segments: dict[str, str]) -> Shard:
        """The snapshot, verified against its manifest and the catalog; raises ShardError if unusable."""
        shard_key, manifest_key = self.keys(model_id, window)
        try:
            manifest = Manifest.from_json(self.store.get(manifest_key, length=MAX_MANIFEST_BYTES + 1))
            size = self.store.stat(shard_key).size
        except ObjectNotFound as exc:
            msg = f"no snapshot ({exc})"
            raise ShardMissing(msg) from None
        if manifest.model_id != model_id or manifest.window != window:
            msg = f"the manifest is of {manifest.model_id}/{manifest.window}"
            raise ShardError(msg)
        if size != manifest.shard_bytes:
            msg = f"shard file has {size} bytes, its manifest says {manifest.shard_bytes}"
            raise ShardError(msg)
        try:
            blob = self.store.get(shard_key)
        except ObjectNotFound as exc:
            msg = f"no snapshot ({exc})"
            raise ShardMissing(msg) from None
        if hashlib.sha256(blob).hexdigest() != manifest.shard_sha256:
            msg = "shard file does not match the SHA-256 in its manifest"
            raise ShardError(msg)
        gone = [s.key for s in manifest.segments if segments.get(s.key) != s.etag]
        if gone:
            msg = f"{len(gone)} segment(s) it covers changed or left the catalog (first: {gone[0]})"
            raise ShardOutOfStep(msg)
        try:
            index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        except RuntimeError as exc:
            msg = f"corrupt shard file ({exc})"
            raise ShardError(msg) from None
        configure(index, self.settings)
        shard = Shard(manifest, index)
        entries, manifest.segments = manifest.segments, []
        for entry in entries:
            meta, _ = shard.select_rows(self.fetch(entry.key, entry.etag, META_COLUMNS), vectors=False)
            if meta.num_rows != entry.count or entry.first_id != sum(s.count for s in manifest.segments):
                msg = f"segment {entry.key} gives {meta.num_rows} faces, the manifest says {entry.count}"
                raise ShardError(msg)
            shard.attach(entry.key, entry.etag, meta, entry.first_id)
        if index.ntotal != manifest.count or index.d != manifest.dimension:
            msg = f"index holds {index.ntotal}×{index.d}, manifest says {manifest.count}×{manifest.dimension}"
            raise ShardError(msg)
        return shard

    def catch_up(self, shard: Shard, segments: dict[str, str]) -> int:
        """Add segments the shard does not cover yet; switches to the large index past the threshold."""
        covered = shard.covered()
        added = 0
        for key in sorted(k for k in segments if k not in covered):
            added += shard.add_segment(key, segments[key], self.fetch(key, segments[key], None))
        if added:
            log.info("face shard %s/%s: caught up %d face(s)", shard.manifest.model_id, shard.manifest.window, added)
        self.maybe_upgrade(shard)
        return added

    def rebuild(self, model_id: str, window: str, segments: dict[str, str], dimension: int | None = None) -> Shard:
        """A fresh shard from every segment of the window (the Parquet truth)."""
        tables = [(key, segments[key], self.fetch(key, segments[key], None)) for key in sorted(segments)]
        if dimension is None:
            dimension = next((_dimension(t, model_id) for _, _, t in tables if _dimension(t, model_id)), 0)
        if not dimension:
            msg = f"no faces of model {model_id!r} in window {window}"
            raise ShardError(msg)
        created = _now()
        manifest = Manifest(model_id=model_id, window=window, dimension=dimension, factory="Flat",
                            model_version=model_version(model_id), created_at=created, updated_at=created)
        shard = Shard(manifest, build_index(np.zeros((0, dimension), np.float32), "Flat", self.settings))
        for key, etag, table in tables:
            shard.add_segment(key, etag, table)
        self.maybe_upgrade(shard)
        shard.dirty = True
        return shard

    def new_shard(self, model_id: str, window: str, dimension: int) -> Shard:
        created = _now()
        manifest = Manifest(model_id=model_id, window=window, dimension=dimension, factory="Flat",
                            model_version=model_version(model_id), created_at=created, updated_at=created)
        return Shard(manifest, build_index(np.zeros((0, dimension), np.float32), "Flat", self.settings))

    def maybe_upgrade(self, shard: Shard) -> bool:
        """Rebuild as the large index once the shard outgrows exact search (IDs are kept)."""
        factory = choose_factory(shard.count, self.settings, shard.manifest.dimension)
        if factory == shard.manifest.factory or shard.manifest.factory != "Flat":
            return False
        vectors = shard.index.reconstruct_n(0, shard.count)
        shard.index = build_index(vectors, factory, self.settings)
        shard.manifest.factory = factory
        shard.dirty = True
        log.info("face shard %s/%s: %d vectors, now %s", shard.manifest.model_id, shard.manifest.window,
                 shard.count, factory)
        return True

    def snapshot(self, shard: Shard) -> None:
        """Write the shard and then its manifest to the object store."""
        blob = faiss.serialize_index(shard.index).tobytes()
        m = shard.manifest
        m.count = shard.count
        m.updated_at = _now()
        m.shard_sha256 = hashlib.sha256(blob).hexdigest()
        m.shard_bytes = len(blob)
        m.params = _params(shard.index)
        m.time_range = _time_range(shard)
        shard_key, manifest_key = self.keys(m.model_id, m.window)
        self.store.put(shard_key, blob)
        self.store.put(manifest_key, m.to_json(), content_type="application/json")
        shard.dirty = False
        log.info("face shard %s/%s: snapshot of %d vectors (%s, %d bytes)", m.model_id, m.window, m.count,
                 m.factory, len(blob))


def _dimension(table: pa.Table, model_id: str) -> int:
    rows = table.filter(pc.equal(table["model_id"], model_id))
    return int(rows["dimension"][0].as_py()) if rows.num_rows else 0


def _params(index: faiss.Index) -> dict[str, Any]:
    if isinstance(index, faiss.IndexHNSW):
        hnsw = index.hnsw
        return {"M": hnsw.nb_neighbors(1), "efSearch": hnsw.efSearch,  # type: ignore[attr-defined]
                "efConstruction": hnsw.efConstruction}
    if isinstance(index, faiss.IndexIVF):
        return {"nlist": index.nlist, "nprobe": index.nprobe}
    if isinstance(index, faiss.IndexRefine):
        ivf = _ivf_of(index)
        extra = {"nlist": ivf.nlist, "nprobe": ivf.nprobe} if ivf is not None else {}
        return {"k_factor": index.k_factor, **extra}
    return {}


def _time_range(shard: Shard) -> tuple[str, str] | None:
    meta = shard.meta
    if meta.num_rows == 0:
        return None
    lo, hi = pc.min_max(meta["captured_at"]).values()
    return (lo.as_py().isoformat(), hi.as_py().isoformat())
