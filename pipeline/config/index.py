"""Configuration of the indexer worker and the search query layer (catalog, FAISS shards, cache).

The indexer appends Parquet segments under ``catalog_prefix`` and FAISS face shards under
``index_prefix``; the query layer (``pipeline.search``) reads both through a local cache folder.
What each setting trades off is in ``docs/search.md``; the index-type threshold and the ANN
parameters come from the measurements in that document (``benchmarks/search``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section

_PREFIX_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"


def check_prefixes_differ(catalog: str, index: str) -> None:
    """Catalog and index objects must not share a prefix (the catalog is listed recursively)."""
    if catalog == index or catalog.startswith(index + "/") or index.startswith(catalog + "/"):
        msg = f"catalog_prefix {catalog!r} and index_prefix {index!r} must not contain one another"
        raise ValueError(msg)


class IndexConfig(Section):
    """The indexer worker (``tubeline worker index``) and the search query layer."""

    catalog_prefix: str = Field(
        "catalog", title="Catalog prefix", description="Object-store prefix of the Parquet catalog (the durable truth).",
        pattern=_PREFIX_PATTERN, max_length=200,
    )
    index_prefix: str = Field(
        "index", title="Index prefix", description="Object-store prefix of the FAISS shard snapshots.",
        pattern=_PREFIX_PATTERN, max_length=200,
    )
    flush_max_records: int = Field(
        5000, title="Flush size", description="Buffered records (all kinds and cameras) that trigger a flush.",
        ge=1, le=1_000_000,
    )
    flush_max_bytes: int = Field(
        64 << 20, title="Flush bytes", description="Approximate buffered message bytes that trigger a flush.",
        ge=1024, le=2 << 30,
    )
    flush_interval_s: float = Field(
        30.0, title="Flush interval",
        description="Seconds after the oldest buffered record arrived before a flush; bounds how stale search is "
        "and how much a crash replays.", gt=0, le=3600,
    )
    compact_after_parts: int = Field(
        24, title="Compaction trigger",
        description="When the indexer has written this many segments to one kind/camera/date partition, it merges "
        "the partition into one deduplicated segment; 0 disables compaction.", ge=0, le=100_000,
    )
    face_window: Literal["day", "hour"] = Field(
        "day", title="Face shard window", description="Time window of one FAISS shard (per embedding model).",
    )
    flat_max_vectors: int = Field(
        100_000, title="Exact-search threshold",
        description="Shards with at most this many vectors use exact search (IndexFlatIP); larger ones use "
        "the approximate index named by large_index.", ge=0, le=100_000_000,
    )
    large_index: Literal["pq-refine", "ivf", "hnsw"] = Field(
        "pq-refine", title="Large-shard index",
        description="Approximate index for shards above flat_max_vectors: pq-refine (4-bit PQ fast-scan over "
        "every vector, the best refine_k_factor × k re-scored exactly; recall@10 ≥ 0.99 at 10^6 × 128 in ~4 ms, "
        "built in seconds), hnsw (fast but recall@10 0.78 at 10^6 × 128 on hard data, minutes to build) or ivf "
        "(fast to rebuild, needs a high nprobe for the same recall). Measured in docs/performance.md.",
    )
    pq_sub_dims: int = Field(
        2, title="PQ dimensions per code",
        description="pq-refine: vector dimensions per 4-bit sub-quantizer (the PQ has dimension / pq_sub_dims "
        "sub-quantizers; fewer dimensions per code = finer candidates and a slower scan).", ge=1, le=64,
    )
    refine_k_factor: int = Field(
        8, title="Refine factor",
        description="pq-refine: candidates taken from the PQ scan per result asked of FAISS, re-scored on the "
        "stored float32 vectors.", ge=1, le=1000,
    )
    ivf_nprobe: int = Field(
        128, title="IVF nprobe", description="Inverted lists visited per IVF query (recall against speed).",
        ge=1, le=65536,
    )
    hnsw_m: int = Field(32, title="HNSW M", description="Neighbours per HNSW node.", ge=4, le=128)
    hnsw_ef_search: int = Field(
        128, title="HNSW efSearch", description="HNSW search queue length (recall against speed).", ge=8, le=4096,
    )
    hnsw_ef_construction: int = Field(
        80, title="HNSW efConstruction", description="HNSW build queue length.", ge=8, le=4096,
    )
    build_threads: int = Field(
        1, title="FAISS build threads",
        description="OpenMP threads FAISS may use in the indexer's process to train and fill shards (0: FAISS's "
        "default, every core). On shared cores spinning threads cost more than they give: a 20k×128 fast-scan "
        "build took 0.82 s on one thread and 1.59 s on two beside two busy cores (docs/performance.md).",
        ge=0, le=256,
    )
    search_threads: int = Field(
        1, title="FAISS search threads",
        description="OpenMP threads FAISS may use in the query layer's process (0: FAISS's default, every core). "
        "Queries are single vectors served one at a time: a second thread buys nothing, and on shared cores its "
        "spinning cost ~20× the CPU of one thread per query (docs/performance.md).", ge=0, le=256,
    )
    rerank_factor: int = Field(
        4, title="Re-rank factor", description="Candidates fetched from FAISS per wanted hit, then re-ranked exactly.",
        ge=1, le=100,
    )
    shard_snapshot_interval_s: float = Field(
        300.0, title="Shard snapshot interval",
        description="Seconds between FAISS snapshots of shards that changed; the query layer catches up from the "
        "Parquet segments written since.", gt=0, le=86_400,
    )
    max_trajectory_points: int = Field(
        2000, title="Trajectory size", description="Most sightings one trajectory returns.", ge=1, le=100_000,
    )
    clip_padding_s: float = Field(
        5.0, title="Clip padding", description="Seconds of video kept before and after a sighting's clip range.",
        ge=0, le=600,
    )
    catalog_format: Literal["parquet", "delta"] = Field(
        "parquet", title="Catalog format",
        description="parquet: segments under catalog_prefix, loaded into memory by the query layer (today's path); "
        "delta: Delta Lake tables under table_prefix, queried by pruned streaming scans (docs/design/catalog.md).",
    )
    table_prefix: str = Field(
        "tables", title="Table prefix", description="Object-store prefix of the Delta Lake tables (one per kind).",
        pattern=_PREFIX_PATTERN, max_length=200,
    )
    table_buckets: int = Field(
        16, title="Table buckets",
        description="Partition buckets per day: plates by plate text, other kinds by camera (the unit).", ge=1, le=1024,
    )
    table_row_group_rows: int = Field(
        16_384, title="Row-group rows",
        description="Rows per Parquet row group in compacted table files (smaller prunes finer, costs more metadata).",
        ge=1024, le=1_048_576,
    )
    query_memory_mb: int = Field(
        1024, title="Query memory", description="DuckDB memory limit of the query layer's table scans (MB).",
        ge=64, le=65_536,
    )
    cache_dir: Path = Field(
        Path("var/cache/search"), title="Cache folder",
        description="Local folder where the query layer keeps downloaded segments and shards (by etag).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> IndexConfig:
        check_prefixes_differ(self.catalog_prefix, self.index_prefix)
        check_prefixes_differ(self.table_prefix, self.index_prefix)
        check_prefixes_differ(self.table_prefix, self.catalog_prefix)
        return self
