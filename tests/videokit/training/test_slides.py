"""Slides: text fitted to the frame or refused, pictures fitted, room kept for a presenter."""

from __future__ import annotations

import io

import numpy as np
import pytest

from samples.training.make_training_samples import draw_care_label
from videokit.training.slides import (
    Look,
    SlideError,
    background,
    content_box,
    fit_bullets,
    frame_presenter,
    presenter_box,
    product_card,
    render_picture,
    render_slide,
    render_title_card,
)

LOOK = Look()
HD, SMALL = (1280, 720), (320, 180)


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_slides_render_at_any_size_and_bullets_share_one_size():
    bullets = ("Empty every pocket", "Brush off dry mud before you wet anything at all", "Dry in the shade")
    for size in (HD, SMALL):
        frame = render_slide("Everyday cleaning", bullets, size, LOOK)
        assert frame.shape == (size[1], size[0], 3) and frame.dtype == np.uint8
        assert not np.array_equal(frame, background(size, LOOK))
    size_px, layouts = fit_bullets(bullets, 1100, 400, LOOK, 720)
    assert {layout.size for layout in layouts} == {size_px} and size_px >= 22


def test_text_that_cannot_fit_at_the_minimum_size_is_refused():
    with pytest.raises(SlideError, match=r"title .* does not fit in 2 line\(s\).*minimum size 32 px"):
        render_slide("A title " * 30, ("one",), HD, LOOK)
    with pytest.raises(SlideError, match=r"the 9 bullet\(s\) do not fit .* minimum size 22 px"):
        render_slide("Too much", tuple(["a long bullet with many words in it " * 3] * 9), HD, LOOK)
    with pytest.raises(SlideError, match="picture: cannot decode image"):
        render_picture(b"not a picture", None, HD, LOOK)


def test_a_presenter_keeps_the_right_of_the_frame_for_itself():
    box = presenter_box(HD)
    content = content_box(HD, with_presenter=True)
    assert content.x + content.w < box.x and box.x + box.w < HD[0] and box.y + box.h < HD[1]
    assert all(value % 2 == 0 for value in (box.x, box.y, box.w, box.h))
    long_bullets = ("word " * 30,) * 3
    frame = render_slide("Title", long_bullets, HD, LOOK, with_presenter=True)
    empty = background(HD, LOOK)
    assert np.array_equal(frame[:, box.x :], empty[:, box.x :])  # text wrapped short of the presenter
    framed = frame_presenter(frame, HD, LOOK)
    assert tuple(framed[box.y - 2, box.x + box.w // 2]) == LOOK.accent


def test_pictures_and_product_cards_fit_inside_the_frame():
    label = png(draw_care_label(600, 350))
    frame = render_picture(label, "The care label", HD, LOOK)
    assert frame.shape == (720, 1280, 3)
    card = product_card("Ridgeline 24L Daypack - Moss", (1280, 720), HD, LOOK)
    box = card.clip_box
    assert box.x >= 0 and box.y >= 0 and box.x + box.w <= 1280 and box.y + box.h <= 720
    assert abs(box.w / box.h - 16 / 9) < 0.02 and box.w % 2 == 0 and box.h % 2 == 0
    poster = render_title_card("Product care: keeping outdoor gear in shape", "14 chapters · 9:46", HD, LOOK)
    assert poster.shape == (720, 1280, 3)
