"""Train the plate character classifier (``models/plates/chars.py``) on synthetic renders; test it on the real dev
plate characters, which it never trains on.

    PYTHONPATH=. .venv/bin/python benchmarks/models/plate_chars.py [--per-class 400] [--write]

Training data: every class (A–Z, 0–9) rendered with OpenCV's built-in Hershey fonts (simplex and duplex: monoline
sans faces, the nearest to plate lettering this machine can render without new packages — ``fc-list`` here has only
DejaVu and WenQuanYi, which need FreeType) between two random neighbours, on a line 48 px high like the recogniser's
input, then degraded: condensed to a character pitch of 28–45 % of the line height (the dev plates' cut-outs:
median 35 %), sheared, cap height 35–65 % of the line, stroke 15–30 % of the cap height before condensing, random contrast and polarity, a plate frame above/below, low resolution (down to 25 %), blur, noise; the cut-out is jittered
like the alignment's (``char_columns``). Seeded: the same command writes the same file.

Test data: the labelled Latin plates of ``../shared/testdata/plates/latin``: each plate's one-line reading of the
whole crop, its label forced-aligned on the recogniser's output, one cut-out per character (the same code path as
the ranking uses). It prints accuracy on them, and on the confusable letters (O Q D 0, U I J, W H N M) alone.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.plates.chars import CLASSES, WEIGHTS_FILE, CharClassifier, char_columns, describe  # noqa: E402

TESTDATA = ROOT.parent / "shared" / "testdata"
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)
CONFUSABLE = "OQD0UIJWHNM"
LINE = 48


def render(target: str, rng: np.random.Generator) -> np.ndarray:
    """One degraded cut-out of ``target`` between two random neighbours (module docstring)."""
    big = 2 * LINE
    font = FONTS[int(rng.integers(len(FONTS)))]
    cap = rng.uniform(0.35, 0.65) * big
    (_, base_h), _ = cv2.getTextSize("H", font, 1.0, 1)
    scale = cap / base_h
    thick = max(1, round(rng.uniform(0.15, 0.3) * cap))  # thick: condensing thins the vertical strokes
    text = CLASSES[int(rng.integers(36))] + target + CLASSES[int(rng.integers(36))]
    widths = [cv2.getTextSize(ch, font, scale, thick)[0][0] for ch in text]
    gap = rng.uniform(0.08, 0.35) * cap
    pitch = max(widths) + gap
    canvas_w = int(3 * pitch + 2 * gap)
    fg, bg = sorted(rng.uniform(0, 255, 2))
    if rng.random() < 0.5:
        fg, bg = bg, fg
    if abs(fg - bg) < 70:
        bg = min(255.0, fg + 70.0) if fg < 128 else max(0.0, fg - 70.0)
    image = np.full((big, canvas_w), bg, np.float32)
    baseline = int(big / 2 + cap / 2 + rng.uniform(-0.06, 0.06) * big)
    for i, ch in enumerate(text):
        x = int(gap + i * pitch + (pitch - widths[i]) / 2)
        cv2.putText(image, ch, (x, baseline), font, scale, float(fg), thick, cv2.LINE_AA)
    if rng.random() < 0.6:  # the plate's frame above and below the characters
        edge = max(1, thick // 2)
        top, bottom = int(baseline - cap - rng.uniform(0.05, 0.2) * big), int(baseline + rng.uniform(0.05, 0.2) * big)
        for y in (top, bottom):
            if 0 <= y < big:
                image[max(0, y - edge) : y + edge, :] = fg
    shear = rng.uniform(-0.15, 0.15)
    matrix = np.float32([[1, shear, -shear * big / 2], [0, 1, 0]])
    image = cv2.warpAffine(image, matrix, (canvas_w, big), borderValue=float(bg))
    condense = rng.uniform(0.28, 0.45) * big / pitch  # character pitch 28–45 % of the line height, as measured
    width = max(8, int(canvas_w * condense * LINE / big))
    line = cv2.resize(image, (width, LINE), interpolation=cv2.INTER_AREA)
    low = rng.uniform(0.25, 1.0)
    if low < 0.95:
        small = cv2.resize(line, (max(4, int(width * low)), max(4, int(LINE * low))), interpolation=cv2.INTER_AREA)
        line = cv2.resize(small, (width, LINE), interpolation=cv2.INTER_LINEAR)
    sigma = rng.uniform(0.0, 1.5)
    if sigma > 0.3:
        line = cv2.GaussianBlur(line, (0, 0), sigma)
    line += rng.normal(0, rng.uniform(2, 12), line.shape).astype(np.float32)
    line = np.clip(line, 0, 255).astype(np.uint8)
    x_scale = width / canvas_w
    centre = (gap + 1.5 * pitch) * x_scale + rng.uniform(-0.15, 0.15) * pitch * x_scale
    half = 0.5 * pitch * x_scale * rng.uniform(0.9, 1.2)
    left, right = int(max(0, math.floor(centre - half))), int(min(width, math.ceil(centre + half)))
    return line[:, left : max(right, left + 1)]


def synthetic(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """HOG features and class indices of ``per_class`` renders of every class."""
    rng = np.random.default_rng(seed)
    cuts, labels = [], []
    for index, ch in enumerate(CLASSES):
        for _ in range(per_class):
            cuts.append(render(ch, rng))
            labels.append(index)
    return describe(cuts), np.asarray(labels)


def train(features: np.ndarray, labels: np.ndarray, strength: float = 1e-3) -> CharClassifier:
    """Multinomial logistic regression (L2 ``strength`` per sample) on standardised features, by L-BFGS."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-3
    x = (features - mean) / scale
    n, d = x.shape
    k = len(CLASSES)
    onehot = np.eye(k)[labels]

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[: d * k].reshape(d, k), params[d * k :]
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -float(np.log(np.clip((p * onehot).sum(axis=1), 1e-12, 1)).mean()) + strength * float((w * w).sum())
        g = (p - onehot) / n
        return loss, np.concatenate([(x.T @ g + 2 * strength * w).ravel(), g.sum(axis=0)])

    result = minimize(objective, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": 300})
    w, b = result.x[: d * k].reshape(d, k), result.x[d * k :]
    return CharClassifier(w.astype(np.float32), b.astype(np.float32), mean.astype(np.float32),
                          scale.astype(np.float32))


def dev_characters() -> tuple[list[np.ndarray], str, list[str]]:
    """Cut-outs of the real Latin dev plates' characters (label forced-aligned on the one-line reading of the whole
    crop), their true characters, and the plate each came from."""
    from models.plates.chars import forced_alignment
    from models.zoo import ModelZoo

    reader = ModelZoo.from_config().plate_recognizer().reader
    decoder = reader.decoder
    index = {ch: i for i, ch in enumerate(decoder.alphabet)}
    folder = TESTDATA / "plates" / "latin"
    cuts: list[np.ndarray] = []
    truth, plates = "", []
    with (folder / "labels.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            image = cv2.imread(str(folder / row["file"]))
            height, width = image.shape[:2]
            quad = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
            from models.geometry import expand_quad, quad_size, rectify
            from models.plates.reader import VIEW_MARGINS

            w, h = quad_size(quad)
            grow_x, grow_y = VIEW_MARGINS[0]
            line_w = int(np.clip(round(LINE * w / max(h, 1.0) * grow_x / grow_y), 32, reader.max_width))
            line = rectify(image, expand_quad(quad, grow_x, grow_y), line_w, LINE)
            (probs,) = reader.line_probs([line])
            log_probs = np.log(np.clip(decoder.fold(probs), 1e-12, 1.0))
            label = row["plates"]
            spans = forced_alignment(log_probs, [index[ch] for ch in label], len(decoder.alphabet))
            for (a, b), ch in zip(char_columns(spans, line.shape[1] / len(log_probs), line.shape[1]), label,
                                  strict=True):
                cuts.append(line[:, a:b])
                truth += ch
                plates.append(row["file"])
    return cuts, truth, plates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--strength", type=float, default=1e-3)
    parser.add_argument("--write", action="store_true", help=f"store the classifier in {WEIGHTS_FILE.name}")
    args = parser.parse_args()
    started = time.process_time()
    features, labels = synthetic(args.per_class)
    classifier = train(features, labels, args.strength)
    print(f"trained on {len(labels)} synthetic cut-outs in {time.process_time() - started:.0f} s CPU")
    cuts, truth, _ = dev_characters()
    predicted = classifier.log_probs(cuts).argmax(axis=1)
    right = [CLASSES[p] == t for p, t in zip(predicted, truth, strict=True)]
    print(f"real dev characters (held out): {sum(right)}/{len(right)} = {100 * np.mean(right):.1f} %")
    for group in ("OQD0", "UIJ", "WHNM"):
        members = [i for i, t in enumerate(truth) if t in group]
        ok = sum(right[i] for i in members)
        within = sum(CLASSES[predicted[i]] in group for i in members)
        print(f"  {group}: {ok}/{len(members)} right, {within}/{len(members)} inside the group")
    confusions: dict[tuple[str, str], int] = {}
    for p, t in zip(predicted, truth, strict=True):
        if CLASSES[p] != t:
            confusions[(t, CLASSES[p])] = confusions.get((t, CLASSES[p]), 0) + 1
    print("most common confusions (true→read):",
          ", ".join(f"{t}→{p} {n}" for (t, p), n in sorted(confusions.items(), key=lambda kv: -kv[1])[:12]))
    if args.write:
        classifier.save(WEIGHTS_FILE)
        print(f"wrote {WEIGHTS_FILE.relative_to(ROOT)} ({WEIGHTS_FILE.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
