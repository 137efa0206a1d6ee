"""Growth curves of the plate benchmark as a PNG: p50 latency per query shape against table size, per path.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.catalog.plot var/catalog-bench/r1e6.json \
        var/catalog-bench/r1e7.json var/catalog-bench/r1e8.json --out benchmarks/catalog/growth.png

Drawn with OpenCV (already a dependency; matplotlib is not installed here): log-log axes, one panel per
path and measure (wall p50, CPU ms), one line per query shape, the 200 ms and 1 s targets as dashed lines.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

PANEL_W, PANEL_H, MARGIN = 620, 460, 70
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _label(query: str) -> str:
    shape, window = query.rsplit(",", 1)
    for word, name in (("broad", "broad wildcard"), ("prefix", "prefix wildcard"), ("wildcard", "infix wildcard"),
                       ("exact", "exact"), ("fuzzy", "fuzzy 1 edit")):
        if word in shape:
            return f"{name}, {window.strip()}"
    return query


def _series(reports: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per panel (path and measure: wall p50 or CPU ms), per query shape: (rows, ms) points."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for r in reports:
        for p in r["paths"]:
            for row in p["rows"]:
                if "hits" not in row:
                    continue
                out.setdefault(f"{p['path']}: p50 wall", {}).setdefault(_label(row["query"]), []).append(
                    (r["rows"], row["p50_ms"]))
                if "cpu_ms" in row:
                    out.setdefault(f"{p['path']}: CPU", {}).setdefault(_label(row["query"]), []).append(
                        (r["rows"], row["cpu_ms"]))
    return out


def draw(reports: list[dict[str, Any]], out: Path) -> None:
    series = _series(reports)
    order = ["delta", "delta-noindex", "memory"]
    paths = sorted(series, key=lambda k: (k.endswith("CPU"), order.index(k.split(":")[0])))
    columns = (len(paths) + 1) // 2
    img = np.full((2 * PANEL_H + 40, PANEL_W * columns, 3), 255, np.uint8)
    xs = [r["rows"] for r in reports]
    x_lo, x_hi = math.log10(min(xs)) - 0.2, math.log10(max(xs)) + 0.2
    y_lo, y_hi = 0.0, 5.0  # 1 ms .. 100 s
    for k, path in enumerate(paths):
        x0, y0 = (k % columns) * PANEL_W, (k // columns) * PANEL_H

        def px(rows: float, ms: float, x0: int = x0, y0: int = y0) -> tuple[int, int]:
            fx = (math.log10(rows) - x_lo) / (x_hi - x_lo)
            fy = (math.log10(max(ms, 1.0)) - y_lo) / (y_hi - y_lo)
            return (int(x0 + MARGIN + fx * (PANEL_W - MARGIN - 20)),
                    int(y0 + PANEL_H - MARGIN - fy * (PANEL_H - MARGIN - 40)))

        cv2.rectangle(img, px(10 ** x_lo, 1), px(10 ** x_hi, 10 ** y_hi), (0, 0, 0), 1)
        for ms in (1, 10, 100, 1000, 10_000, 100_000):
            p = px(10 ** x_lo, ms)
            cv2.putText(img, f"{ms:g} ms" if ms < 1000 else f"{ms // 1000:g} s", (x0 + 5, p[1] + 4),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        for target in (200, 1000):
            a, b = px(10 ** x_lo, target), px(10 ** x_hi, target)
            for x in range(a[0], b[0], 12):
                cv2.line(img, (x, a[1]), (min(x + 6, b[0]), a[1]), (0, 0, 200), 1)
        for rows in sorted(set(xs)):
            p = px(rows, 1)
            cv2.putText(img, f"1e{round(math.log10(rows))}", (p[0] - 12, p[1] + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{path} ms per query vs rows", (x0 + MARGIN, y0 + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (0, 0, 0), 1, cv2.LINE_AA)
        for i, (label, points) in enumerate(sorted(series[path].items())):
            colour = COLOURS[i % len(COLOURS)]
            pts = [px(r, ms) for r, ms in sorted(points)]
            for a, b in zip(pts, pts[1:], strict=False):
                cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
            for p in pts:
                cv2.circle(img, p, 3, colour, -1)
            cv2.putText(img, label, (x0 + MARGIN + 8, y0 + 50 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1,
                        cv2.LINE_AA)
    cv2.putText(img, "dashed red: 200 ms (one day) and 1 s (30 days) targets; rows = plate reads in the table; "
                "top: wall p50 on the shared machine, bottom: CPU ms (median)", (10, 2 * PANEL_H + 25), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), img)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reports", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/catalog/growth.png"))
    args = ap.parse_args()
    draw([json.loads(p.read_text()) for p in args.reports], args.out)


if __name__ == "__main__":
    main()
