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


# -- colours of the object, not of its background (workers.detect.colours) ----------------------------------------
def scene(background: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> np.ndarray:
    """A crop with a 10 % margin of ``background`` around a box (the detect worker's crops look like this)."""
    h, w = size
    return patch(background, size=max(h, w))[:h, :w].copy()


def person(top: tuple[int, int, int], trousers: tuple[int, int, int], background: tuple[int, int, int],
           skin: bool = True) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    crop = scene(background)
    box = (8.0, 10.0, 72.0, 110.0)  # 64×100 person in a 80×120 crop
    x1, y1 = 8, 10
    crop[y1 + 18 : y1 + 52, x1 + 12 : x1 + 52] = top
    crop[y1 + 52 : y1 + 96, x1 + 18 : x1 + 46] = trousers
    if skin:  # a face and two hands in skin tone
        crop[y1 : y1 + 16, x1 + 24 : x1 + 40] = (120, 150, 210)
        crop[y1 + 40 : y1 + 48, x1 + 12 : x1 + 20] = (120, 150, 210)
    return crop, box


@pytest.mark.parametrize(
    ("top", "trousers", "background", "expected"),
    [
        ((30, 30, 200), (25, 25, 25), (40, 150, 40), ("red", "black")),  # red top, black trousers on a lawn
        ((200, 80, 30), (160, 110, 60), (110, 110, 110), ("blue", "blue")),  # blue jacket, jeans on pavement
        ((240, 240, 240), (100, 100, 100), (30, 200, 220), ("white", "grey")),  # white shirt against a yellow wall
    ],
)
def test_person_upper_and_lower_colours(top: tuple, trousers: tuple, background: tuple, expected: tuple) -> None:
    from workers.detect.colours import person_colours

    crop, box = person(top, trousers, background)
    upper, lower = person_colours(crop, box)
    assert (upper.colour, lower.colour) == expected
    assert upper.confidence > 0.5 and lower.confidence > 0.5


def test_lawn_around_a_dark_coat_is_not_its_colour() -> None:
    """Between the legs and beside the arms the lawn shows inside the box; the margin ring says it is background."""
    from workers.detect.colours import person_colours

    crop, box = person((25, 25, 25), (30, 30, 30), (40, 160, 40), skin=False)
    x1, y1 = 8, 10
    crop[y1 + 18 : y1 + 52, x1 + 16 : x1 + 22] = (40, 160, 40)  # lawn between arm and body
    crop[y1 + 60 : y1 + 96, x1 + 28 : x1 + 36] = (40, 160, 40)  # lawn between the legs
    upper, lower = person_colours(crop, box)
    assert (upper.colour, lower.colour) == ("black", "black")
    # without the ring (the crop is the box) the lawn is part of the object and wins nothing either way
    assert person_colours(crop[10:110, 8:72])[0].colour == "black"


def test_vehicle_colour_ignores_a_wall_of_another_colour_around_it() -> None:
    from workers.detect.colours import vehicle_colour

    crop = scene((30, 200, 220), size=(100, 140))  # yellow wall
    crop[10:90, 14:126] = (40, 40, 190)  # red body
    crop[10:40, 40:100] = (30, 200, 220)  # the wall seen through the windows
    assert vehicle_colour(crop, (14, 10, 126, 90)).colour == "red"


def test_skin_is_not_a_top() -> None:
    from workers.detect.colours import person_colours

    crop, box = person((120, 150, 210), (25, 25, 25), (110, 110, 110), skin=False)  # bare torso
    crop[28:62, 20:60] = (120, 150, 210)
    assert person_colours(crop, box)[0].colour == "unknown"


def test_an_object_in_front_does_not_lend_its_colour() -> None:
    """A white car half hidden behind a blue one (nearer the camera: its box ends lower) is white."""
    from workers.detect.colours import in_front, vehicle_colour

    crop = scene((110, 110, 110), size=(120, 160))
    crop[10:90, 10:150] = (235, 235, 235)  # white car, box (10, 10, 150, 90)
    crop[40:120, 60:160] = (200, 80, 30)  # blue car in front, box (60, 40, 160, 120)
    white, blue = (10.0, 10.0, 150.0, 90.0), (60.0, 40.0, 160.0, 120.0)
    assert in_front(white, [blue]) == [blue] and in_front(blue, [white]) == []
    assert vehicle_colour(crop, white).colour == "blue"  # without the cue the blue car wins
    assert vehicle_colour(crop, white, occluders=in_front(white, [blue])).colour == "white"


def test_strong_paint_outvotes_more_numerous_weakly_coloured_pixels() -> None:
    """A green panel with larger, pale blue lettering on it is green: hue votes weigh saturation (a pixel of S 70 says
    little about the hue); counting pixels alone (the earlier rule) says blue."""
    from workers.detect.colours import classify_pixels

    pale_blue = np.tile(np.uint8([[105, 70, 200]]), (60, 1))  # H 105 (blue), S 70, V 200
    green = np.tile(np.uint8([[60, 230, 180]]), (50, 1))  # H 60 (green), S 230
    hsv = np.concatenate([pale_blue, green])
    assert classify_pixels(hsv, "count").colour == "blue"
    result = classify_pixels(hsv)
    assert result.colour == "green"
    assert result.confidence == pytest.approx(50 / 110)  # the share of pixels named green, not of the weights
    assert classify_pixels(hsv[:20]).colour == "unknown"  # fewer than 24 pixels


def test_dark_pixels_neither_vote_for_nor_against_a_colour() -> None:
    """A light blue body half hidden by a dark coat is blue: pixels darker than V 50 show no hue, so the chromatic
    share is taken of the lit ones (the rule before, of all pixels, said silver); a region mostly in the dark is
    achromatic whatever its few lit pixels say."""
    from workers.detect.colours import classify_pixels

    light_blue = np.tile(np.uint8([[105, 80, 200]]), (25, 1))  # H 105 (blue), S 80, V 200
    silver_trim = np.tile(np.uint8([[105, 20, 170]]), (35, 1))  # lit, achromatic
    dark_coat = np.tile(np.uint8([[0, 0, 20]]), (40, 1))  # V 20: no hue
    hsv = np.concatenate([light_blue, silver_trim, dark_coat])  # 25 % chromatic of all, 42 % of the lit
    assert classify_pixels(hsv, lit_share=None).colour == "silver"
    assert classify_pixels(hsv).colour == "blue"
    black_car = np.concatenate([light_blue[:20], np.tile(np.uint8([[0, 0, 20]]), (80, 1))])  # 20 % lit
    assert classify_pixels(black_car).colour == "black"
    assert classify_pixels(np.concatenate([light_blue[:20], dark_coat[:10]])).colour == "black"  # < 24 lit


def test_crop_quality_never_exceeds_its_ceiling() -> None:
    """The worker skips a moment's sharpness when even a perfectly sharp crop could not win; that is only the same
    choice if the ceiling bounds the quality exactly (not merely approximately), for any box and any crop."""
    from workers.detect.attributes import crop_quality_ceiling

    rng = np.random.default_rng(7)
    w, h = 768, 576
    flat = np.full((h, w, 3), 90, np.uint8)
    noisy = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # sharpness close to 1: the tightest case
    for _ in range(400):
        x1, x2 = sorted(rng.uniform(-5, w + 5, 2))
        y1, y2 = sorted(rng.uniform(-5, h + 5, 2))
        box = np.array([x1, y1, x2, y2], np.float32).clip(0, [w, h, w, h])
        cx1, cy1, cx2, cy2 = crop_box(box, w, h, 0.1)
        ceiling = crop_quality_ceiling(box, w, h)
        for image in (flat, noisy):
            assert crop_quality(box, image[cy1:cy2, cx1:cx2], w, h) <= ceiling
    assert crop_quality_ceiling(np.array([0, 0, w, h]), w, h) == pytest.approx(0.6)  # cut, at the centre


def test_a_persons_two_regions_share_one_background_ring() -> None:
    """person_colours reads the margin ring once for both regions: the same answers as each region on its own
    (object_pixels, which reads the ring itself), with and without occluders, and without a ring at all."""
    from workers.detect.colours import (
        LOWER_REGION,
        UPPER_REGION,
        box_in_crop,
        classify_pixels,
        object_pixels,
        person_colours,
    )

    rng = np.random.default_rng(3)
    cases = [person((30, 30, 200), (25, 25, 25), (40, 150, 40)), person((200, 80, 30), (160, 110, 60), (110, 110, 110))]
    for _ in range(30):
        ch, cw = int(rng.integers(30, 260)), int(rng.integers(20, 140))
        crop = cv2.resize(rng.integers(0, 256, (max(1, ch // 5), max(1, cw // 5), 3), dtype=np.uint8), (cw, ch),
                          interpolation=cv2.INTER_NEAREST)
        mx, my = int(rng.integers(0, cw // 5 + 1)), int(rng.integers(0, ch // 5 + 1))
        cases.append((crop, (float(mx), float(my), float(cw - mx), float(ch - my))))  # 0 margin: no ring
    for crop, box in cases:
        x1, y1, x2, y2 = box
        inner = box_in_crop(crop, box)
        for occluders in ((), [(x1 + 0.3 * (x2 - x1), y1 + 0.6 * (y2 - y1), float(x2 + 5), float(y2 + 5))]):
            upper, lower = person_colours(crop, box, occluders=occluders)
            alone = [classify_pixels(object_pixels(crop, inner, region, skin=True, occluders=occluders))
                     for region in (UPPER_REGION, LOWER_REGION)]
            assert [upper, lower] == alone
