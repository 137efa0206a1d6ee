"""Plate text from PP-OCRv4's recogniser (``ch_PP-OCRv4_rec_infer.onnx`` from ``rapidocr_onnxruntime``).

The recogniser reads one text line: BGR scaled to (x/255 − 0.5)/0.5, height 48, width following the aspect
ratio; it outputs per time step a softmax over the 6,623-entry dictionary stored in the model's
``character`` metadata, with the CTC blank first and a space last. Plates are rectified from their four
corners first; squarish plates are also read as two rows (top row: province + letter, bottom row: the
rest) whose outputs are joined before decoding. Decoding is grammar-constrained (:mod:`models.plates.ctc`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import cv2
import numpy as np

from models.geometry import expand_quad, quad_size, rectify
from models.plates.ctc import ConstrainedDecoder, TextRead, greedy_decode
from models.plates.grammar import PlateGrammar, normalise
from models.runtime import ModelShapeError, OnnxModel
from pipeline.core import Detections

logger = logging.getLogger(__name__)

LINE_HEIGHT = 48
TWO_ROW_ASPECT = 2.6  # single-row plates are ≈3.1 (CN 440×140 mm) or wider; two-row CN plates ≈2.0


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
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.vocab = list(vocab) if vocab is not None else vocabulary_from_metadata(model.metadata)
        self.grammar = grammar
        self.decoder = ConstrainedDecoder(self.vocab, grammar)
        self.max_cost = max_cost
        self.max_width = max_width

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
        text = normalise(raw.text)
        confs = tuple(c for ch, c in zip(raw.text, raw.char_confidence, strict=True) if normalise(ch))
        return TextRead(text, confs, raw.log_prob, cost=constrained[0].cost if constrained else math.inf)

    def read_lines(self, lines: Sequence[np.ndarray]) -> list[TextRead]:
        return [self.decode(p) for p in self.line_probs(lines)]

    # -- plates -----------------------------------------------------------------------------------
    def candidates(self, image: np.ndarray, quad: np.ndarray) -> list[np.ndarray]:
        """Probability matrices for one plate: as one line, and as two rows when the plate is squarish."""
        width, height = quad_size(quad)
        aspect = width / max(height, 1.0)
        line_w = int(np.clip(round(LINE_HEIGHT * aspect * 1.05 / 1.12), 32, self.max_width))
        single = rectify(image, expand_quad(quad, 1.05, 1.12), line_w, LINE_HEIGHT)
        lines = [single]
        if aspect < TWO_ROW_ASPECT:
            plate = rectify(image, expand_quad(quad, 1.04, 1.06), 220, 110)
            lines += [plate[2:50, 8:212], plate[38:108, :]]
        probs = self.line_probs(lines)
        out = [probs[0]]
        if aspect < TWO_ROW_ASPECT:
            gap = np.zeros((1, probs[1].shape[1]), dtype=probs[1].dtype)
            gap[0, 0] = 1.0
            out.append(np.concatenate([probs[1], gap, probs[2]]))
        return out

    def read_quad(self, image: np.ndarray, quad: np.ndarray) -> TextRead:
        return pick_best([self.decode(p) for p in self.candidates(image, quad)])

    def read(self, image: np.ndarray, plates: Detections) -> Detections:
        """Read every row of ``plates`` (its ``corners`` column, else its box) and add the text columns."""
        reads = []
        for i in range(len(plates)):
            if "corners" in plates.data:
                quad = plates.data["corners"][i]
            else:
                x1, y1, x2, y2 = plates.xyxy[i]
                quad = np.float32([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
            reads.append(self.read_quad(image, quad))
        return with_reads(plates, reads)


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
