"""Fixtures shared by the pipeline tests: a small catalog on disk and the project's resources on temp storage."""

import pytest

from devkit.sample_art import draw_packshot
from pipelines.resources import build_resources
from resources.storage import StorageResource


@pytest.fixture
def catalog_dir(tmp_path):
    folder = tmp_path / "catalog"
    (folder / "packshots").mkdir(parents=True)
    draw_packshot("bottle", color=(40, 110, 70), accent=(230, 200, 90), label="FIZZ", size=600).save(
        folder / "packshots" / "hero.png")
    draw_packshot("mug", color=(200, 70, 60), accent=(250, 240, 230), size=500, transparent=True).save(
        folder / "packshots" / "bulk.png")
    (folder / "brands.yaml").write_text(
        "brands:\n"
        "  fresh:\n    background: {style: studio, colors: ['#F1ECE4', '#D6CBBB']}\n"
        "  night:\n    background: {style: gradient, colors: ['#2B3440', '#12161C']}\n"
    )
    (folder / "catalog.csv").write_text(
        "sku_id,title,category,brand,image,tier,prompt,aspect\n"
        "HERO-1,Fizz bottle,beverage,fresh,packshots/hero.png,hero,,16:9\n"
        "bad id,Broken,beverage,fresh,packshots/hero.png,bulk,,16:9\n"
        "BULK-2,Red mug,kitchen,night,packshots/bulk.png,bulk,,1:1\n"
    )
    return folder


@pytest.fixture
def resources(tmp_path):
    return {**build_resources(), "storage": StorageResource(root=str(tmp_path / "data"))}
