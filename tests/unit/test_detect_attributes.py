"""Colour, vehicle type and crop quality on synthetic pictures with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from workers.detect.attributes import crop_box, crop_quality, dominant_colour, sharpness, vehicle_type


def patch(bgr: tuple[int, int, int], noise: int = 6, size: int = 80) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.full((size, size, 3), bgr, np.int16) + rng.integers(-noise, noise + 1, (size, size, 3))
    return img.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("bgr", "expected"),
    [
        ((245, 245, 245), "white"),
        ((20, 20, 20), "black"),
        ((110, 110, 110), "grey"),
        ((175, 178, 180), "silver"),
        ((30, 30, 200), "red"),
        ((200, 60, 30), "blue"),
        ((40, 170, 40), "green"),
        ((30, 220, 230), "yellow"),
        ((30, 70, 110), "brown"),
    ],
)
def test_palette_colours(bgr: tuple[int, int, int], expected: str) -> None:
    colour, confidence = dominant_colour(patch(bgr))
    assert colour == expected
    assert confidence > 0.8


def test_white_body_in_partial_shade_is_white() -> None:
    img = patch((240, 240, 240))
    img[:, :40] = (img[:, :40] * 0.55).astype(np.uint8)  # half the panel in shadow
    assert dominant_colour(img)[0] == "white"


def test_tiny_or_empty_crop_is_unknown() -> None:
    assert dominant_colour(np.zeros((0, 0, 3), np.uint8)) == ("unknown", 0.0)
    assert dominant_colour(patch((30, 30, 200), size=6)) == ("unknown", 0.0)


@pytest.mark.parametrize(("name", "expected"), [("car", "car"), ("truck", "truck"), ("bus", "bus"),
                                                 ("motorcycle", "motorcycle"), ("person", None), ("dog", None)])
def test_vehicle_type(name: str, expected: str | None) -> None:
    assert vehicle_type(name) == expected


def test_sharp_crop_scores_higher_than_blurred() -> None:
    rng = np.random.default_rng(1)
    sharp = (rng.integers(0, 2, (64, 64, 3)) * 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(sharp, (15, 15), 5)
    assert sharpness(sharp) > sharpness(blurred) + 0.3


def test_quality_prefers_large_central_uncut_objects() -> None:
    crop = patch((120, 120, 120))
    big_centre = crop_quality(np.array([300, 200, 500, 400]), crop, 800, 600)
    small_centre = crop_quality(np.array([390, 290, 410, 310]), crop, 800, 600)
    big_cut = crop_quality(np.array([0, 200, 200, 400]), crop, 800, 600)
    assert big_centre > small_centre
    assert big_centre > big_cut
    assert 0.0 <= small_centre <= 1.0


def test_crop_box_adds_margin_and_clips() -> None:
    assert crop_box(np.array([10, 10, 110, 60]), 100, 100, 0.1) == (0, 5, 100, 65)
