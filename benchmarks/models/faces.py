"""Face verification on the dev faces, embedders side by side: margin, EER, threshold at a FAR, cross-validated errors.

    PYTHONPATH=. .venv/bin/python benchmarks/models/faces.py [--embedder ID ...] [--far 1e-3] [--plot roc.png]

The dev set is ``../shared/testdata/faces``: person A (two photos), person B (one photo) and the six people of
``group_6.jpg``, each cut out of the group photo (three times its face box, so the detector sees context) as an
identity of its own — 8 identities, 9 photos. Every photo also gets the six perturbed copies of
``models.faces.calibration.perturbations`` (otherwise seven of the eight identities have no genuine pair): 63 faces.
That is a tiny set: the figures say which embedder separates these faces better and by how much, not how either
does on faces from a camera.

``cross-validated errors``: leave one identity out, set the threshold in the middle of the gap (or at the EER point)
on the pairs of the other identities, count the errors among the held-out identity's pairs; summed over identities.
``evaluate()`` is what ``tubeline models eval`` calls.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import TESTDATA, table, zoo

DEFAULT_EMBEDDERS = ("dlib-resnet-v1", "mobilefacenet")


def dev_layout(the_zoo: Any, folder: Path = TESTDATA / "faces") -> dict[str, list[np.ndarray]]:
    """identity → images: the portraits by their file name, every face of a group photo cut out as its own."""
    layout: dict[str, list[np.ndarray]] = {}
    detector = the_zoo.face_detector()
    for path in sorted(folder.glob("*.jpg")):
        image = cv2.imread(str(path))
        if path.name.startswith("person_"):
            layout.setdefault(path.stem.rsplit("_", 1)[0], []).append(image)
            continue
        faces = detector.detect(image)
        order = np.argsort(faces.xyxy[:, 0]) if len(faces) else []
        for n, i in enumerate(order):
            x1, y1, x2, y2 = faces.xyxy[i]
            cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.5 * max(x2 - x1, y2 - y1)
            h, w = image.shape[:2]
            crop = image[max(0, int(cy - side)) : min(h, int(cy + side)), max(0, int(cx - side)) : min(w, int(cx + side))]
            layout[f"{path.stem}#{n}"] = [crop.copy()]
    return layout


def threshold_from(sims: np.ndarray, same: np.ndarray) -> float:
    from models.faces.calibration import calibrate

    return calibrate(sims, same).eer_threshold


def cross_validated_errors(faces: list) -> tuple[int, int, int]:  # noqa: ANN001
    """(false rejections, false acceptances, pairs) scoring each identity's pairs with a threshold set without it."""
    from models.faces.calibration import pair_similarities

    identities = sorted({f.identity for f in faces})
    rejects = accepts = total = 0
    for held in identities:
        rest = [f for f in faces if f.identity != held]
        sims, same = pair_similarities(rest)
        if not same.any() or same.all():
            continue
        threshold = threshold_from(sims, same)
        for i, a in enumerate(faces):
            for b in faces[i + 1 :]:
                if held not in (a.identity, b.identity):
                    continue
                sim, genuine = float(np.dot(a.embedding, b.embedding)), a.identity == b.identity
                rejects += genuine and sim < threshold
                accepts += (not genuine) and sim >= threshold
                total += 1
    return rejects, accepts, total


def evaluate(embedders: tuple[str, ...] = DEFAULT_EMBEDDERS, far: float = 1e-3, plot: Path | None = None
             ) -> dict[str, dict[str, Any]]:
    from models.faces.calibration import calibrate, collect, pair_similarities, plot_roc, plot_similarities
    from models.faces.pipeline import FaceAnalyzer

    the_zoo = zoo()
    layout = dev_layout(the_zoo)
    out, curves = {}, {}
    for embedder_id in embedders:
        embedder = the_zoo.face_embedder(embedder_id)
        analyzer = FaceAnalyzer(the_zoo.face_detector(), embedder, min_size=the_zoo.config.face_min_size)
        faces = collect(analyzer, layout, augment=True)
        sims, same = pair_similarities(faces)
        cal = calibrate(sims, same, far)
        rejects, accepts, pairs = cross_validated_errors(faces)
        curves[embedder.model_id] = cal
        out[embedder_id] = {"identities": len(layout), "faces": len(faces), **cal.summary(embedder.threshold),
                            "cross-validated errors (rejects / accepts / pairs)": f"{rejects} / {accepts} / {pairs}"}
    if plot is not None:
        plot_roc(plot, curves, "dev faces (testdata/faces + perturbations)")
        plot_similarities(plot.with_name(plot.stem + "_similarities.png"), curves)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", action="append", help=f"registry ids (default: {', '.join(DEFAULT_EMBEDDERS)})")
    parser.add_argument("--far", type=float, default=1e-3)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    results = evaluate(tuple(args.embedder or DEFAULT_EMBEDDERS), args.far, args.plot)
    names = list(results)
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print(table(["measure", *names], [[k, *(str(results[n].get(k, "")) for n in names)] for k in keys]))


if __name__ == "__main__":
    main()
