"""What identifying packshots by their pixels costs, against the byte hash it replaced, per image and per drop.

    python bench/pixel_identity.py [--images 40] [--side 2000] [--drop 10000]

The byte hash read an image as cheaply as its format allowed (PNG: chunk CRCs only; JPEG: a 1/8 DCT-domain
decode) and hashed the file. The pixel digest decodes the whole image, turns it upright and hashes its pixels.
Both are measured here, in the same run, on packshot-like images (a textured product on white) in JPEG and PNG,
in CPU seconds of this process; the drop figure is images x CPU seconds per image (the intake's threads
spread it over the cores, since Pillow and hashlib release the GIL).
"""

import argparse
import hashlib
import io
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
from PIL import Image

from assets.catalog.rows import check_image
from bench.machine import machine_info


def packshot(side: int, seed: int) -> Image.Image:
    image = Image.new("RGB", (side, side), "white")
    product = np.random.default_rng(seed).normal(128, 30, (side * 2 // 3, side // 2, 3)).clip(0, 255).astype(np.uint8)
    image.paste(Image.fromarray(product), (side // 4, side // 6))
    return image


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def byte_hash_check(data: bytes) -> str:
    """The check and hash before this change, for the baseline."""
    image = Image.open(io.BytesIO(data))
    if image.format == "PNG":
        image.verify()
    else:
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    return hashlib.sha256(data).hexdigest()


def cpu_s_per_image(check, images: list[bytes]) -> float:
    started = time.process_time()
    for data in images:
        check(data)
    return (time.process_time() - started) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--side", type=int, default=2000)
    parser.add_argument("--drop", type=int, default=10_000)
    parser.add_argument("--out", default=str(REPO / "bench/results/pixel_identity.json"))
    args = parser.parse_args()
    print(machine_info())
    rows = []
    print(f"{'format':<6} {'KB':>6} {'bytes ms':>9} {'pixels ms':>10} {'ratio':>6} {'drop CPU-min bytes':>19} {'pixels':>7}")
    for fmt in ("JPEG", "PNG"):
        images = [encoded(packshot(args.side, seed), fmt) for seed in range(args.images)]
        before = cpu_s_per_image(byte_hash_check, images)
        after = cpu_s_per_image(lambda data: check_image(data, max_pixels=40_000_000), images)
        size_kb = sum(map(len, images)) / len(images) / 1024
        print(f"{fmt:<6} {size_kb:>6.0f} {before * 1000:>9.1f} {after * 1000:>10.1f} {after / before:>6.1f} "
              f"{before * args.drop / 60:>19.1f} {after * args.drop / 60:>7.1f}")
        rows.append({"format": fmt, "side": args.side, "mean_kb": round(size_kb), "byte_hash_cpu_ms": round(before * 1000, 1),
                     "pixel_digest_cpu_ms": round(after * 1000, 1), "drop_images": args.drop,
                     "drop_cpu_min_byte_hash": round(before * args.drop / 60, 1),
                     "drop_cpu_min_pixel_digest": round(after * args.drop / 60, 1)})
    results = {"measured_at": datetime.now(UTC).isoformat(), "machine": machine_info(), "images": args.images, "rows": rows}
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
