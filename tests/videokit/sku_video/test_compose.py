import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from videokit.media.brand import KEYFRAME_SIZES, BrandKit
from videokit.sku_video.compose import (
    KeyframeLayers,
    compose_keyframe,
    cut_out_product,
    render_background,
    safe_area,
)

BODY = (30, 90, 160)
CAP = (200, 40, 40)
LABEL = (246, 244, 238)  # off-white, as printed labels are
PRODUCT_BOX = (170, 90, 431, 841)  # x0, y0, x1, y1 (exclusive) of the bottle drawn below


def bottle_packshot(background: str = "white") -> Image.Image:
    """A flat bottle with a cap and an off-white label, centred on white (or transparent)."""
    if background == "transparent":
        image = Image.new("RGBA", (600, 900), (255, 255, 255, 0))
    else:
        image = Image.new("RGB", (600, 900), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((170, 260, 430, 840), radius=60, fill=BODY)
    draw.rectangle((250, 140, 350, 270), fill=BODY)
    draw.rectangle((240, 90, 360, 150), fill=CAP)
    draw.rectangle((190, 450, 410, 640), fill=LABEL)
    return image


def studio_kit(**changes) -> BrandKit:
    values = {
        "name": "acme",
        "display_name": "Acme",
        "background_style": "studio",
        "background_colors": ((244, 238, 228), (196, 180, 160)),
        "accent": (200, 40, 40),
        "text": (20, 20, 20),
        "logo_position": "top-right",
    }
    return BrandKit(**{**values, **changes})


def brand_logo() -> Image.Image:
    logo = Image.new("RGBA", (300, 100), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rounded_rectangle((0, 0, 299, 99), radius=20, fill=(200, 40, 40, 255))
    return logo


def test_cut_out_from_white_crops_to_the_product_and_keeps_its_pixels():
    packshot = bottle_packshot()
    cutout = np.asarray(cut_out_product(packshot))
    x0, y0, x1, y1 = PRODUCT_BOX
    assert cutout.shape == (y1 - y0, x1 - x0, 4)
    opaque = cutout[..., 3] == 255
    original = np.asarray(packshot)[y0:y1, x0:x1]
    assert opaque.mean() > 0.5
    assert np.array_equal(cutout[..., :3][opaque], original[opaque])
    # The white label inside the silhouette is product, not background.
    assert cutout[450 - y0 + 50, 300 - x0, 3] == 255
    # Outside the silhouette (beside the neck) is transparent.
    assert cutout[200 - y0, 0, 3] == 0


def test_cut_out_keeps_a_real_alpha_channel():
    packshot = bottle_packshot("transparent")
    cutout = np.asarray(cut_out_product(packshot))
    x0, y0, x1, y1 = PRODUCT_BOX
    source = np.asarray(packshot)[y0:y1, x0:x1]
    assert cutout.shape == source.shape
    assert np.array_equal(cutout[..., 3], source[..., 3])
    opaque = source[..., 3] == 255
    assert np.array_equal(cutout[..., :3][opaque], source[..., :3][opaque])


def test_cut_out_leaves_a_soft_floor_shadow_behind():
    ys, xs = np.mgrid[0:900, 0:600]
    shade = 1 - 0.3 * np.exp(-(((xs - 300) / 170) ** 2 + ((ys - 842) / 14) ** 2))
    floor = Image.fromarray((255 * shade[..., None]).repeat(3, axis=2).round().astype(np.uint8))
    packshot = bottle_packshot()
    floor.paste(
        packshot, mask=Image.fromarray((np.asarray(packshot).min(axis=2) < 255).astype(np.uint8) * 255)
    )
    x0, y0, x1, y1 = PRODUCT_BOX
    assert cut_out_product(floor).size == (x1 - x0, y1 - y0)


def test_cut_out_opens_holes_the_product_encloses():
    packshot = Image.new("RGB", (400, 400), "white")
    draw = ImageDraw.Draw(packshot)
    draw.ellipse((80, 80, 320, 320), fill=BODY)
    draw.ellipse((150, 150, 250, 250), fill="white")
    cutout = np.asarray(cut_out_product(packshot))
    assert cutout[120, 120, 3] == 0  # the middle of the ring
    assert cutout[20, 120, 3] == 255


@pytest.mark.parametrize("packshot", [Image.new("RGB", (200, 200), "white"), Image.new("RGBA", (200, 200))])
def test_cut_out_without_a_product_says_so(packshot):
    with pytest.raises(ValueError, match="no product"):
        cut_out_product(packshot)


@pytest.mark.parametrize("style", ["studio", "gradient", "solid"])
@pytest.mark.parametrize("size", list(KEYFRAME_SIZES.values()))
def test_background_for_every_style_and_size(style, size):
    kit = studio_kit(background_style=style)
    background = render_background(kit, size)
    width, height = size
    assert background.shape == (height, width, 3) and background.dtype == np.uint8
    assert np.array_equal(background, render_background(kit, size))
    first, second = (np.array(color) for color in kit.background_colors)
    if style == "solid":
        assert (background == first).all()
    elif style == "gradient":
        assert np.abs(background[0].mean(axis=0) - first).max() < 2
        assert np.abs(background[-1].mean(axis=0) - second).max() < 2
    else:
        light = background[int(0.38 * height), width // 2].astype(int)
        corner = background[-1, 0].astype(int)
        assert np.abs(light - first).max() <= 2
        assert np.abs(corner - second).max() <= 2


@pytest.mark.parametrize("aspect", list(KEYFRAME_SIZES))
def test_keyframe_places_product_and_logo_inside_the_safe_area(aspect):
    size = KEYFRAME_SIZES[aspect]
    layers = compose_keyframe(bottle_packshot(), studio_kit(), size, logo=brand_logo())
    width, height = size
    left, top, right, bottom = safe_area(size, 0.08)
    x, y = layers.product_xy
    product_h, product_w = layers.product.shape[:2]
    assert layers.size == size
    assert left <= x and x + product_w <= right and top <= y and y + product_h <= bottom
    assert y + product_h / 2 > height / 2  # slightly below centre
    assert 0.7 * min(size) <= product_h <= 0.72 * height + 1  # large, within the height limit
    logo_x, logo_y = layers.logo_xy
    logo_h, logo_w = layers.logo.shape[:2]
    assert logo_x + logo_w == right and logo_y == top
    assert logo_y + logo_h < y, "the logo must not cover the product"
    assert layers.flatten().shape == (height, width, 3)


@pytest.mark.parametrize("aspect", list(KEYFRAME_SIZES))
def test_keyframe_preserves_product_pixels_exactly(aspect):
    layers = compose_keyframe(bottle_packshot(), studio_kit(), KEYFRAME_SIZES[aspect], logo=brand_logo())
    mask = layers.product_mask()
    x, y = layers.product_xy
    product_h, product_w = layers.product.shape[:2]
    placed = np.zeros(mask.shape + (3,), np.uint8)
    placed[y : y + product_h, x : x + product_w] = layers.product[..., :3]
    assert mask.sum() == (layers.product[..., 3] == 255).sum() > 0
    assert np.array_equal(layers.flatten()[mask], placed[mask])


def test_keyframe_never_upscales_a_small_packshot_more_than_one_and_a_half_times():
    small = bottle_packshot().resize((60, 90), Image.LANCZOS)
    cut_height = cut_out_product(small).height
    layers = compose_keyframe(small, studio_kit(), (1280, 720))
    assert layers.product.shape[0] <= 1.5 * cut_height


def test_keyframe_shadow_sits_under_the_product():
    layers = compose_keyframe(bottle_packshot(), studio_kit(), (1280, 720))
    rows = np.nonzero(layers.shadow_alpha.max(axis=1))[0]
    product_bottom = layers.product_xy[1] + layers.product.shape[0]
    assert rows.min() < product_bottom < rows.max()
    assert layers.shadow_alpha[: layers.product_xy[1]].max() == 0


def test_layers_round_trip_through_files():
    layers = compose_keyframe(bottle_packshot(), studio_kit(), (720, 1280), logo=brand_logo())
    files = layers.to_files()
    assert set(files) == {
        "keyframe.png",
        "background.png",
        "shadow.png",
        "product.png",
        "logo.png",
        "layers.json",
    }
    restored = KeyframeLayers.from_files(files)
    assert restored.size == layers.size
    assert restored.product_xy == layers.product_xy and restored.logo_xy == layers.logo_xy
    assert restored.shadow_color == layers.shadow_color
    for name in ("background", "shadow_alpha", "product", "logo"):
        assert np.array_equal(getattr(restored, name), getattr(layers, name)), name
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(files["keyframe.png"]))), layers.flatten())


def test_layers_without_logo_round_trip():
    layers = compose_keyframe(bottle_packshot(), studio_kit(), (1280, 720))
    restored = KeyframeLayers.from_files(layers.to_files())
    assert restored.logo is None and restored.logo_xy is None
    assert np.array_equal(restored.flatten(), layers.flatten())


def test_resized_layers_cover_the_new_size():
    layers = compose_keyframe(bottle_packshot(), studio_kit(), (1080, 1080), logo=brand_logo())
    small = layers.resized((720, 720))
    assert small.flatten().shape == (720, 720, 3)
    assert small.product_xy == (round(layers.product_xy[0] * 2 / 3), round(layers.product_xy[1] * 2 / 3))
    assert abs(small.product.shape[0] - layers.product.shape[0] * 2 / 3) <= 1


def round_packshot(diameter: int) -> Image.Image:
    """A compact product (a watch face, a kettle seen front-on): a disc on white."""
    image = Image.new("RGB", (diameter + 40, diameter + 40), "white")
    ImageDraw.Draw(image).ellipse((20, 20, 20 + diameter, 20 + diameter), fill=BODY)
    return image


@pytest.mark.parametrize("aspect", list(KEYFRAME_SIZES))
def test_compact_products_fill_a_target_share_of_the_safe_area(aspect):
    size = KEYFRAME_SIZES[aspect]
    layers = compose_keyframe(round_packshot(900), studio_kit(), size, logo=brand_logo())
    left, top, right, bottom = safe_area(size, 0.08)
    product_h, product_w = layers.product.shape[:2]
    share = product_w * product_h / ((right - left) * (bottom - top))
    assert share >= 0.3, f"a compact product covers only {share:.0%} of the safe area"
    assert product_w * product_h / (size[0] * size[1]) >= 0.25


def test_small_packshots_are_not_upscaled_into_blur():
    layers = compose_keyframe(round_packshot(120), studio_kit(), (1280, 720))
    assert layers.product.shape[0] <= 1.5 * 121
