"""Decoding untrusted bytes: every bad input is refused clearly, every awkward photo is read."""

from __future__ import annotations

import pytest
from PIL import Image

from model.errors import ImageRejected
from model.imaging import decode_image, to_rgb
from model.types import Reason
from tests.images import AWKWARD_VALID, BAD_INPUTS, encode, exif_rotated_jpeg, skin_photo

EXPECTED_REASON = {
    "empty": Reason.EMPTY,
    "text": Reason.NOT_AN_IMAGE,
    "html": Reason.NOT_AN_IMAGE,
    "pdf": Reason.NOT_AN_IMAGE,
    "truncated_jpeg": Reason.CORRUPT,
    "corrupt_png": Reason.CORRUPT,
    "one_pixel": Reason.TOO_SMALL,
    "bomb_50000": Reason.DECOMPRESSION_BOMB,
    "huge_file": Reason.TOO_LARGE_FILE,
    "heic": Reason.CORRUPT,
    "tiny_64x10": Reason.TOO_SMALL,
    "zip_archive": Reason.NOT_AN_IMAGE,
    "ico_icon": Reason.UNSUPPORTED_FORMAT,
    "sixteen_bit_bomb": Reason.DECOMPRESSION_BOMB,
    "animated_gif": Reason.UNSUPPORTED_FORMAT,
    "bmp": Reason.UNSUPPORTED_FORMAT,
    "tiff": Reason.UNSUPPORTED_FORMAT,
    "ppm": Reason.UNSUPPORTED_FORMAT,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_REASON))
def test_bad_input_is_refused_with_its_reason(name):
    with pytest.raises(ImageRejected) as refused:
        decode_image(BAD_INPUTS[name]())
    assert refused.value.reason is EXPECTED_REASON[name]
    assert refused.value.detail  # a sentence a person can read


@pytest.mark.parametrize("name", sorted(AWKWARD_VALID))
def test_awkward_valid_photos_decode_to_rgb(name):
    image = decode_image(AWKWARD_VALID[name]())
    assert image.mode == "RGB"
    assert min(image.size) >= 64


def test_exif_orientation_is_applied():
    image = decode_image(exif_rotated_jpeg())
    assert image.size == (200, 320)  # stored 320x200 landscape, displayed portrait


def test_transparency_is_flattened_onto_white():
    rgba = Image.new("RGBA", (100, 100), (10, 20, 30, 0))
    assert to_rgb(rgba).getpixel((5, 5)) == (255, 255, 255)


def test_sixteen_bit_keeps_its_contrast():
    image = decode_image(AWKWARD_VALID["sixteen_bit_png"]())
    low, high = image.convert("L").getextrema()
    assert high - low > 100  # not clipped to a white sheet


def test_size_cap_is_configurable():
    from model.imaging import DecodeLimits
    from tests.images import encode

    data = encode(skin_photo(), "PNG")
    with pytest.raises(ImageRejected) as refused:
        decode_image(data, DecodeLimits(max_bytes=len(data) - 1))
    assert refused.value.reason is Reason.TOO_LARGE_FILE


def test_only_promised_formats_are_parsed(monkeypatch):
    """GIF, BMP, TIFF... are recognised by their first bytes and refused: Pillow's decoders for
    them never run on untrusted bytes."""
    from PIL import GifImagePlugin, TiffImagePlugin

    def never(*args, **kwargs):
        raise AssertionError("a decoder the service does not promise was called")

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_open", never)
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_open", never)
    for name in ("animated_gif", "tiff"):
        with pytest.raises(ImageRejected) as refused:
            decode_image(BAD_INPUTS[name]())
        assert refused.value.reason is Reason.UNSUPPORTED_FORMAT


def test_sixteen_bit_bomb_is_refused_from_its_header(monkeypatch):
    """Its 40 MP of 16-bit grey took 2.6 s and 1.2 GB to decode: it is refused before any pixel is."""
    from PIL import ImageFile

    def never(self):
        raise AssertionError("pixels were decoded")

    data = BAD_INPUTS["sixteen_bit_bomb"]()
    assert len(data) < 200_000  # small on the wire
    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    with pytest.raises(ImageRejected) as refused:
        decode_image(data)
    assert refused.value.reason is Reason.DECOMPRESSION_BOMB


def test_review_copy_has_no_metadata_and_is_upright():
    from model.imaging import REVIEW_SIDE, review_copy
    from tests.images import encode

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "PhoneMaker"  # device
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}  # GPS
    photo = encode(skin_photo((2400, 1600)), "JPEG", exif=exif.tobytes())
    copy = Image.open(__import__("io").BytesIO(review_copy(photo)))
    assert copy.format == "JPEG"
    assert not copy.getexif() and "exif" not in copy.info
    assert copy.size == (REVIEW_SIDE * 1600 // 2400, REVIEW_SIDE)  # rotated upright, then shrunk


def test_each_format_has_a_pixel_cap_that_bounds_its_decoding_memory():
    """WebP costs Pillow ~15 bytes a pixel to decode, PNG ~4: each format's cap keeps one decode
    near 200 MB (python -m benchmarks.memory); a JPEG decodes at a reduced scale, so 48 MP passes."""
    from model.imaging import DecodeLimits

    limits = DecodeLimits()
    assert limits.max_webp_pixels < limits.max_pixels < limits.max_jpeg_pixels
    webp_header_only = encode(skin_photo((64, 64)), "WEBP")
    assert decode_image(webp_header_only).size == (64, 64)
    with pytest.raises(ImageRejected) as refused:
        decode_image(encode(Image.new("RGB", (4000, 3200), (190, 140, 120)), "WEBP"), limits)
    assert refused.value.reason is Reason.DECOMPRESSION_BOMB


def test_a_big_picture_is_reduced_right_after_decoding_and_keeps_its_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate on display
    image = decode_image(encode(skin_photo((4000, 2500)), "PNG", exif=exif.tobytes()))
    assert image.size == (1250, 2000)  # halved (short side still >= 1024), then turned upright
