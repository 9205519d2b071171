"""Content identity and input images: a picture is the same picture however its file is wrapped, upright
whatever its EXIF says, and refused by its size when it is a decompression bomb. Every image is built here."""

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from PIL import Image, PngImagePlugin

from assets.catalog.sku_catalog import CATALOG_KEY, CatalogFileError, ingest_catalog, load_brand_kits
from assets.sku_video.keyframes import product_reference
from resources.storage import StorageResource
from videokit.campaigns.personalize import OverlayError
from videokit.campaigns.personalize import open_image as open_overlay_image
from videokit.media import images
from videokit.media.brand import BrandKit
from videokit.media.images import ImageRejected, PixelBudget, open_image, pixel_digest
from videokit.media.images import open_image as open_packshot
from videokit.sku_video.compose import compose_keyframe

HEADER = "sku_id,title,category,brand,image,tier,prompt,aspect\n"
BRANDS_YAML = 'brands:\n  acme:\n    background: {style: solid, colors: ["#F0F0F0"]}\n'
ORIENTATION = 0x0112
RED, BLUE = (220, 20, 20), (20, 40, 200)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def packshot() -> Image.Image:
    """A textured product on white, so lossless re-encodes differ in their bytes, not their pixels."""
    image = Image.new("RGB", (320, 240), "white")
    texture = np.random.default_rng(7).integers(0, 200, (160, 200, 3), dtype=np.uint8)
    image.paste(Image.fromarray(texture), (60, 40))
    return image


def retagged(data: bytes) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "re-encoded by the CDN on 2026-12-01")
    return encoded(Image.open(io.BytesIO(data)), "PNG", pnginfo=info)


def portrait_tagged_sideways() -> tuple[Image.Image, bytes]:
    """An upright portrait (red band on top of a blue product) stored rotated, with EXIF orientation 6."""
    upright = Image.new("RGB", (240, 360), "white")
    upright.paste(BLUE, (40, 40, 200, 320))
    upright.paste(RED, (40, 40, 200, 90))
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 clockwise to display"
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone sensor writes
    return upright, encoded(sideways, "JPEG", quality=95, exif=exif.tobytes())


def bomb_png(side: int = 20_000) -> bytes:
    return encoded(Image.new("1", (side, side)), "PNG")  # 1-bit zeros: a few KB that decode to side**2 pixels


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "brands.yaml").write_text(BRANDS_YAML)
    return tmp_path


def ingest(folder, csv_text: str, storage: StorageResource, name: str = "catalog.csv"):
    (folder / name).write_text(csv_text)
    return ingest_catalog(storage, str(folder / name), str(folder / "brands.yaml"), 10_000_000)


def test_same_pixels_in_other_containers_have_one_digest():
    original = encoded(packshot(), "PNG", compress_level=9)
    jpeg = encoded(packshot(), "JPEG", quality=90)
    copies = {
        "retagged": retagged(original),
        "recompressed": encoded(packshot(), "PNG", compress_level=1),
    }
    digest = pixel_digest(open_image(original))
    assert copies["retagged"] != original and copies["recompressed"] != original
    assert pixel_digest(open_image(copies["retagged"])) == digest
    assert pixel_digest(open_image(copies["recompressed"])) == digest
    jpeg_as_png = encoded(open_image(jpeg), "PNG")  # the JPEG's own pixels, stored losslessly
    assert pixel_digest(open_image(jpeg_as_png)) == pixel_digest(open_image(jpeg))
    changed = packshot()
    changed.putpixel((100, 100), (0, 0, 0))
    assert pixel_digest(open_image(encoded(changed, "PNG"))) != digest
    # Transparency changes the cut-out, so an RGBA copy is another picture even when every pixel is opaque.
    assert pixel_digest(open_image(encoded(packshot().convert("RGBA"), "PNG"))) != digest


def test_retagged_and_reencoded_packshots_keep_the_hash_and_are_stored_once(folder, tmp_path):
    storage = StorageResource(root=str(tmp_path / "data"))
    original = encoded(packshot(), "PNG", compress_level=9)
    (folder / "a.png").write_bytes(original)
    (folder / "b.jpg").write_bytes(encoded(packshot(), "JPEG", quality=90))
    first = ingest(folder, HEADER + "A-1,Mug,kitchen,acme,a.png,bulk,,\nB-1,Jar,kitchen,acme,b.jpg,bulk,,\n", storage)
    assert first.new == ["A-1", "B-1"] and first.validated.rejects == []
    hashes = dict(zip(first.accepted["sku_id"], first.accepted["content_hash"]))
    stored = set(storage.list_keys("sources/"))

    (folder / "a2.png").write_bytes(retagged(encoded(packshot(), "PNG", compress_level=1)))
    (folder / "b2.png").write_bytes(encoded(open_image((folder / "b.jpg").read_bytes()), "PNG"))
    again = ingest(folder, HEADER + "A-1,Mug,kitchen,acme,a2.png,bulk,,\nB-1,Jar,kitchen,acme,b2.png,bulk,,\n", storage)
    assert again.unchanged == ["A-1", "B-1"] and again.to_render == []
    assert dict(zip(again.accepted["sku_id"], again.accepted["content_hash"])) == hashes
    # The re-tagged PNG is the stored PNG; only the JPEG's PNG twin adds a file (its format differs).
    assert set(storage.list_keys("sources/")) - stored == {k for k in again.accepted["image_key"] if k.endswith(".png")} - stored
    assert len(set(storage.list_keys("sources/")) - stored) == 1


def test_exif_rotated_portrait_is_composed_upright_and_qa_uses_the_upright_reference():
    upright, data = portrait_tagged_sideways()
    opened = open_packshot(data)
    assert opened.size == upright.size == (240, 360)
    kit = BrandKit.from_dict("acme", {"background": {"style": "solid", "colors": ["#F0F0F0"]}})
    layers = compose_keyframe(opened, kit, (1280, 720))
    product = layers.product
    assert product.shape[0] > product.shape[1]  # portrait, as people see it
    top, bottom = product[product.shape[0] // 10, product.shape[1] // 2, :3], product[-product.shape[0] // 10, product.shape[1] // 2, :3]
    assert np.abs(top.astype(int) - RED).max() < 30 and np.abs(bottom.astype(int) - BLUE).max() < 30
    # QA's product reference is made from the same upright layers, so a sideways render cannot match it.
    reference = product_reference(layers)
    x, y = layers.product_xy
    assert np.array_equal(reference[y + product.shape[0] // 10, x + product.shape[1] // 2], top)
    # The same picture stored upright with no tag is the same content.
    assert pixel_digest(opened) == pixel_digest(open_image(encoded(opened, "PNG")))


def test_exif_orientation_applies_to_logos_and_overlay_images():
    upright, data = portrait_tagged_sideways()
    assert open_overlay_image(data).size == upright.size
    assert open_image(data).size == upright.size


@pytest.mark.parametrize("opener", [
    lambda data: open_image(data, max_pixels=40_000_000),
    lambda data: open_overlay_image(data),
])
def test_decompression_bomb_gets_the_pixel_limit_reason_fast(opener):
    data = bomb_png()
    assert len(data) < 100_000
    started = time.monotonic()
    with pytest.raises((ImageRejected, OverlayError), match=r"image is 20000x20000 = 400,000,000 pixels, over the limit of"):
        opener(data)
    assert time.monotonic() - started < 0.5


def test_bomb_packshot_is_a_row_reject_with_the_pixel_reason(folder, tmp_path):
    (folder / "bomb.png").write_bytes(bomb_png(30_000))
    report = ingest(folder, HEADER + "A-1,Mug,kitchen,acme,bomb.png,bulk,,\n", StorageResource(root=str(tmp_path / "d")))
    assert [r.field for r in report.validated.rejects] == ["image"]
    assert "image is 30000x30000 = 900,000,000 pixels, over the limit of 10,000,000" in report.validated.rejects[0].reason


@pytest.mark.parametrize("logo,reason", [
    ("/etc/passwd", "not allowed by the source policy"),
    ("https://example.invalid/logo.png", "not allowed by the source policy"),
    ("notes.txt", "logo notes.txt: file is not a readable image"),
    ("bomb.png", "logo bomb.png: image is 20000x20000 = 400,000,000 pixels, over the limit of 40,000,000"),
    ("anim.gif", "logo anim.gif: image format GIF is not one of PNG, JPEG, WEBP"),
])
def test_brand_kit_logos_are_refused_unless_they_are_images_within_limits(logo, reason, folder):
    (folder / "notes.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "anim.gif").write_bytes(encoded(Image.new("RGB", (80, 80)), "GIF"))
    (folder / "brands.yaml").write_text(BRANDS_YAML + f"    logo: {json.dumps(logo)}\n")
    with pytest.raises(CatalogFileError, match="brand kits|brands.yaml") as raised:
        load_brand_kits(str(folder / "brands.yaml"))
    assert reason in str(raised.value)


def test_brand_kit_logo_is_stored_by_its_pixels(folder, tmp_path):
    _, data = portrait_tagged_sideways()
    (folder / "logo.jpg").write_bytes(data)
    (folder / "brands.yaml").write_text(BRANDS_YAML + "    logo: logo.jpg\n")
    kits = load_brand_kits(str(folder / "brands.yaml"))
    logo = kits["acme"][2]
    assert (logo.width, logo.height, logo.format) == (240, 360, "JPEG")
    assert logo.sha256 == pixel_digest(open_image(data))


def test_case_variant_sku_ids_in_one_file_are_rejected_naming_both_rows(folder, tmp_path):
    (folder / "a.png").write_bytes(encoded(packshot(), "PNG"))
    report = ingest(folder, HEADER + "HERO-1,Mug,kitchen,acme,a.png,hero,,\nB-1,Jar,kitchen,acme,a.png,bulk,,\n"
                    "hero-1,Mug,kitchen,acme,a.png,hero,,\n", StorageResource(root=str(tmp_path / "d")))
    assert list(report.accepted["sku_id"]) == ["HERO-1", "B-1"]
    [reject] = report.validated.rejects
    assert (reject.row, reject.sku_id, reject.field) == (3, "hero-1", "sku_id")
    assert reject.reason == "duplicate of row 1 ('HERO-1'; SKU ids are compared without case)"


def test_case_variant_of_a_catalog_sku_updates_it_under_the_catalog_spelling(folder, tmp_path):
    storage = StorageResource(root=str(tmp_path / "d"))
    (folder / "a.png").write_bytes(encoded(packshot(), "PNG"))
    first = ingest(folder, HEADER + "HERO-1,Mug,kitchen,acme,a.png,hero,,\n", storage)
    same = ingest(folder, HEADER + "hero-1,Mug,kitchen,acme,a.png,hero,,\n", storage, "lower.csv")
    assert same.new == [] and same.unchanged == ["HERO-1"] and list(same.accepted["sku_id"]) == ["HERO-1"]
    edited = ingest(folder, HEADER + "Hero-1,Big mug,kitchen,acme,a.png,hero,,\n", storage, "mixed.csv")
    assert edited.changed == ["HERO-1"]
    rows = pd.read_parquet(io.BytesIO(storage.read_bytes(CATALOG_KEY)))
    assert list(rows["sku_id"]) == ["HERO-1"] and list(rows["title"]) == ["Big mug"]
    assert first.accepted["content_hash"].iloc[0] != edited.accepted["content_hash"].iloc[0]


def test_threads_never_hold_more_decoded_pixels_than_the_budget():
    budget = PixelBudget(100)
    held, peak, lock = [0], [0], threading.Lock()

    def decode(pixels: int) -> None:
        with budget.holding(pixels):
            with lock:
                held[0] += min(pixels, 100)
                peak[0] = max(peak[0], held[0])
            time.sleep(0.01)
            with lock:
                held[0] -= min(pixels, 100)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(decode, [60, 30, 500, 60, 10, 40, 60, 30] * 3))  # 500: over the budget, runs alone
    assert peak[0] <= 100 and budget.used == 0


def test_intake_under_a_tight_decode_budget_still_checks_every_image(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(images, "DECODING", PixelBudget(320 * 240))  # one packshot at a time
    for index in range(6):
        changed = packshot()
        changed.putpixel((0, 0), (index, 0, 0))
        (folder / f"p{index}.png").write_bytes(encoded(changed, "PNG"))
    rows = "".join(f"S-{i},Mug,kitchen,acme,p{i}.png,bulk,,\n" for i in range(6))
    report = ingest(folder, HEADER + rows, StorageResource(root=str(tmp_path / "d")))
    assert report.validated.rejects == [] and len(set(report.accepted["content_hash"])) == 6
