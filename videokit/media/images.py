"""The one way images from outside are opened: bounded, fully decoded, and turned upright.

Packshots, brand-kit and campaign logos and training images all come from people and systems outside
skuvid, so every one of them goes through `open_image`: a format allow-list, a decoded-pixel limit
checked from the header before any pixel is inflated (a decompression bomb is refused by its size, not
as "unreadable"), a full decode (truncation shows), and the EXIF orientation applied, so a phone's
portrait JPEG tagged "rotate 90" is rendered, checked and hashed the way people see it.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageOps, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError, WebPImagePlugin

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
DEFAULT_MAX_PIXELS = 40_000_000
# Bump when the canonical pixel form below changes: every content hash built on it changes with it.
PIXEL_HASH_VERSION = "pixels-v1"
HASH_STRIP_ROWS = 256
# Decoded pixels all threads may hold at once (about 4 bytes each): the memory bound of parallel intake.
DECODE_BUDGET_PIXELS = 80_000_000

# Opening the format's own image class reads only the header and, unlike Image.open, does not apply
# Pillow's process-wide bomb limit first, so our own limit, with its own reason, decides.
_OPENERS = {
    "PNG": PngImagePlugin.PngImageFile,
    "JPEG": JpegImagePlugin.JpegImageFile,
    "WEBP": WebPImagePlugin.WebPImageFile,
}


class ImageRejected(ValueError):
    """The bytes are not an image skuvid will use; the message says why."""


def sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _other_format(data: bytes) -> str | None:
    """Name of a format outside the allow-list, for the reason only; nothing of the image is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify is simply unreadable
        return None


class PixelBudget:
    """Decoded pixels held at once by threads that open images; a thread waits until its image fits.

    Intake decodes on many threads, and bytes say little about pixels (a flat 40 MP PNG is a few hundred KB),
    so the source policy's byte budget alone would let 16 threads hold 16 x 160 MB of decoded RGBA.
    """

    def __init__(self, total: int):
        self.total, self.used = total, 0
        self.changed = threading.Condition()

    @contextmanager
    def holding(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.total)  # one image over the budget still runs, alone
        with self.changed:
            self.changed.wait_for(lambda: self.used + pixels <= self.total)
            self.used += pixels
        try:
            yield
        finally:
            with self.changed:
                self.used -= pixels
                self.changed.notify_all()


DECODING = PixelBudget(DECODE_BUDGET_PIXELS)


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, formats: tuple[str, ...] = ALLOWED_FORMATS) -> Image.Image:
    """The decoded, upright image in `data`; raises ImageRejected saying what is wrong with it."""
    with DECODING.holding(header_pixels(data)):
        return _open_image(data, max_pixels=max_pixels, formats=formats)


def digest_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 formats: tuple[str, ...] = ALLOWED_FORMATS) -> tuple[str, str, tuple[int, int]]:
    """(format, upright size, pixel digest) of an image, its decoded pixels held within the decode budget."""
    with DECODING.holding(header_pixels(data)):
        image = _open_image(data, max_pixels=max_pixels, formats=formats)
        return image.format, image.size, pixel_digest(image)


def header_pixels(data: bytes) -> int:
    """Pixels the image will decode to, from its header (0 when the header is unreadable: nothing is decoded)."""
    image_format = sniff_format(data)
    if image_format is None:
        return 0
    try:
        width, height = _OPENERS[image_format](io.BytesIO(data)).size
    except Exception:  # noqa: BLE001 - the real open says what is wrong
        return 0
    return width * height


def _open_image(data: bytes, *, max_pixels: int, formats: tuple[str, ...]) -> Image.Image:
    if not data:
        raise ImageRejected("image is empty (0 bytes)")
    image_format = sniff_format(data)
    if image_format not in formats:
        named = image_format or _other_format(data)
        if named is None:
            raise ImageRejected("file is not a readable image")
        raise ImageRejected(f"image format {named} is not one of {', '.join(formats)}")
    try:
        image = _OPENERS[image_format](io.BytesIO(data))
    except (SyntaxError, UnidentifiedImageError, ValueError, EOFError):
        raise ImageRejected("file is not a readable image") from None
    except OSError as error:
        raise ImageRejected(f"image is truncated or corrupt ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}")
    try:
        image.load()
    except OSError as error:
        raise ImageRejected(f"image is truncated or corrupt ({error})") from None
    except Exception as error:  # noqa: BLE001 - Pillow's decoders raise many unrelated types for corrupt data
        raise ImageRejected(f"image is truncated or corrupt ({type(error).__name__}: {error})") from None
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as error:  # noqa: BLE001 - EXIF is parsed leniently; a failure means the metadata is corrupt
        raise ImageRejected(f"image has corrupt EXIF metadata ({type(error).__name__})") from None
    return image


def has_alpha(image: Image.Image) -> bool:
    """Whether the image carries transparency (the cut-out keeps a real alpha channel, see compose.py)."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def canonical_mode(image: Image.Image) -> str:
    return "RGBA" if has_alpha(image) else "RGB"


def pixel_digest(image: Image.Image) -> str:
    """sha256 of what the renderer sees: canonical mode, size and pixel bytes of the upright image.

    Container bytes (PNG text chunks, zlib level, JPEG vs lossless PNG of the same pixels, a palette's
    order) do not enter it. Hashed a strip at a time so a large image is never copied whole.
    """
    mode = canonical_mode(image)
    width, height = image.size
    digest = hashlib.sha256(f"{PIXEL_HASH_VERSION} {mode} {width}x{height}\n".encode())
    for top in range(0, height, HASH_STRIP_ROWS):
        strip = image.crop((0, top, width, min(height, top + HASH_STRIP_ROWS)))
        digest.update(strip.convert(mode).tobytes())
    return digest.hexdigest()
