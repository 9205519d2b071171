"""A small catalog on disk (packshots drawn in code) shared by the pipeline tests."""

from pathlib import Path

from devkit.sample_art import draw_packshot

BRANDS_YAML = (
    "brands:\n"
    "  fresh:\n    background: {style: studio, colors: ['#F1ECE4', '#D6CBBB']}\n"
    "  night:\n    background: {style: gradient, colors: ['#2B3440', '#12161C']}\n"
)
HEADER = "sku_id,title,category,brand,image,tier,prompt,aspect\n"
ROWS = {
    "HERO-1": "HERO-1,Fizz bottle,beverage,fresh,packshots/hero.png,hero,,16:9",
    "BULK-2": "BULK-2,Red mug,kitchen,night,packshots/bulk.png,bulk,,1:1",
}


def write_packshots(folder: Path) -> dict[str, Path]:
    (folder / "packshots").mkdir(parents=True, exist_ok=True)
    paths = {"hero.png": folder / "packshots" / "hero.png", "bulk.png": folder / "packshots" / "bulk.png"}
    draw_packshot("bottle", color=(40, 110, 70), accent=(230, 200, 90), label="FIZZ", size=600).save(paths["hero.png"])
    draw_packshot("mug", color=(200, 70, 60), accent=(250, 240, 230), size=500, transparent=True).save(paths["bulk.png"])
    return paths


def catalog_csv(*rows: str) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


def write_catalog(folder: Path, *rows: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_packshots(folder)
    (folder / "brands.yaml").write_text(BRANDS_YAML)
    path = folder / "catalog.csv"
    path.write_text(catalog_csv(*rows))
    return path
