"""Fetch, check and copy packshots in bulk: each image is read once, checked, and copied into storage.

Reads go through the source policy (resources/sources.py), whose memory budget bounds what the threads hold.
Threads are enough even for a 10,000-image drop: object_store does the network I/O outside the GIL, leaving
about 0.5 ms of Python per image (the PNG check and the two requests).
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from assets.catalog.rows import ImageUnavailable, check_image, source_key
from resources import storage_keys
from resources.sources import SourceError, SourceRefused, held_source
from resources.storage import StorageResource

THREADS = 16


@dataclass(frozen=True)
class Packshot:
    sha256: str
    format: str
    width: int
    height: int

    @property
    def key(self) -> str:
        return source_key(self.sha256, self.format)


def intake_packshots(uris: list[str], *, base: str, storage: StorageResource,
                     max_pixels: int) -> dict[str, Packshot | ImageUnavailable | str]:
    """Packshot, ImageUnavailable (it could not be read: it may land later) or the reason it was rejected, for
    each distinct URI; good images end up under `sources/`."""
    existing = frozenset(storage.list_keys(storage_keys.SOURCES_PREFIX))

    def intake_one(uri: str) -> tuple[str, Packshot | ImageUnavailable | str]:
        # The bytes stay counted against the source policy's memory budget until they are checked and stored,
        # so the threads never hold more than the budget between them, whatever the images weigh.
        try:
            with held_source(uri, base=base) as data:
                return uri, check_and_store(uri, data)
        except SourceRefused as error:  # missing and refused read alike to the submitter (no existence oracle)
            return uri, ImageUnavailable(str(error))
        except SourceError as error:  # too large or too slow: waiting would not change it
            return uri, str(error)

    def check_and_store(uri: str, data: bytes) -> Packshot | str:
        try:
            image = check_image(data, max_pixels=max_pixels)
        except Exception as error:  # a bad image rejects its rows only
            return f"{uri}: {error}"
        packshot = Packshot(image.sha256, image.format, image.width, image.height)
        if packshot.key not in existing:
            storage.write_bytes(packshot.key, image.data)
        return packshot

    with ThreadPoolExecutor(THREADS) as pool:
        return dict(pool.map(intake_one, dict.fromkeys(uris)))
