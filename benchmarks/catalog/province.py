"""Synthetic province-shaped plate reads, generated in vectorised batches (no Python loop over rows).

The shape (the reason for each choice):

* a vehicle population sized so that ``rows / days`` reads a day come from active vehicles making
  on average ``READS_PER_TRIP`` reads each (a trip passes several cameras);
* 30 % commuters, active on 85 % of weekdays and 30 % of weekend days; the rest occasional, with a
  per-vehicle activity drawn from Beta(0.5, 6) (mean ≈ 8 % of days): repeat visits, and a vocabulary of
  distinct plates much smaller than the reads (≈ 25 % of a day's reads are distinct plates);
* plates: 95 % of the home province (``川``), the capital's letter ``A`` for 40 % of them, the other
  cities Zipf-distributed; 10 % new-energy plates (``D``/``F`` + 5 characters, 8 in all); the others
  5 characters from digits (70 %) and letters without ``I``/``O``;
* each vehicle has a home camera; its reads of a day land on cameras near it, a few minutes apart,
  starting at a commute-shaped time of day.

Each day is written as compaction leaves a closed day (sorted by text, bucket ``RANGE_BUCKET``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from pipeline.catalog.format import PLATE_KIND
from pipeline.catalog.table import RANGE_BUCKET

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
READS_PER_TRIP = 3.5
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_TAIL = "0123456789" + _LETTERS
_OTHER_PROVINCES = "渝云贵陕甘粤京"


def _fixed_strings(prefix: bytes, numbers: np.ndarray, digits: int) -> pa.Array:
    """``prefix`` + zero-padded ``numbers`` as an Arrow string array, built from buffers (fast)."""
    n = len(numbers)
    width = len(prefix) + digits
    buf = np.empty((n, width), np.uint8)
    buf[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    value = numbers.astype(np.int64).copy()
    for pos in range(width - 1, len(prefix) - 1, -1):
        buf[:, pos] = 48 + value % 10
        value //= 10
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf.tobytes()))


@dataclass
class Population:
    plates: pa.Array
    """Plate text per vehicle."""
    rank: np.ndarray
    """Position of each vehicle's plate in text order (sorting reads by it sorts them by text)."""
    activity: np.ndarray
    commuter: np.ndarray
    home: np.ndarray
    start_s: np.ndarray


def population(rows: int, days: int, cameras: int, rng: np.random.Generator) -> Population:
    active_per_day = rows / days / READS_PER_TRIP
    size = max(1000, int(active_per_day / (0.3 * 0.85 + 0.7 * 0.5 / 6.5)))
    commuter = rng.random(size) < 0.3
    activity = np.where(commuter, 0.85, rng.beta(0.5, 6.0, size))
    province = np.where(rng.random(size) < 0.95, ord("川"),
                        np.frombuffer(_OTHER_PROVINCES.encode("utf-32-le"), np.uint32)[
                            rng.integers(0, len(_OTHER_PROVINCES), size)])
    city_weights = 1.0 / np.arange(1, len(_LETTERS))
    city_weights = np.concatenate([[0.4], 0.6 * city_weights / city_weights.sum()])
    city = np.frombuffer(_LETTERS.encode("utf-32-le"), np.uint32)[rng.choice(len(_LETTERS), size, p=city_weights)]
    digits = np.frombuffer(_TAIL[:10].encode("utf-32-le"), np.uint32)
    letters = np.frombuffer(_LETTERS.encode("utf-32-le"), np.uint32)
    tail = np.where(rng.random((size, 6)) < 0.7, digits[rng.integers(0, 10, (size, 6))],
                    letters[rng.integers(0, len(letters), (size, 6))])
    energy = rng.random(size) < 0.1
    tail[energy, 0] = np.where(rng.random(int(energy.sum())) < 0.5, ord("D"), ord("F"))
    tail[~energy, 5] = 0  # ordinary plates: 5 characters after the city letter
    codes = np.concatenate([province[:, None], city[:, None], tail], axis=1).astype(np.uint32)
    texts = np.ascontiguousarray(codes).view("<U8").ravel()
    plates = pa.array(texts, pa.string())
    rank = np.empty(size, np.int64)
    rank[np.argsort(texts, kind="stable")] = np.arange(size)
    home = rng.integers(0, cameras, size)
    commute = np.where(rng.random(size) < 0.5, 7.5 * 3600, 17.5 * 3600)
    start_s = np.where(commuter, rng.normal(commute, 1800), rng.uniform(6 * 3600, 22 * 3600, size))
    return Population(plates, rank, activity, commuter, home, np.clip(start_s, 0, 86_000).astype(np.int64))


def day_reads(pop: Population, day: int, rows: int, cameras: int, rng: np.random.Generator) -> pa.Table:
    """One UTC day of plate reads (``rows`` of them), sorted by text then time, in the plates table schema."""
    weekend = (DAY0 + timedelta(days=day)).weekday() >= 5
    p = np.where(pop.commuter, 0.3 if weekend else pop.activity, pop.activity)
    active = np.flatnonzero(rng.random(len(p)) < p)
    trips = 1 + rng.geometric(1.0 / READS_PER_TRIP, len(active)) - 1
    vehicle = np.repeat(active, trips)
    if len(vehicle) > rows:
        vehicle = np.sort(rng.choice(vehicle, rows, replace=False))
    elif len(vehicle) < rows:
        vehicle = np.sort(np.concatenate([vehicle, rng.choice(active, rows - len(vehicle))]))
    first = np.flatnonzero(np.r_[True, vehicle[1:] != vehicle[:-1]])
    step = np.arange(rows) - np.repeat(first, np.diff(np.r_[first, rows]))
    seconds = np.clip(pop.start_s[vehicle] + step * rng.integers(60, 600, rows), 0, 86_399)
    camera = (pop.home[vehicle] + rng.integers(-10, 11, rows)) % cameras
    order = np.lexsort((seconds, pop.rank[vehicle]))
    vehicle, seconds, camera = vehicle[order], seconds[order], camera[order]
    start = int((DAY0 + timedelta(days=day)).timestamp() * 1_000_000)
    micros = start + seconds * 1_000_000 + rng.integers(0, 1_000_000, rows)
    ts = pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    serial = day * 100_000_000 + np.arange(rows, dtype=np.int64)
    read_id = _fixed_strings(b"r", serial, 11)
    conf = (rng.integers(80, 100, rows * 7) / 100.0)
    box = rng.integers(0, 1920, rows * 4).astype(np.float64)
    cols = {
        "read_id": read_id, "track_id": _fixed_strings(b"t", serial, 11), "camera_id": _fixed_strings(b"cam", camera, 5),
        "captured_at": ts, "text": pop.plates.take(pa.array(vehicle)),
        "char_confidences": pa.ListArray.from_arrays(pa.array(np.arange(0, rows * 7 + 1, 7, dtype=np.int32)), conf),
        "confidence": conf[::7].copy(), "box": pa.FixedSizeListArray.from_arrays(box, 4),
        "crop_key": _fixed_strings(b"crops/", serial, 11),
        "region": pa.repeat(pa.scalar("CN"), rows), "plate_kind": pa.repeat(pa.scalar("blue"), rows),
        "model_id": pa.repeat(pa.scalar("ppocr-v4"), rows), "votes": np.full(rows, 3, np.int32),
        "revision": np.zeros(rows, np.int64), "ikey": _fixed_strings(b"k", serial, 11),
        "ingested_at": ts, "src_partition": (camera % 12).astype(np.int32), "src_offset": serial,
    }
    return pa.table(cols).cast(PLATE_KIND.schema)


def with_range_partition(table: pa.Table, day: int) -> pa.Table:
    """Add ``date`` and ``bucket`` as compaction leaves a closed plates day."""
    date = (DAY0 + timedelta(days=day)).date().isoformat()
    return table.append_column(pa.field("date", pa.string(), nullable=False), pa.repeat(pa.scalar(date), len(table))) \
        .append_column(pa.field("bucket", pa.int32(), nullable=False),
                       pa.repeat(pa.scalar(RANGE_BUCKET, pa.int32()), len(table)))
