"""Turn untrusted bytes into an RGB picture, or refuse them with a clear reason.

Everything a phone or a careless upload can send ends here: wrong formats, truncated files,
16-bit or CMYK images, animations, rotated photos, and files built to exhaust memory.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import ImageRejected
from model.types import Reason

try:  # HEIC/HEIF (iPhone photos) when the optional decoder is installed.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF_SUPPORTED = False

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # Telegram's bot download limit.
DEFAULT_MAX_PIXELS = 40_000_000  # a 48 MP phone photo is ~48M; beyond this we refuse early.
DEFAULT_MIN_SIDE = 64  # a lesion cannot be judged from fewer pixels than this.
DRAFT_SIDE = 1024  # JPEGs are decoded at the smallest DCT scale still at least this big.

# Formats we accept once Pillow has identified them. Others (PDF, EPS, ICO...) are refused.
ACCEPTED_FORMATS = frozenset(
    {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF", "AVIF", "PPM"}
)

_TEXT_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b"{", b"[")


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE


def _sniff_non_image(data: bytes) -> ImageRejected | None:
    head = data[:64].lstrip().lower()
    if head.startswith(b"%pdf"):
        return ImageRejected(Reason.NOT_AN_IMAGE, "this is a PDF document, not a photo")
    if head.startswith(_TEXT_PREFIXES):
        return ImageRejected(Reason.NOT_AN_IMAGE, "this is a text or web document, not a photo")
    return None


def _looks_like_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in {b"heic", b"heix", b"mif1", b"msf1", b"heim", b"avif"}


def decode_image(data: bytes, limits: DecodeLimits | None = None) -> Image.Image:
    """Decode image bytes into an upright 8-bit RGB image, or raise ImageRejected."""
    limits = limits or DecodeLimits()
    if not data:
        raise ImageRejected(Reason.EMPTY, "the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            Reason.TOO_LARGE_FILE,
            f"the file is {len(data) / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.0f} MB",
        )
    if (rejection := _sniff_non_image(data)) is not None:
        raise rejection
    try:
        with warnings.catch_warnings():
            # Pillow warns, then errors, on bombs; we turn both into one refusal below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image_format = image.format or ""
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageRejected(
                    Reason.DECOMPRESSION_BOMB,
                    f"the image claims {width}x{height} pixels, more than a photo needs",
                )
            if image_format not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    Reason.UNSUPPORTED_FORMAT, f"{image_format or 'this'} files are not supported"
                )
            image.seek(0)  # first frame of an animation
            if image_format in ("JPEG", "MPO"):
                # Decode big phone photos at a reduced DCT scale: nothing downstream uses more
                # than ~1000 px, and a 16 MP decode costs 200+ ms.
                image.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))
            image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(Reason.DECOMPRESSION_BOMB, "the image is too large to open") from exc
    except UnidentifiedImageError as exc:
        if _looks_like_heif(data):
            raise ImageRejected(
                Reason.UNSUPPORTED_FORMAT, "HEIC/HEIF photos cannot be read here; send a JPEG"
            ) from exc
        raise ImageRejected(Reason.NOT_AN_IMAGE, "the file is not an image") from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageRejected(Reason.CORRUPT, "the image is damaged or incomplete") from exc

    return _to_upright_rgb(image, limits)


def _to_upright_rgb(image: Image.Image, limits: DecodeLimits) -> Image.Image:
    # A broken EXIF block must not lose an otherwise good photo.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    image = to_rgb(image)
    if min(image.size) < limits.min_side:
        raise ImageRejected(
            Reason.TOO_SMALL,
            f"the image is only {image.size[0]}x{image.size[1]} pixels; "
            f"at least {limits.min_side} px on each side is needed",
        )
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit grey: scale to 8 bits by the real range instead of clipping to white.
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        grey = ((values - low) * scale).clip(0, 255).astype("uint8")
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
