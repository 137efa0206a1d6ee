"""Face verification on same/different pairs from ../shared/testdata/faces, and threshold calibration.

Identities: ``person_<x>_<n>.jpg`` files share identity ``x``; every face of a group photo (``group_*``)
is its own identity. Pairs: every pair of faces found (same identity = genuine, else impostor).

``--calibrate`` adds six perturbed copies of every image (mirror, 1/3 scale, Gaussian blur σ=2,
60 % brightness, JPEG quality 30, 12° rotation) and recommends the threshold in the middle of the gap
between the lowest genuine and the highest impostor cosine similarity (or at the equal-error point when
they overlap). That is how the registry's threshold was set; recalibrate on your own cameras' faces.

    python benchmarks/models/faces.py [--threshold T] [--calibrate] [--min-quality Q]
"""

from __future__ import annotations

import argparse
import itertools
import re
from pathlib import Path

import cv2
import numpy as np
from _common import TESTDATA, table, zoo


def perturbations(image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    h, w = image.shape[:2]
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 30])
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0)
    return [
        ("mirror", np.ascontiguousarray(image[:, ::-1])),
        ("third", cv2.resize(image, (w // 3, h // 3), interpolation=cv2.INTER_AREA)),
        ("blur", cv2.GaussianBlur(image, (0, 0), 2.0)),
        ("dark", cv2.convertScaleAbs(image, alpha=0.6, beta=0)),
        ("jpeg30", cv2.imdecode(jpeg, cv2.IMREAD_COLOR)),
        ("rot12", cv2.warpAffine(image, rotation, (w, h), borderMode=cv2.BORDER_REFLECT)),
    ]


def collect(folder: Path, calibrate: bool) -> list[tuple[str, str, np.ndarray, float]]:
    """(identity, label, embedding, quality) for every face; group faces keyed by left-to-right order."""
    analyzer = zoo().face_analyzer()
    faces = []
    for path in sorted(folder.glob("*.jpg")):
        image = cv2.imread(str(path))
        match = re.match(r"person_([a-z0-9]+)_", path.name)
        variants = [("orig", image)] + (perturbations(image) if calibrate else [])
        reference = analyzer.analyze(image, embed=False)
        ref_x = (reference.xyxy[:, 0] + reference.xyxy[:, 2]) / 2
        for name, variant in variants:
            found = analyzer.analyze(variant)
            centres = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
            if name == "mirror":
                centres = variant.shape[1] - centres
            centres = centres * (image.shape[1] / variant.shape[1])
            for i in range(len(found)):
                j = int(np.argmin(np.abs(ref_x - centres[i]))) if len(ref_x) else i
                identity = match.group(1) if match else f"{path.stem}#{j}"
                faces.append(
                    (
                        identity,
                        f"{path.name}:{name}:{j}",
                        found.data["embedding"][i],
                        float(found.data["quality"][i]),
                    )
                )
    return faces


def pairs(faces: list, min_quality: float) -> tuple[np.ndarray, np.ndarray, list]:
    sims, same, labels = [], [], []
    for a, b in itertools.combinations(faces, 2):
        if min(a[3], b[3]) < min_quality:
            continue
        sims.append(float(np.dot(a[2], b[2])))
        same.append(a[0] == b[0])
        labels.append((a[1], b[1]))
    return np.asarray(sims), np.asarray(same, dtype=bool), labels


def recommend(sims: np.ndarray, same: np.ndarray) -> float:
    genuine, impostor = sims[same], sims[~same]
    if genuine.min() > impostor.max():
        return float((genuine.min() + impostor.max()) / 2)
    grid = np.linspace(-1, 1, 4001)
    frr = np.array([np.mean(genuine < t) for t in grid])
    far = np.array([np.mean(impostor >= t) for t in grid])
    return float(grid[int(np.argmin(np.abs(frr - far)))])


def main() -> None:
    from models.evaluation import verification_errors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=TESTDATA / "faces")
    parser.add_argument("--threshold", type=float, help="default: the embedder's registry threshold")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--min-quality", type=float, default=0.0)
    args = parser.parse_args()
    threshold = args.threshold if args.threshold is not None else zoo().face_embedder().threshold
    faces = collect(args.dir, args.calibrate)
    sims, same, labels = pairs(faces, args.min_quality)
    false_reject, false_accept = verification_errors(sims, same, threshold)
    genuine, impostor = sims[same], sims[~same]
    rows = [
        ["faces", str(len(faces))],
        ["genuine pairs", str(int(same.sum()))],
        ["impostor pairs", str(int((~same).sum()))],
        [
            "genuine similarity min / median",
            f"{genuine.min():.4f} / {np.median(genuine):.4f}" if len(genuine) else "-",
        ],
        [
            "impostor similarity max / median",
            f"{impostor.max():.4f} / {np.median(impostor):.4f}" if len(impostor) else "-",
        ],
        ["threshold", f"{threshold:.4f}"],
        ["false rejections", str(false_reject)],
        ["false acceptances", str(false_accept)],
    ]
    if args.calibrate and len(genuine) and len(impostor):
        rows.append(["recommended threshold", f"{recommend(sims, same):.4f}"])
    print(table(["measure", "value"], rows))
    worst = sorted(
        zip(sims[~same], [lab for lab, s in zip(labels, same, strict=True) if not s], strict=True),
        reverse=True,
    )[:3]
    for sim, (a, b) in worst:
        print(f"  closest impostors: {sim:.4f} {a} vs {b}")


if __name__ == "__main__":
    main()
