"""Turn untrusted bytes into an RGB picture, or refuse them with a clear reason.

Everything a phone or a careless upload can send ends here: wrong formats, truncated files,
16-bit or CMYK images, rotated photos, and files built to exhaust memory or time. Only the
formats the service promises are parsed at all (JPEG, PNG, WebP, HEIC/HEIF): Pillow's other
decoders never see these bytes. The decoded size is bounded before any pixel is decoded.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from model.errors import ImageRejected
from model.types import Reason

register_heif_opener()  # HEIC/HEIF: iPhone photos sent as files

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # Telegram's bot download limit.
# Pixel caps per format, each keeping one decode within ~200 MB above a worker's resting memory
# (python -m benchmarks.memory measures it): JPEGs decode at a reduced DCT scale (below), so even
# 48 MP costs ~25 MB; PNG and HEIF decode every pixel (25 MP: ~105 MB); Pillow's WebP decoder
# needs ~15 bytes a pixel (12 MP: ~190 MB).
DEFAULT_MAX_JPEG_PIXELS = 50_000_000
DEFAULT_MAX_PIXELS = 25_000_000
DEFAULT_MAX_WEBP_PIXELS = 12_500_000
DEFAULT_MIN_SIDE = 64  # a lesion cannot be judged from fewer pixels than this.
DRAFT_SIDE = 1024  # JPEGs are decoded at the smallest DCT scale still at least this big.
REVIEW_SIDE = 1280  # clinicians see the photo at most this big (and without its metadata)

# The formats the service promises; `Image.open` tries no other decoder. (A phone JPEG holding
# more than one picture opens as MPO through the JPEG decoder; the first picture is the photo.)
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# Recognised so the refusal can name them, never decoded.
_OTHER_IMAGE_SIGNATURES = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x01\x00": "ICO",
    b"8BPS": "PSD",
}
_TEXT_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b"{", b"[")


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_jpeg_pixels: int = DEFAULT_MAX_JPEG_PIXELS
    max_webp_pixels: int = DEFAULT_MAX_WEBP_PIXELS
    min_side: int = DEFAULT_MIN_SIDE


def _sniff_non_image(data: bytes) -> ImageRejected | None:
    head = data[:64].lstrip().lower()
    if head.startswith(b"%pdf"):
        return ImageRejected(Reason.NOT_AN_IMAGE, "this is a PDF document, not a photo")
    if head.startswith(_TEXT_PREFIXES):
        return ImageRejected(Reason.NOT_AN_IMAGE, "this is a text or web document, not a photo")
    return None


def _unsupported_format(data: bytes) -> str | None:
    """The name of an image format we do not decode, if the bytes start like one."""
    for signature, name in _OTHER_IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return name
    if data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "PNM"
    if data[4:8] == b"ftyp" and data[8:12] in {b"avif", b"avis"}:
        return "AVIF"
    return None


def _looks_like_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in {b"heic", b"heix", b"mif1", b"msf1", b"heim"}


def _pixel_limit(image_format: str, limits: DecodeLimits) -> int:
    if image_format in ("JPEG", "MPO"):
        return limits.max_jpeg_pixels
    return limits.max_webp_pixels if image_format == "WEBP" else limits.max_pixels


def decode_image(data: bytes, limits: DecodeLimits | None = None) -> Image.Image:
    """Decode image bytes into an upright 8-bit RGB image, or raise ImageRejected."""
    limits = limits or DecodeLimits()
    if not data:
        raise ImageRejected(Reason.EMPTY, "the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            Reason.TOO_LARGE_FILE,
            f"the file is {len(data) / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:g} MB",
        )
    if (rejection := _sniff_non_image(data)) is not None:
        raise rejection
    try:
        with warnings.catch_warnings():
            # Pillow warns, then errors, on bombs; we turn both into one refusal below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            image_format = image.format or ""
            width, height = image.size
            if width * height > _pixel_limit(image_format, limits):
                raise ImageRejected(
                    Reason.DECOMPRESSION_BOMB,
                    f"the image claims {width}x{height} pixels, more than a photo needs",
                )
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
        if (other := _unsupported_format(data)) is not None:
            raise ImageRejected(
                Reason.UNSUPPORTED_FORMAT, f"{other} files are not supported; send a photo (JPEG, PNG, WebP or HEIC)"
            ) from exc
        if _looks_like_heif(data):
            raise ImageRejected(Reason.CORRUPT, "the HEIC/HEIF photo is damaged or incomplete") from exc
        raise ImageRejected(Reason.NOT_AN_IMAGE, "the file is not an image") from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageRejected(Reason.CORRUPT, "the image is damaged or incomplete") from exc

    return _to_upright_rgb(image, limits)


def _shrink(image: Image.Image) -> Image.Image:
    """A big picture reduced at once by an integer factor, its short side kept at DRAFT_SIDE or
    more (as a JPEG's draft does while decoding): later steps then copy a small image, not 25 MP."""
    factor = min(image.size) // DRAFT_SIDE
    if factor < 2:
        return image
    # reduce() takes 8-bit and float modes; palette and 16-bit pictures are converted first.
    source = image if image.mode in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F") else to_rgb(image)
    small = source.reduce(factor)
    small.info = dict(image.info)  # keeps the EXIF orientation for exif_transpose
    return small


def _to_upright_rgb(image: Image.Image, limits: DecodeLimits) -> Image.Image:
    image = _shrink(image)
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
        # 16/32-bit grey: scale to 8 bits by the real range instead of clipping to white, in
        # float32 (4 bytes a pixel: a 25 MP picture stays near 100 MB).
        import numpy as np

        values = np.array(image.convert("F"), dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        values -= low
        values *= 255.0 / (high - low) if high > low else 0.0
        return Image.fromarray(values.clip(0, 255).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def review_copy(data: bytes, limits: DecodeLimits | None = None) -> bytes:
    """The photo as clinicians see it: upright, at most REVIEW_SIDE px, re-encoded as JPEG with
    no metadata at all (no EXIF: GPS position, device, time; no file name)."""
    image = decode_image(data, limits)
    image.thumbnail((REVIEW_SIDE, REVIEW_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()
