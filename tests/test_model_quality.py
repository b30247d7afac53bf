"""The quality gate refuses unusable photos but not real ones."""

from __future__ import annotations

from model.imaging import decode_image
from model.quality import assess
from model.types import Reason
from tests.images import skin_photo


def test_real_photos_are_not_refused_wholesale(shared_photo_paths):
    refused = [p for p in shared_photo_paths if assess(decode_image(p.read_bytes())).reason]
    assert len(refused) / len(shared_photo_paths) <= 0.05, refused


def test_dark_photo_is_too_dark():
    dark = skin_photo().point(lambda v: v // 8)
    assert assess(dark).reason is Reason.TOO_DARK


def test_black_and_white_picture_is_refused():
    # Scans, screenshots of text and black-and-white photos: the model judges lesions by colour.
    report = assess(skin_photo().convert("L").convert("RGB"))
    assert report.reason is Reason.NOT_A_CLOSE_SKIN_PHOTO and report.chroma < 1.5


def test_faded_colour_photo_is_accepted():
    # Little colour (as the least colourful real photos, chroma ~3) is still colour.
    from PIL import ImageEnhance

    faded = ImageEnhance.Color(skin_photo()).enhance(0.1)
    report = assess(faded)
    assert report.reason is None and 1.5 < report.chroma < 4.0


def test_blurred_photo_is_refused():
    from PIL import ImageFilter

    blurred = skin_photo().filter(ImageFilter.GaussianBlur(12))
    assert assess(blurred).reason is Reason.TOO_BLURRY
