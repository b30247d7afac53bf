"""Bad and awkward inputs, made in memory: every kind a phone, a browser or an attacker sends."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from tests.bundles import SHARED_DATA


def skin_photo(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    """A smooth skin-toned picture with a few darker spots: passes the quality gate."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [200 + 20 * np.sin(x / 40), 150 + 15 * np.cos(y / 30), 120 + 10 * np.sin((x + y) / 50)], -1
    )
    for _ in range(6):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        r = rng.integers(6, 14)
        spot = ((x - cx) ** 2 + (y - cy) ** 2) < r**2
        base[spot] = base[spot] * 0.6
    return Image.fromarray(base.clip(0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def real_photo_bytes() -> bytes:
    """A real phone-camera JPEG from the shared data; a generated one where that is absent."""
    path = SHARED_DATA / "mpox" / "2.jfif"
    return path.read_bytes() if path.is_file() else encode(skin_photo(), "JPEG")


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: a decompression bomb's signature."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\x00" * 64)
    idat_chunk = b"IDAT" + idat
    body += struct.pack(">I", len(idat)) + idat_chunk + struct.pack(">I", zlib.crc32(idat_chunk))
    return b"\x89PNG\r\n\x1a\n" + body


def sixteen_bit_bomb(side: int = 6300) -> bytes:
    """A 16-bit grey PNG of side x side pixels that compresses to a few kB: decoded in full it
    took 2.6 s and 1.2 GB. Written row by row so making it costs little memory."""
    row = b"\x00" + b"\x12\x34" * side  # filter byte, then big-endian 16-bit samples
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sixteen_bit_png() -> bytes:
    values = np.asarray(skin_photo().convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(values), "PNG")  # uint16 -> mode I;16


def cmyk_jpeg() -> bytes:
    return encode(skin_photo().convert("CMYK"), "JPEG", quality=90)


def palette_with_transparency() -> bytes:
    image = skin_photo().convert("P", palette=Image.Palette.ADAPTIVE)
    return encode(image, "PNG", transparency=0)


def animated_gif() -> bytes:
    frames = [skin_photo(seed=i).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """A landscape photo stored with EXIF orientation 6 (rotate 90 degrees on display)."""
    image = skin_photo((320, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", exif=exif.tobytes())


def heic_like() -> bytes:
    """The start of an HEIC file (ftyp box) with no decodable content."""
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


BAD_INPUTS: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "text": lambda: b"hello, this is not a photo at all\n" * 3,
    "html": lambda: b"<!DOCTYPE html><html><body>photo</body></html>",
    "pdf": lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    "truncated_jpeg": lambda: real_photo_bytes()[:800],
    "corrupt_png": lambda: encode(skin_photo(), "PNG")[:60] + b"\x00garbage" * 50,
    "one_pixel": lambda: encode(Image.new("RGB", (1, 1), (200, 150, 120)), "PNG"),
    "bomb_50000": lambda: png_header_claiming(50000, 50000),
    "huge_file": lambda: b"\xff\xd8\xff" + b"\x00" * (21 * 1024 * 1024),
    "all_black": lambda: encode(Image.new("RGB", (300, 300), (0, 0, 0)), "JPEG"),
    "all_white": lambda: encode(Image.new("RGB", (300, 300), (255, 255, 255)), "PNG"),
    "random_noise": lambda: encode(
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)),
        "PNG",
    ),
    "heic": heic_like,
    "tiny_64x10": lambda: encode(skin_photo((64, 10)), "PNG"),
    "blurred_flat": lambda: encode(Image.new("RGB", (300, 300), (190, 140, 120)), "PNG"),
    "zip_archive": lambda: b"PK\x03\x04" + b"\x00" * 100,
    "ico_icon": lambda: encode(skin_photo((64, 64)), "ICO"),
    "sixteen_bit_bomb": sixteen_bit_bomb,
    # Image formats the service does not promise: refused by name, never parsed.
    "animated_gif": lambda: animated_gif(),
    "bmp": lambda: encode(skin_photo(), "BMP"),
    "tiff": lambda: encode(skin_photo(), "TIFF"),
    "ppm": lambda: encode(skin_photo(), "PPM"),
}

# Awkward but valid photos: must be decoded and screened (not refused for their format).
AWKWARD_VALID: dict[str, Callable[[], bytes]] = {
    "sixteen_bit_png": sixteen_bit_png,
    "cmyk_jpeg": cmyk_jpeg,
    "grayscale": lambda: encode(skin_photo().convert("L"), "PNG"),
    "palette_transparency": palette_with_transparency,
    "webp": lambda: encode(skin_photo(), "WEBP"),
    "rgba_png": lambda: encode(skin_photo().convert("RGBA"), "PNG"),
    "exif_rotated": exif_rotated_jpeg,
    "heic": lambda: encode(skin_photo(), "HEIF"),
}
