import io
import json
import time
from functools import partial

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from assets.catalog import rows as catalog_rows
from assets.catalog.packshot_intake import intake_packshots
from assets.catalog.rows import (
    MAX_CATALOG_BYTES,
    CatalogFileError,
    check_image,
    content_hash,
    read_table,
    validate_catalog,
)
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


def test_a_huge_csv_field_is_refused_fast_with_a_short_reason():
    data = (HEADER + "A-1," + "x" * 20_000_000 + ",kitchen,acme,good.png,hero,,\n").encode()
    started = time.monotonic()
    with pytest.raises(CatalogFileError) as raised:
        read_table(data, "big.csv")
    assert time.monotonic() - started < 2.0
    assert str(raised.value) == "big.csv line 2: field larger than field limit (131072)"


def test_a_file_over_the_size_limit_is_refused_before_parsing():
    data = b"x" * (MAX_CATALOG_BYTES + 1)
    with pytest.raises(CatalogFileError, match=r"c.csv: file is 33,554,433 bytes, over the limit of 33,554,432"):
        read_table(data, "c.csv")


def test_rows_beyond_the_limit_refuse_the_file(monkeypatch):
    monkeypatch.setattr(catalog_rows, "MAX_ROWS", 3)
    row = "A-{},Mug,kitchen,acme,good.png,hero,,\n"
    assert len(read_table((HEADER + "".join(row.format(i) for i in range(3))).encode(), "c.csv")) == 3
    for name, data in [
        ("c.csv", (HEADER + "".join(row.format(i) for i in range(4))).encode()),
        ("c.jsonl", b"\n".join(json.dumps({"sku_id": f"A-{i}"}).encode() for i in range(4))),
        ("c.parquet", pd.DataFrame({"sku_id": [f"A-{i}" for i in range(4)]}).to_parquet(index=False)),
    ]:
        with pytest.raises(CatalogFileError, match=f"{name}: more than 3 rows; split the file"):
            read_table(data, name)


def test_parquet_that_decodes_past_the_limit_is_refused_from_its_metadata(monkeypatch):
    monkeypatch.setattr(catalog_rows, "MAX_DECODED_BYTES", 1_000_000)
    frame = pd.DataFrame({c: ["y" * 100_000] * 20 for c in ["sku_id", "title", "category", "brand", "image", "tier"]})
    data = frame.to_parquet(index=False)  # compresses to a few KB
    assert len(data) < 100_000
    with pytest.raises(CatalogFileError, match=r"c.parquet: columns decode to [\d,]+ bytes, over the limit of 1,000,000"):
        read_table(data, "c.parquet")


def test_an_overlong_field_rejects_its_row_and_the_reason_stays_short(packshots):
    title = "T" * 100_000
    bad_id = "Z" * 3_000
    validated = run(HEADER + f"A-1,{title},kitchen,acme,good.png,hero,,\n{bad_id},Mug,kitchen,acme,good.png,hero,,\n"
                    "B-2,Can,drinks,zen,other.png,bulk,,\n", packshots)
    assert list(validated.accepted["sku_id"]) == ["B-2"]
    by_row = {r.row: r for r in validated.rejects}
    assert (by_row[1].field, by_row[1].reason) == ("title", "is 100,000 characters, over the limit of 4,096")
    assert by_row[2].field == "sku_id" and "(3,000 characters) must match" in by_row[2].reason
    assert all(len(r.reason) < 200 and len(r.sku_id) < 200 for r in validated.rejects)


@pytest.mark.parametrize("data,reason", [
    (b"sku_id,title\n\xff\xfe\n", "c.csv: not UTF-8 text"),
    (HEADER.encode() + b"A,B,C,D,E,F,G,H,I\n", "c.csv line 2: 9 fields, the header has 8"),
    (b"sku_id,sku_id,title,category,brand,image,tier\n", "c.csv: column sku_id appears more than once"),
    (b"", "c.csv: empty file"),
])
def test_malformed_csv_is_refused_naming_the_file_and_line(data, reason):
    with pytest.raises(CatalogFileError, match=reason):
        read_table(data, "c.csv")


def test_jsonl_lines_that_are_not_objects_are_named():
    with pytest.raises(CatalogFileError, match="c.jsonl line 2: expected a JSON object, got list"):
        read_table(b'{"sku_id": "A"}\n[1, 2]\n', "c.jsonl")
    with pytest.raises(CatalogFileError, match="c.jsonl line 1: not JSON"):
        read_table(b"{nope\n", "c.jsonl")


def test_a_parquet_dictionary_bomb_is_refused_without_expanding_it():
    one_megabyte = pa.array(["y" * 1_000_000])
    column = pa.DictionaryArray.from_arrays(pa.array([0] * 100_000, pa.int32()), one_megabyte)
    buffer = io.BytesIO()
    pq.write_table(pa.table({c: column for c in ["sku_id", "title", "category", "brand", "image", "tier"]}), buffer)
    assert len(buffer.getvalue()) < 1_000_000  # 600 GB once every row holds its value
    started = time.monotonic()
    with pytest.raises(CatalogFileError, match="c.parquet: columns decode to 600,000,000,000 bytes, over the limit"):
        read_table(buffer.getvalue(), "c.parquet")
    assert time.monotonic() - started < 2.0
