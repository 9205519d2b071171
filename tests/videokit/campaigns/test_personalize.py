"""Campaign spec validation, text auto-fit, overlays and YUV compositing."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from videokit.campaigns.personalize import (
    OverlayError,
    composite_i420,
    entrance_at,
    fit_text,
    open_image,
    overlay_planes,
    render_image,
    render_text,
)
from videokit.campaigns.spec import SpecError, TextSlot, check_columns, load_spec

GOOD = """
template: {video: template.mp4}
recipients: recipients.csv
output: {aspects: ["16:9", "9:16"]}
slots:
  - {name: greeting, kind: text, text: "Hi {first_name}!", start_s: 0.5, end_s: 3.0,
     box: {x: 0.1, y: 0.3, w: 0.8, h: 0.25}, font: {min_size: 24, max_size: 96, max_lines: 2}}
  - {name: logo, kind: image, column: logo, start_s: 10, end_s: 14, box: {x: 0.4, y: 0.3, w: 0.2, h: 0.4}}
"""


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="spring.yaml")
    assert all(line.startswith("spring.yaml: ") for line in str(caught.value).splitlines())
    return dict(caught.value.problems)


def test_good_spec_loads_with_defaults():
    spec = load_spec(GOOD, source="spring.yaml")
    assert [slot.kind for slot in spec.slots] == ["text", "image"]
    assert spec.output.size("16:9") == (1280, 720) and spec.output.size("9:16") == (720, 1280)
    assert spec.output.size("1:1") == (720, 720)
    assert spec.used_columns() == ["recipient_id", "first_name", "logo"]
    assert spec.slots[0].box.pixels((1280, 720)) == (128, 216, 1024, 180)


def test_spec_errors_name_the_file_and_every_key_path():
    bad = (GOOD.replace("end_s: 3.0", "end_s: 0.2")
               .replace("w: 0.8", "w: 1.5")
               .replace("kind: image, column: logo", "kind: image, colour: red")
               .replace("recipients: recipients.csv\n", ""))
    problems = problems_of(bad)
    assert problems["recipients"] == "required key is missing"
    assert "slots[0].box.w" in problems and "less than or equal to 1" in problems["slots[0].box.w"]
    assert problems["slots[1].colour"] == "unknown key"
    assert problems["slots[1].column"] == "required key is missing"


def test_timing_safe_area_and_placeholders_are_checked_with_their_key():
    bad = (GOOD.replace("end_s: 3.0", "end_s: 0.2")
               .replace("x: 0.4, y: 0.3", "x: 0.0, y: 0.3")
               .replace("Hi {first_name}!", "Hi {first_name.__class__}!"))
    problems = problems_of(bad)
    assert "must be after start_s" in problems["slots[0].end_s"]
    assert "safe area" in problems["slots[1].box"]
    assert "plain {column}" in problems["slots[0].text"]


def test_template_needs_exactly_one_source_and_sku_needs_a_duration():
    problems = problems_of(GOOD.replace("template: {video: template.mp4}", "template: {sku: SKU-1}"))
    assert "duration_s" in problems["template"]
    problems = problems_of(GOOD.replace("template: {video: template.mp4}", "template: {}"))
    assert "exactly one" in problems["template"]


def test_yaml_syntax_errors_name_the_file_and_line():
    with pytest.raises(SpecError, match=r"spring.yaml: not valid YAML: line 3, column 18: mapping values"):
        load_spec("template:\n  video: a.mp4\nrecipients: r.csv: x\n", source="spring.yaml")


def test_placeholders_must_be_recipient_columns():
    spec = load_spec(GOOD, source="spring.yaml")
    check_columns(spec, ["recipient_id", "first_name", "logo"], spec_source="spring.yaml", recipients_source="r.csv")
    with pytest.raises(SpecError) as caught:
        check_columns(spec, ["recipient_id", "name", "logo_url"], spec_source="spring.yaml", recipients_source="r.csv")
    problems = dict(caught.value.problems)
    assert "'first_name' is not a column of r.csv" in problems["slots[0].text"]
    assert "'logo' is not a column" in problems["slots[1].column"]


def greeting(max_lines: int = 2, min_size: int = 24) -> TextSlot:
    spec = load_spec(GOOD.replace("max_lines: 2", f"max_lines: {max_lines}").replace("min_size: 24", f"min_size: {min_size}"))
    return spec.slots[0]


def test_short_names_get_the_largest_size_and_long_names_shrink():
    slot = greeting()
    box = (1024, 180)
    short = fit_text("Hi Ada!", slot.font, box)
    longer = fit_text("Hi Bartholomew Montgomery!", slot.font, box)
    assert short.size == slot.font.max_size and short.lines == ("Hi Ada!",)
    assert slot.font.min_size <= longer.size < short.size
    assert longer.width <= box[0] and longer.height <= box[1]


def test_long_text_wraps_to_max_lines_then_is_rejected():
    box = (700, 200)
    two = fit_text("Hi Maria Fernanda de los Angeles!", greeting(max_lines=2).font, box)
    assert len(two.lines) == 2
    one = fit_text("Hi Maria Fernanda de los Angeles!", greeting(max_lines=1).font, box)
    assert len(one.lines) == 1 and one.size < two.size
    with pytest.raises(OverlayError, match="even at the minimum size 40 px") as caught:
        fit_text("Hi Wolfeschlegelsteinhausenbergerdorff!", greeting(min_size=40).font, box)
    assert caught.value.field == "text"


def test_rendered_text_stays_inside_its_box():
    slot = greeting()
    layout = fit_text("Hi Grace!", slot.font, (600, 120))
    rgba = render_text(slot, layout, (600, 120))
    assert rgba.shape == (120, 600, 4)
    rows, cols = np.nonzero(rgba[..., 3])
    assert rows.size > 0 and cols.min() > 0 and cols.max() < 599


def test_unreadable_images_are_rejected_with_a_reason():
    with pytest.raises(OverlayError, match="cannot decode image"):
        open_image(b"not an image at all")
    with pytest.raises(OverlayError, match="empty"):
        open_image(b"")


def test_logo_fits_inside_its_box_keeping_aspect():
    buffer = io.BytesIO()
    Image.new("RGBA", (300, 100), (200, 40, 40, 255)).save(buffer, "PNG")
    slot = load_spec(GOOD).slots[1]
    rgba = render_image(slot, open_image(buffer.getvalue()), (200, 200))
    rows, cols = np.nonzero(rgba[..., 3] > 128)
    assert cols.max() - cols.min() + 1 == 200 and 60 <= rows.max() - rows.min() + 1 <= 70


def rgb_over(background: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    return np.rint(rgba[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8)


def test_yuv_compositing_matches_compositing_in_rgb():
    width, height = 96, 64
    background = np.zeros((height, width, 3), np.uint8)
    background[:] = (40, 90, 160)
    background[:, width // 2 :] = (230, 220, 200)
    overlay = np.zeros((height, width, 4), np.uint8)
    overlay[10:50, 8:88] = (250, 200, 30, 255)  # opaque
    overlay[20:40, 30:70, 3] = 128  # half transparent
    overlay[0:6, 0:4] = (255, 0, 0, 200)  # touches the corner: odd-sized, not chroma-aligned
    frame = cv2.cvtColor(background, cv2.COLOR_RGB2YUV_I420)
    composite_i420(frame, (width, height), overlay_planes(overlay, 0, 0, "bt601"))
    expected = cv2.cvtColor(rgb_over(background, overlay), cv2.COLOR_RGB2YUV_I420)
    difference = np.abs(frame.astype(int) - expected.astype(int))
    assert difference[:height].max() <= 2  # luma, exact up to rounding
    assert difference[height:].mean() < 1.0  # chroma, averaged over 2x2 blocks either way


def test_only_the_overlay_region_is_touched_and_opacity_scales_it():
    frame = np.full((64 * 3 // 2, 96), 100, np.uint8)
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[...] = (255, 255, 255, 255)
    planes = overlay_planes(rgba, 40, 20)
    untouched = frame.copy()
    composite_i420(frame, (96, 64), planes, opacity=0.5)
    changed = np.argwhere(frame[:64] != untouched[:64])
    assert changed[:, 0].min() == 20 and changed[:, 0].max() == 39
    assert changed[:, 1].min() == 40 and changed[:, 1].max() == 59
    assert abs(int(frame[30, 50]) - round(0.5 * 235 + 0.5 * 100)) <= 1


def test_entrances_end_where_the_overlay_rests():
    fade, slide = load_spec(GOOD).slots[0].entrance, load_spec(GOOD.replace(
        'max_lines: 2}}', 'max_lines: 2}, entrance: {kind: slide, side: bottom, duration_s: 0.5}}')).slots[0].entrance
    assert entrance_at(fade, 0.0, (100, 50))[2] == 0.0
    assert entrance_at(fade, 0.2, (100, 50))[2] == pytest.approx(0.5)
    assert entrance_at(fade, 1.0, (100, 50)) == (0, 0, 1.0)
    dx, dy, _ = entrance_at(slide, 0.1, (100, 50))
    assert dx == 0 and dy > 0 and dy % 2 == 0
    assert entrance_at(slide, 0.5, (100, 50)) == (0, 0, 1.0)
