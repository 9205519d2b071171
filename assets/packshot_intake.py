"""Fetch, check and copy packshots in bulk: each image is read once, checked, and copied into storage.

Small catalogs use threads. A big drop (thousands of SKUs) is split over worker processes: each S3 request
costs about 2 ms of Python, which one interpreter cannot spread over several cores.
"""

import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from multiprocessing import get_context

from assets.catalog_rows import check_image, source_key
from resources.storage import StorageResource, read_uri, resolve_relative

PROCESS_THRESHOLD = 2000
THREADS_PER_WORKER = 16


@dataclass(frozen=True)
class Packshot:
    sha256: str
    format: str
    width: int
    height: int

    @property
    def key(self) -> str:
        return source_key(self.sha256, self.format)


def intake_packshots(uris: list[str], *, base: str, storage: StorageResource, max_pixels: int) -> dict[str, Packshot | str]:
    """Packshot (or the reason it was rejected) for each distinct URI; good images end up under `sources/`."""
    unique = list(dict.fromkeys(uris))
    existing = frozenset(storage.list_keys("sources/"))
    workers = os.cpu_count() or 1
    if len(unique) < PROCESS_THRESHOLD or workers == 1:
        return intake_chunk(unique, base, storage.root, max_pixels, existing)
    chunks = [unique[i :: workers * 4] for i in range(workers * 4)]
    results: dict[str, Packshot | str] = {}
    # spawn, not fork: the caller may be a threaded server process (a sensor in a code server).
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for part in pool.map(intake_chunk, chunks, repeat(base), repeat(storage.root), repeat(max_pixels),
                             repeat(existing)):
            results.update(part)
    return results


def intake_chunk(
    uris: list[str], base: str, storage_root: str, max_pixels: int, existing: frozenset[str]
) -> dict[str, Packshot | str]:
    storage = StorageResource(root=storage_root)

    def intake_one(uri: str) -> tuple[str, Packshot | str]:
        try:
            image = check_image(read_uri(resolve_relative(uri, base)), max_pixels=max_pixels)
        except Exception as error:  # a missing, unreachable or bad image rejects its rows only
            return uri, f"{uri}: {error}"
        packshot = Packshot(image.sha256, image.format, image.width, image.height)
        if packshot.key not in existing:
            storage.write_bytes(packshot.key, image.data)
        return uri, packshot

    with ThreadPoolExecutor(THREADS_PER_WORKER) as pool:
        return dict(pool.map(intake_one, uris))
