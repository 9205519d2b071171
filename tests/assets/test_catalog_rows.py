import io
from functools import partial

import pandas as pd
import pytest
from PIL import Image

from assets.catalog_rows import CatalogFileError, check_image, content_hash, read_table, validate_catalog
from assets.packshot_intake import intake_packshots
from resources.storage import StorageResource

BRANDS = {"acme": "fp-acme", "zen": "fp-zen"}
HEADER = "sku_id,title,category,brand,image,tier,prompt,aspect\n"


def png(width=200, height=200, color=(200, 30, 30), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, fmt)
    return buffer.getvalue()


IMAGES = {
    "good.png": png(),
    "other.png": png(color=(10, 200, 10)),
    "huge.png": png(4000, 3000),
    "tiny.png": png(20, 20),
    "text.png": b"this is not an image",
    "trunc.png": png()[:300],
    "pic.gif": (lambda: (b := io.BytesIO(), Image.new("RGB", (100, 100)).save(b, "GIF"), b.getvalue())[2])(),
}


@pytest.fixture(autouse=True)
def packshots(tmp_path):
    for name, data in IMAGES.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def run(csv_text: str, base, max_pixels=10_000_000):
    table = read_table(csv_text.encode(), "catalog.csv")
    storage = StorageResource(root=str(base / "data"))
    intake = partial(intake_packshots, base=str(base), storage=storage, max_pixels=max_pixels)
    return validate_catalog(table, source="catalog.csv", brand_fingerprints=BRANDS, check_images=intake)


def test_good_rows_pass_with_hash_and_defaults(packshots):
    validated = run(HEADER + "A-1,Mug,kitchen,acme,good.png,hero,,\nB_2,Can,drinks,zen,other.png,bulk,fizz,9:16\n",
                    packshots)
    assert validated.rejects == []
    rows = validated.accepted.set_index("sku_id")
    assert rows.loc["A-1", "aspect"] == "16:9"
    assert rows.loc["B_2", "aspect"] == "9:16"
    assert len(set(rows["content_hash"])) == 2
    stored = StorageResource(root=str(packshots / "data"))
    assert all(stored.read_bytes(key) in IMAGES.values() for key in rows["image_key"])


BAD_ROWS = [
    (",Mug,kitchen,acme,good.png,hero,,", "sku_id", "missing"),
    ("bad id!,Mug,kitchen,acme,good.png,hero,,", "sku_id", "must match"),
    ("a/../b,Mug,kitchen,acme,good.png,hero,,", "sku_id", "must match"),
    ("X" * 65 + ",Mug,kitchen,acme,good.png,hero,,", "sku_id", "must match"),
    ("C-1,,kitchen,acme,good.png,hero,,", "title", "missing"),
    ("C-1,Mug,kitchen,nobrand,good.png,hero,,", "brand", "no brand kit named 'nobrand'"),
    ("C-1,Mug,kitchen,acme,good.png,premium,,", "tier", "'premium' is not one of hero, bulk"),
    ("C-1,Mug,kitchen,acme,good.png,hero,,4:3", "aspect", "'4:3' is not one of"),
    ("C-1,Mug,kitchen,acme,,hero,,", "image", "missing"),
    ("C-1,Mug,kitchen,acme,absent.png,hero,,", "image", "not allowed by the source policy: absent.png"),
    ("C-1,Mug,kitchen,acme,text.png,hero,,", "image", "not a readable image"),
    ("C-1,Mug,kitchen,acme,trunc.png,hero,,", "image", "truncated or corrupt"),
    ("C-1,Mug,kitchen,acme,huge.png,hero,,", "image", "over the limit"),
    ("C-1,Mug,kitchen,acme,tiny.png,hero,,", "image", "smaller than 64 px"),
    ("C-1,Mug,kitchen,acme,pic.gif,hero,,", "image", "format GIF is not one of"),
]


@pytest.mark.parametrize("bad_row,field,reason", BAD_ROWS)
def test_bad_row_rejected_with_row_field_reason_and_others_go_on(bad_row, field, reason, packshots):
    csv_text = HEADER + "A-1,Mug,kitchen,acme,good.png,hero,,\n" + bad_row + "\nB-2,Can,drinks,zen,other.png,bulk,,\n"
    validated = run(csv_text, packshots)
    assert list(validated.accepted["sku_id"]) == ["A-1", "B-2"]
    assert len(validated.rejects) == 1
    reject = validated.rejects[0]
    assert (reject.row, reject.field) == (2, field)
    assert reason in reject.reason


def test_duplicate_id_keeps_first_and_names_it(packshots):
    validated = run(HEADER + "A-1,Mug,kitchen,acme,good.png,hero,,\nA-1,Mug 2,kitchen,acme,other.png,hero,,\n", packshots)
    assert list(validated.accepted["title"]) == ["Mug"]
    assert validated.rejects[0].reason == "duplicate of row 1"


def test_several_problems_in_one_row_are_all_reported(packshots):
    validated = run(HEADER + "A-1,,kitchen,acme,good.png,gold,,2:1\n", packshots)
    assert [r.field for r in validated.rejects] == ["aspect", "tier", "title"]
    assert validated.accepted.empty


def test_content_hash_changes_with_fields_image_and_brand():
    row = {"sku_id": "A", "title": "t", "category": "c", "brand": "b", "tier": "bulk", "prompt": "", "aspect": "16:9"}
    base = content_hash(row, "img1", "brand1")
    assert base == content_hash(dict(row), "img1", "brand1")
    assert base != content_hash({**row, "prompt": "sunset"}, "img1", "brand1")
    assert base != content_hash(row, "img2", "brand1")
    assert base != content_hash(row, "img1", "brand2")


@pytest.mark.parametrize("name,writer", [
    ("c.parquet", lambda f, b: f.to_parquet(b, index=False)),
    ("c.jsonl", lambda f, b: b.write(f.to_json(orient="records", lines=True).encode())),
])
def test_parquet_and_jsonl_read_like_csv(name, writer, packshots):
    frame = pd.DataFrame([{"sku_id": "A-1", "title": "Mug", "category": "kitchen", "brand": "acme",
                           "image": "good.png", "tier": "hero"}])
    buffer = io.BytesIO()
    writer(frame, buffer)
    table = read_table(buffer.getvalue(), name)
    assert table.loc[0, "aspect"] == "16:9" and table.loc[0, "prompt"] == ""
    intake = partial(intake_packshots, base=str(packshots), storage=StorageResource(root=str(packshots / "d")),
                     max_pixels=10_000_000)
    validated = validate_catalog(table, source=name, brand_fingerprints=BRANDS, check_images=intake)
    assert list(validated.accepted["sku_id"]) == ["A-1"]


def test_whole_file_errors_name_the_file():
    with pytest.raises(CatalogFileError, match="drop.xlsx: unknown catalog format"):
        read_table(b"x", "drop.xlsx")
    with pytest.raises(CatalogFileError, match="c.csv: missing required column"):
        read_table(b"sku_id,title\nA,B\n", "c.csv")
    with pytest.raises(CatalogFileError, match="c.parquet: cannot be read as parquet"):
        read_table(b"not parquet", "c.parquet")


def test_check_image_describes_a_good_image():
    checked = check_image(png(300, 100), max_pixels=1_000_000)
    assert (checked.width, checked.height, checked.format) == (300, 100, "PNG")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_images_are_caught_in_every_format(fmt):
    noisy = Image.effect_noise((400, 300), 60).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, fmt)
    data = buffer.getvalue()
    assert check_image(data, max_pixels=1_000_000).format == fmt
    with pytest.raises(ValueError, match="truncated or corrupt|not a readable image"):
        check_image(data[: len(data) // 2], max_pixels=1_000_000)
