"""Procedural packshots, logos, bundled fonts and the sample catalog built from them."""

from __future__ import annotations

import csv
import importlib.util
import math
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image, ImageFont

from assets.catalog.rows import aspects_problem
from devkit.sample_art import PRODUCT_KINDS, draw_logo, draw_packshot
from videokit.media.brand import ASPECTS, BrandKit
from videokit.media.text import font_path, load_font

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SIZE = 240  # drawings are resolution independent, and small ones keep the suite fast
MARGIN = 0.06
COLOURS = {"color": (176, 42, 52), "accent": (32, 44, 74)}


def _load_make_samples():
    # samples/ is a folder of scripts, not a package, so load the script by path.
    spec = importlib.util.spec_from_file_location("samples_make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


make_samples = _load_make_samples()


def _border(values: np.ndarray, share: float = MARGIN) -> np.ndarray:
    m = math.ceil(values.shape[0] * share)
    return np.concatenate(
        [values[:m].ravel(), values[-m:].ravel(), values[:, :m].ravel(), values[:, -m:].ravel()]
    )


def _flooded_from_border(rgb: np.ndarray, level: int = 250) -> np.ndarray:
    """Pixels at least `level` white in every channel that connect to the image border."""
    white = (rgb.min(axis=2) >= level).astype(np.uint8)
    _, labels = cv2.connectedComponents(white, connectivity=4)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.isin(labels, np.unique(edge[edge != 0]))


def test_kinds_cover_at_least_eight_products_in_four_categories():
    assert len(PRODUCT_KINDS) >= 8
    assert len(set(PRODUCT_KINDS.values())) >= 4


@pytest.mark.parametrize("kind", sorted(PRODUCT_KINDS))
def test_packshot_is_deterministic(kind):
    first = draw_packshot(kind, **COLOURS, label="AURA", size=SIZE, seed=3)
    second = draw_packshot(kind, **COLOURS, label="AURA", size=SIZE, seed=3)
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("kind", sorted(PRODUCT_KINDS))
def test_packshot_is_centred_on_pure_white(kind):
    image = draw_packshot(kind, **COLOURS, label="AURA", size=SIZE)
    assert image.mode == "RGB" and image.size == (SIZE, SIZE)
    rgb = np.asarray(image)
    assert (_border(rgb) == 255).all(), "the product or its shadow reaches into the 6% margin"
    product = (rgb != 255).any(axis=2)
    assert 0.10 <= product.mean() <= 0.55
    rows, cols = np.nonzero(product)
    assert max(np.ptp(rows), np.ptp(cols)) >= 0.6 * SIZE
    assert abs((cols.min() + cols.max()) / 2 - SIZE / 2) < 0.08 * SIZE


@pytest.mark.parametrize("kind", sorted(PRODUCT_KINDS))
def test_packshot_separates_from_white_by_flood_fill(kind):
    """No pure-white part of the product connects to the background, even for a white product."""
    white_product = {"color": (255, 255, 255), "accent": (250, 250, 250)}
    rgb = np.asarray(draw_packshot(kind, **white_product, label="AURA", size=SIZE))
    alpha = np.asarray(draw_packshot(kind, **white_product, label="AURA", size=SIZE, transparent=True))[
        ..., 3
    ]
    flooded = _flooded_from_border(rgb)
    assert not flooded[alpha >= 128].any()
    assert rgb[alpha == 255].max() <= 246


@pytest.mark.parametrize("kind", sorted(PRODUCT_KINDS))
def test_transparent_packshot_has_clear_background_and_solid_product(kind):
    image = draw_packshot(kind, **COLOURS, size=SIZE, transparent=True)
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert (_border(alpha) == 0).all()
    assert (alpha == 255).mean() >= 0.08
    opaque_rgb = np.asarray(draw_packshot(kind, **COLOURS, size=SIZE))
    # Away from edges and shadow, the cut-out shows the same product as the white-background shot.
    solid = alpha == 255
    difference = np.abs(np.asarray(image)[..., :3][solid].astype(int) - opaque_rgb[solid].astype(int))
    assert np.median(difference) <= 1


def test_label_changes_the_packshot_and_unknown_kinds_are_refused():
    plain = draw_packshot("can", **COLOURS, size=SIZE)
    labelled = draw_packshot("can", **COLOURS, label="AURA", size=SIZE)
    assert plain.tobytes() != labelled.tobytes()
    with pytest.raises(ValueError, match="unknown product kind"):
        draw_packshot("toaster", **COLOURS)


def test_logo_is_a_mark_and_word_on_transparent_background():
    logo = draw_logo("Northwind", color=(27, 27, 27), accent=(31, 78, 95))
    assert logo.mode == "RGBA" and logo.size == (480, 160)
    rgba = np.asarray(logo)
    assert (_border(rgba[..., 3], share=0.02) == 0).all()
    visible = rgba[..., 3] > 128
    assert 0.08 <= visible.mean() <= 0.6
    mark = visible[:, :160] & (np.abs(rgba[:, :160, :3].astype(int) - (31, 78, 95)).max(axis=2) <= 8)
    word = visible[:, 170:] & (rgba[:, 170:, :3].max(axis=2) <= 40)
    assert mark.mean() >= 0.2, "the accent mark is missing"
    assert word.mean() >= 0.03, "the brand word is missing"


def test_logo_is_deterministic_and_sized():
    first = draw_logo("Volta", color=(240, 240, 240), accent=(228, 87, 46), size=(240, 80))
    second = draw_logo("Volta", color=(240, 240, 240), accent=(228, 87, 46), size=(240, 80))
    assert first.size == (240, 80)
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("bold", [False, True])
def test_bundled_fonts_load_and_ship_their_licence(bold):
    path = font_path(bold)
    assert path.is_file() and path.suffix == ".ttf"
    assert (path.parent / "LICENSE-DejaVu.txt").read_text().startswith("Fonts are (c) Bitstream")
    font = load_font(32, bold)
    assert isinstance(font, ImageFont.FreeTypeFont)
    assert font.getbbox("Sample")[2] > 60
    assert ("Bold" in font.getname()[1]) == bold


def test_catalog_rows_are_valid():
    with (SAMPLES / "catalog.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == [
            "sku_id",
            "title",
            "category",
            "brand",
            "image",
            "tier",
            "prompt",
            "aspect",
            "aspects",
        ]
        rows = list(reader)
    brands = yaml.safe_load((SAMPLES / "brands.yaml").read_text())["brands"]
    assert len(rows) >= 14
    assert len({row["sku_id"] for row in rows}) == len(rows)
    assert len({row["category"] for row in rows}) >= 4
    assert {row["brand"] for row in rows} == set(brands)
    assert 3 <= sum(row["tier"] == "hero" for row in rows) <= 4
    for row in rows:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", row["sku_id"])
        assert row["image"] == f"packshots/{row['sku_id']}.png"
        assert row["tier"] in ("hero", "bulk")
        assert row["aspect"] in ASPECTS
        assert aspects_problem(row["aspects"], row["aspect"]) is None
        assert row["title"].strip()
        assert make_samples.product_kind(row["sku_id"]) in PRODUCT_KINDS
    assert sum(bool(row["aspects"]) for row in rows) == 1, "the demo shows one SKU in every aspect"
    aspects = [row["aspect"] for row in rows]
    assert aspects.count("16:9") > len(rows) / 2 and aspects.count("9:16") >= 2 and aspects.count("1:1") >= 2


def test_every_brand_kit_parses_and_names_its_logo():
    kits = make_samples.load_brands()
    assert len(kits) >= 2
    assert len({kit.background_style for kit in kits.values()}) >= 2
    for name, kit in kits.items():
        assert isinstance(kit, BrandKit)
        assert kit.logo == f"logos/{name}.png"


def test_packshot_spec_follows_the_sku():
    brand = make_samples.load_brands()["northwind"]
    spec = make_samples.packshot_spec("NW-BPK-001", brand)
    assert spec.kind == "backpack"
    assert spec.label == "NORTHWIND"
    assert spec == make_samples.packshot_spec("NW-BPK-001", brand)
    assert make_samples.packshot_spec("NW-SNK-002", brand).transparent
    fallback = make_samples.packshot_spec("NW-LMP-999", brand)
    assert (fallback.kind, fallback.color, fallback.accent) == ("lamp", brand.accent, brand.text)
    with pytest.raises(ValueError, match="product code"):
        make_samples.product_kind("NW-XYZ-001")


def test_make_samples_writes_one_packshot_per_row_and_a_logo_per_brand(tmp_path):
    written = make_samples.make_samples(tmp_path, size=160)
    rows = make_samples.load_catalog()
    brands = make_samples.load_brands()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "packshots").iterdir()) == sorted(
        row["image"] for row in rows
    )
    assert sorted(p.name for p in (tmp_path / "logos").iterdir()) == sorted(f"{name}.png" for name in brands)
    assert len(written) == len(rows) + len(brands)
    modes = set()
    for row in rows:
        with Image.open(tmp_path / row["image"]) as image:
            modes.add(image.mode)
    assert modes == {"RGB", "RGBA"}, "samples should exercise both the white and the transparent cut-out"
    contents = [path.read_bytes() for path in written]
    again = make_samples.make_samples(tmp_path, size=160, workers=2)
    assert again == written
    assert [path.read_bytes() for path in again] == contents
