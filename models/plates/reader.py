"""Plate text from PP-OCRv4's recogniser (``ch_PP-OCRv4_rec_infer.onnx`` from ``rapidocr_onnxruntime``).

The recogniser reads one text line: BGR scaled to (x/255 − 0.5)/0.5, height 48, width following the aspect
ratio; it outputs per time step a softmax over the 6,623-entry dictionary stored in the model's
``character`` metadata, with the CTC blank first and a space last. Plates are rectified from their four
corners first; squarish plates are also read as two rows, in two layouts (a short top row — a Chinese plate's
province + letter — over the rest; and two equal rows — a Latin motorcycle plate), each pair of outputs joined
before decoding. Decoding is grammar-constrained (:mod:`models.plates.ctc`);
the candidate texts of all readings of one plate are then ranked together and given a calibrated probability
(:mod:`models.plates.scoring`). Tight crops are also read as their character band (:func:`character_band`). With
``views`` > 1 the plate is also rectified with a tighter and a looser margin (test-time augmentation; measured in
docs/models.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import cv2
import numpy as np

from models.geometry import expand_quad, quad_size, rectify
from models.plates.ctc import ConstrainedDecoder, TextRead, greedy_decode
from models.plates.grammar import PlateGrammar, clean_read
from models.plates.scoring import Candidates, PlateCalibration, choose, gather
from models.runtime import ModelShapeError, OnnxModel
from pipeline.core import Detections

logger = logging.getLogger(__name__)

LINE_HEIGHT = 48
TWO_ROW_ASPECT = 2.6  # single-row plates are ≈3.1 (CN 440×140 mm) or wider; two-row CN plates ≈2.0
VIEW_MARGINS = ((1.05, 1.12), (1.02, 1.05), (1.09, 1.2))  # (width, height) growth of the quad per view
PROPOSALS_PER_READING = 3
# Two-row layouts of a squarish plate rectified to 220×110: (rows from, rows to, columns from, columns to) of the
# top and the bottom line. Chinese two-row plates have a short top row (province + letter) over the rest; Latin
# motorcycle plates (Argentina: 382 over EMY) two rows of equal height. Both are read; the ranking decides.
TWO_ROW_SPLITS = (((2, 50, 8, 212), (38, 108, 0, 220)), ((0, 58, 0, 220), (52, 110, 0, 220)))


def vocabulary_from_metadata(metadata: dict[str, str]) -> list[str]:
    """CTC vocabulary: blank, the dictionary in the model's ``character`` metadata, then a space."""
    raw = metadata.get("character")
    if not raw:
        msg = "the recogniser has no 'character' metadata; give the dictionary file in the registry options"
        raise ModelShapeError(msg)
    return ["<blank>", *raw.splitlines(), " "]


def pick_best(reads: Sequence[TextRead]) -> TextRead:
    """Grammar-valid reads beat invalid ones; then the higher confidence wins."""
    return max(reads, key=lambda r: (r.valid, r.confidence))


class PpocrPlateReader:
    """:class:`models.protocols.PlateReader` over a PaddleOCR CTC recogniser."""

    def __init__(
        self,
        model: OnnxModel,
        model_id: str,
        grammar: PlateGrammar,
        vocab: Sequence[str] | None = None,
        max_cost: float = 12.0,
        max_width: int = 480,
        calibration: PlateCalibration | None = None,
        views: int = 1,
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.vocab = list(vocab) if vocab is not None else vocabulary_from_metadata(model.metadata)
        self.grammar = grammar
        self.decoder = ConstrainedDecoder(self.vocab, grammar)
        self.max_cost = max_cost
        self.max_width = max_width
        self.calibration = calibration or PlateCalibration()
        self.views = max(1, min(views, len(VIEW_MARGINS)))

    # -- low level: upright text lines ------------------------------------------------------------
    def line_probs(self, lines: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-step probabilities (T×V) for upright BGR line images, run as one padded batch."""
        if not lines:
            return []
        widths = [
            min(self.max_width, max(16, math.ceil(LINE_HEIGHT * ln.shape[1] / max(1, ln.shape[0]))))
            for ln in lines
        ]
        batch = np.zeros((len(lines), 3, LINE_HEIGHT, max(widths)), dtype=np.float32)
        for i, (line, width) in enumerate(zip(lines, widths, strict=True)):
            resized = cv2.resize(line, (width, LINE_HEIGHT), interpolation=cv2.INTER_LINEAR).astype(
                np.float32
            )
            batch[i, :, :, :width] = ((resized / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
        (probs,) = self.model.run_batched(batch)
        steps_per_pixel = probs.shape[1] / batch.shape[3]
        return [p[: max(1, math.ceil(w * steps_per_pixel))] for p, w in zip(probs, widths, strict=True)]

    def decode(self, probs: np.ndarray) -> TextRead:
        """Grammar-constrained read; falls back to the cleaned greedy read when no template fits cheaply."""
        constrained = self.decoder.decode(probs)
        if constrained and constrained[0].cost <= self.max_cost:
            return constrained[0]
        raw = greedy_decode(probs, self.vocab)
        text = clean_read(raw.text)
        confs = tuple(c for ch, c in zip(raw.text, raw.char_confidence, strict=True) if clean_read(ch))
        return TextRead(text, confs, raw.log_prob, cost=constrained[0].cost if constrained else math.inf)

    def read_lines(self, lines: Sequence[np.ndarray]) -> list[TextRead]:
        return [self.decode(p) for p in self.line_probs(lines)]

    def propose(self, readings: Sequence[np.ndarray]) -> tuple[Candidates | None, list[TextRead]]:
        """The candidate texts of several readings of one plate (probability matrices) with their
        likelihoods, and each reading's own best decode (the reads before ranking)."""
        proposals: list[TextRead] = []
        singles: list[TextRead] = []
        for probs in readings:
            constrained = self.decoder.decode(probs)
            cheap = [r for r in constrained[:PROPOSALS_PER_READING] if r.cost <= self.max_cost]
            proposals += cheap
            singles.append(cheap[0] if cheap else self.decode(probs))
        folded = [np.log(np.clip(self.decoder.fold(p), 1e-12, 1.0)) for p in readings]
        return gather(folded, proposals, self.decoder.alphabet), singles

    def rank(self, readings: Sequence[np.ndarray]) -> TextRead:
        """One read from several readings of one plate: the grammar-valid proposals of every reading, ranked
        together with a calibrated posterior (:mod:`models.plates.scoring`). When no reading fits a template
        within ``max_cost`` nats, the best single decode (invalid) is returned."""
        candidates, singles = self.propose(readings)
        if candidates is None:
            return pick_best(singles)
        return choose(candidates, self.calibration)

    # -- plates -----------------------------------------------------------------------------------
    def candidates(self, image: np.ndarray, quad: np.ndarray) -> list[np.ndarray]:
        """Probability matrices for one plate, per view: as one line, and as two rows when the plate is squarish."""
        width, height = quad_size(quad)
        aspect = width / max(height, 1.0)
        lines: list[np.ndarray] = []
        layout: list[tuple[int, bool]] = []  # (first line, two rows?)
        for grow_x, grow_y in VIEW_MARGINS[: self.views]:
            line_w = int(np.clip(round(LINE_HEIGHT * aspect * grow_x / grow_y), 32, self.max_width))
            layout.append((len(lines), False))
            lines.append(rectify(image, expand_quad(quad, grow_x, grow_y), line_w, LINE_HEIGHT))
            if aspect < TWO_ROW_ASPECT:
                plate = rectify(image, expand_quad(quad, grow_x - 0.01, grow_y - 0.06), 220, 110)
                for top, bottom in TWO_ROW_SPLITS:
                    layout.append((len(lines), True))
                    lines += [plate[top[0] : top[1], top[2] : top[3]], plate[bottom[0] : bottom[1], bottom[2] : bottom[3]]]
        probs = self.line_probs(lines)
        out = []
        for first, two_rows in layout:
            if not two_rows:
                out.append(probs[first])
                continue
            gap = np.zeros((1, probs[first].shape[1]), dtype=probs[first].dtype)
            gap[0, 0] = 1.0
            out.append(np.concatenate([probs[first], gap, probs[first + 1]]))
        return out

    def band_reading(self, crop: np.ndarray) -> list[np.ndarray]:
        """A tight crop read once more as the band of rows that holds its characters (:func:`character_band`), so
        that the characters, not the plate's frame and margins, fill the recogniser's 48 px line."""
        top, bottom = character_band(crop)
        line = crop[top:bottom]
        if line.shape[0] < 8 or line.shape[1] < 16:
            return []
        width = int(np.clip(round(LINE_HEIGHT * line.shape[1] / line.shape[0]), 32, self.max_width))
        return self.line_probs([cv2.resize(line, (width, LINE_HEIGHT))])

    def read_quad(self, image: np.ndarray, quad: np.ndarray) -> TextRead:
        return self.rank(self.candidates(image, quad))

    def read(self, image: np.ndarray, plates: Detections) -> Detections:
        """Read every row of ``plates`` (its ``corners`` column, else its box) and add the text columns."""
        reads = []
        for i in range(len(plates)):
            if "corners" in plates.data:
                quad = plates.data["corners"][i]
            else:
                x1, y1, x2, y2 = plates.xyxy[i]
                quad = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float32)
            reads.append(self.read_quad(image, quad))
        return with_reads(plates, reads)


def character_band(image: np.ndarray) -> tuple[int, int]:
    """(first row, end row) of the band of ``image`` that holds a plate's characters: the rows around the peak of
    the mean horizontal gradient magnitude (character strokes are vertical edges; the frame, bolts and margins
    above and below have few), smoothed over 1/15 of the height, while it stays at or above half the peak; widened
    by 20 % of its height on each side. Fixed rules, not fitted to the dev plates."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    energy = np.abs(cv2.Sobel(grey.astype(np.float32), cv2.CV_32F, 1, 0, ksize=3)).mean(axis=1)
    size = max(1, len(energy) // 15)
    energy = np.convolve(energy, np.ones(size) / size, mode="same")
    peak = int(energy.argmax())
    above = energy >= 0.5 * energy[peak]
    top = peak
    while top > 0 and above[top - 1]:
        top -= 1
    bottom = peak
    while bottom < len(energy) - 1 and above[bottom + 1]:
        bottom += 1
    margin = int(round(0.2 * (bottom - top + 1)))
    return max(0, top - margin), min(len(energy), bottom + 1 + margin)


def with_reads(plates: Detections, reads: Sequence[TextRead]) -> Detections:
    """``plates`` plus the text columns of the protocol, one read per row."""
    char_conf = np.empty(len(reads), dtype=object)
    for i, r in enumerate(reads):
        char_conf[i] = np.asarray(r.char_confidence, dtype=np.float32)
    return plates.with_data(
        text=np.asarray([r.text for r in reads], dtype=object),
        text_confidence=np.asarray([r.confidence for r in reads], dtype=np.float32),
        char_confidence=char_conf,
        valid=np.asarray([r.valid for r in reads], dtype=bool),
        pattern=np.asarray([r.pattern.template if r.pattern else "" for r in reads], dtype=object),
    )
