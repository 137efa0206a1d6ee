"""Calibrate and score video quality diagnosis on the labelled set; prints the tables of docs/quality.md.

    python -m benchmarks.quality.evaluate SET_DIR [--generate] [--sources vtest,person,...]

``SET_DIR`` holds the clips and ``labels.json`` of :mod:`tests.fixtures.quality.dataset` (``--generate``
writes them first). Every clip is decoded and measured once (one frame every ``check_interval_s``; kept
beside the clip as ``.measures.npz``); the diagnosis (baseline, masking, hysteresis) is then re-run per
candidate calibration.

Calibration fits one number per fault, the severity a sample needs (``quality.thresholds.on``), on a grid:
for each grid value every fault gets that value, and each fault keeps the value that maximised its own F1
on the training clips (ties: the value nearest 0.5). Cross-validation holds out one footage group at a
time (all vtest views together, each photo apart), fits on the rest and scores the held-out group; the
table sums the held-out scores. The fit on everything is printed last: those are the committed defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

from pipeline.config.quality import FAULTS, QualityConfig, Thresholds
from pipeline.quality.diagnose import CameraDiagnoser, Transition, segments
from pipeline.quality.measure import Measures, measure
from pipeline.quality.video import NOMINAL_HOUR
from tests.fixtures.quality.dataset import Clip, generate, load_labels, plan
from tests.fixtures.quality.scoring import Tally, markdown, score_clip, table

GRID = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)
Measured = list[tuple[float, Measures]]


def group_of(source: str) -> str:
    return "vtest" if source.startswith("vtest") else source


SCALARS = ("mean", "contrast", "blur", "noise", "cast", "chroma", "uniform", "stripes")


def _cached(path: Path, interval_s: float) -> tuple[Measured, float]:
    """Measurements of ``path``, kept in ``<clip>.measures.npz`` (delete those after changing measure.py)."""
    cache = path.with_suffix(".measures.npz")
    if cache.exists():
        with np.load(cache) as npz:
            z = {k: npz[k] for k in npz.files}  # an NpzFile decompresses on every access: read each array once
        out = [(float(t), Measures(**{k: float(z[k][i]) for k in SCALARS}, small=z["small"][i],
                                   block_std=z["block_std"][i])) for i, t in enumerate(z["t"])]
        return out, float(z["spent"])
    out, spent = measure_clip(path, interval_s)
    partial = cache.with_suffix(".part.npz")
    np.savez_compressed(partial, t=np.array([t for t, _ in out]), spent=spent,
                        small=np.stack([m.small for _, m in out]), block_std=np.stack([m.block_std for _, m in out]),
                        **{k: np.array([getattr(m, k) for _, m in out]) for k in SCALARS})
    partial.replace(cache)
    return out, spent


def measure_clip(path: Path, interval_s: float) -> tuple[Measured, float]:
    out: Measured = []
    next_t, last_t, spent = 0.0, 0.0, 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        for i, frame in enumerate(container.decode(stream)):
            t = i / rate
            last_t = t + 1 / rate
            if t + 1e-6 < next_t:
                continue
            next_t = t + interval_s
            image = frame.to_ndarray(format="bgr24")
            started = time.process_time()
            out.append((t, measure(image)))
            spent += time.process_time() - started
    out.append((last_t, out[-1][1]))  # the end marker: same picture, closes the file
    return out, spent


def diagnose(measured: Measured, settings: QualityConfig) -> list[tuple[str, float, float]]:
    d = CameraDiagnoser(settings)
    found: list[Transition] = []
    for t, m in measured[:-1]:
        found.extend(d.observe_measures(t, NOMINAL_HOUR, m)[1])
    found.extend(d.finish(measured[-1][0]))
    return [(s.fault, s.start_s, s.end_s) for s in segments(found)]


def settings_with(on: dict[str, float]) -> QualityConfig:
    return QualityConfig(thresholds=Thresholds(on=on))  # type: ignore[arg-type]


def evaluate(clips: Iterable[Clip], measured: dict[str, Measured], settings: QualityConfig) -> Tally:
    total = Tally()
    for clip in clips:
        total.add(score_clip(clip, diagnose(measured[clip.name], settings)))
    return total


def fit(clips: list[Clip], measured: dict[str, Measured]) -> dict[str, float]:
    scores = {g: evaluate(clips, measured, settings_with(dict.fromkeys(FAULTS, g))) for g in GRID}
    return {f: max(GRID, key=lambda g: (round(scores[g].f1(f), 6), -abs(g - 0.5))) for f in FAULTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set_dir", type=Path)
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--sources", default="vtest,person,street,vtest_crop,dog,vtest_mirror")
    args = parser.parse_args()
    labels = args.set_dir / "labels.json"
    if args.generate:
        labels = generate(args.set_dir, plan(tuple(args.sources.split(","))))
    wanted = set(args.sources.split(","))
    clips = [c for c in load_labels(labels) if c.source in wanted and (args.set_dir / f"{c.name}.mp4").exists()]
    interval = QualityConfig().check_interval_s
    measured: dict[str, Measured] = {}
    spent = 0.0
    for clip in clips:
        measured[clip.name], s = _cached(args.set_dir / f"{clip.name}.mp4", interval)
        spent += s
    n_samples = sum(len(m) - 1 for m in measured.values())
    print(f"{len(clips)} clips, {n_samples} samples, measuring {1000 * spent / n_samples:.1f} ms of CPU per sample")

    groups = sorted({group_of(c.source) for c in clips})
    held_out = Tally()
    for group in groups:
        train = [c for c in clips if group_of(c.source) != group]
        test = [c for c in clips if group_of(c.source) == group]
        fitted = fit(train, measured)
        held_out.add(evaluate(test, measured, settings_with(fitted)))
        print(f"fold {group}: fitted {json.dumps(fitted)}")
    print(f"\n## Cross-validated (leave one footage group out: {', '.join(groups)})\n")
    print(markdown(table(held_out)))
    print(f"\nfalse alarms on normal clips: {held_out.normal_alarms} in {held_out.normal_seconds / 60:.1f} min "
          f"({held_out.false_alarms_per_hour():.1f} per hour)")
    default = evaluate(clips, measured, QualityConfig())
    print("\n## Defaults before calibration (every fault at 0.5), all clips\n")
    print(markdown(table(default)))
    fitted_all = fit(clips, measured)
    print(f"\n## Fit on every clip (commit as quality.thresholds.on)\n\n{json.dumps(fitted_all)}")
    final = evaluate(clips, measured, settings_with(fitted_all))
    print(markdown(table(final)))
    print(f"\nfalse alarms on normal clips: {final.normal_alarms} in {final.normal_seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
