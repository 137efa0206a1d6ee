"""Plate rows for the table-format tests (the catalog's schema, with bus partition and offset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from pipeline.catalog.format import PLATE_KIND

DAY0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def plate_rows(n: int, *, partition: int = 0, first_offset: int = 0, days: int = 2, cameras: int = 3,
               revision: int = 0) -> pa.Table:
    rows = []
    for i in range(n):
        off = first_offset + i
        text = f"川A{off % 997:03d}{'XYZ'[off % 3]}{partition}"
        rows.append({
            "read_id": f"r{partition}-{off}", "track_id": f"t{partition}-{off}", "camera_id": f"cam{off % cameras}",
            "captured_at": DAY0 + timedelta(days=off % days, seconds=off), "text": text,
            "char_confidences": [0.9] * len(text), "confidence": 0.9, "box": [0.0, 0.0, 10.0, 5.0], "crop_key": "c",
            "region": "CN", "plate_kind": "blue", "model_id": "m", "votes": 1, "revision": revision,
            "ikey": f"t{partition}-{off}/plate", "ingested_at": DAY0, "src_partition": partition, "src_offset": off,
        })
    return pa.Table.from_pylist(rows, schema=PLATE_KIND.schema)
