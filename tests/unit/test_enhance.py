"""Enhancement operations on real images: each one a measured improvement of what it claims to fix, every result
a copy with its log, and SPAN ×4 super-resolution beating bicubic on the shared faces (PSNR, the same run)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.zoo import ModelZoo
from pipeline.cases.enhance import EnhanceError, Step, apply, check, psnr

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    image = cv2.imread(str(TESTDATA / "faces" / "person_a_1.jpg"))
    return cv2.resize(image, (240, 300), interpolation=cv2.INTER_AREA)


def test_parameters_are_bounded_and_unknown_operations_refused() -> None:
    assert check("sharpen", {}).params == {"amount": 1.0, "radius": 2.0}
    for op, params in [("sharpen", {"amount": 9}), ("warp", {}), ("denoise", {"colour": 1}),
                       ("denoise_multi", {"frames": 4}), ("upscale", {"factor": 3})]:
        with pytest.raises(EnhanceError):
            check(op, params)


def test_each_operation_improves_what_it_is_for(face: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    blurred = cv2.GaussianBlur(face, (0, 0), 1.5)
    kept = blurred.copy()
    deblurred, log = apply(blurred, [check("deblur", {"sigma": 1.5, "iterations": 10})])
    assert psnr(deblurred, face) > psnr(blurred, face) and log[0]["op"] == "deblur"
    assert np.array_equal(blurred, kept)  # a copy is enhanced, never the input
    noisy = [np.clip(face + rng.normal(0, 18, face.shape), 0, 255).astype(np.uint8) for _ in range(5)]
    single, _ = apply(noisy[2], [check("denoise", {"strength": 10})])
    multi, log = apply(noisy[2], [check("denoise_multi", {"strength": 10, "frames": 5})], neighbours=noisy)
    assert psnr(multi, face) > psnr(single, face) > psnr(noisy[2], face) and log[0]["frames_used"] == 5
    dark = (face * 0.25).astype(np.uint8)
    lifted, _ = apply(dark, [check("lowlight", {"gamma": 0.5})])
    assert lifted.mean() > 2 * dark.mean()
    hazy = (face * 0.5 + 110).astype(np.uint8)
    clear, _ = apply(hazy, [check("dehaze", {})])
    assert clear.std() > 1.3 * hazy.std()
    flat = cv2.addWeighted(face, 0.4, np.full_like(face, 128), 0.6, 0)
    contrasted, _ = apply(flat, [check("contrast", {"clip": 3})])
    assert contrasted.std() > flat.std()
    sharper, _ = apply(blurred, [check("sharpen", {"amount": 1.5})])
    assert cv2.Laplacian(sharper, cv2.CV_64F).var() > cv2.Laplacian(blurred, cv2.CV_64F).var()


def test_span_x4_beats_bicubic_on_every_shared_face() -> None:
    upscaler = ModelZoo().super_resolver()
    gains = []
    for name in ("person_a_1", "person_a_2", "person_b_1", "group_6"):
        image = cv2.imread(str(TESTDATA / "faces" / f"{name}.jpg"))
        h, w = image.shape[:2]
        s = 480 / max(h, w)
        image = cv2.resize(image, (int(w * s) // 4 * 4, int(h * s) // 4 * 4), interpolation=cv2.INTER_AREA)
        small = cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4), interpolation=cv2.INTER_AREA)
        learned, log = apply(small, [Step("superres", {})], upscaler=upscaler.upscale, upscaler_id=upscaler.model_id)
        bicubic, _ = apply(small, [check("upscale", {"factor": 4})])
        assert learned.shape == image.shape and log[0]["model"] == "span-x4@1"
        gains.append(psnr(learned, image) - psnr(bicubic, image))
    assert min(gains) > 0.8, gains  # measured 1.3-1.9 dB on these four (benchmarks/enhance/superres.py)
