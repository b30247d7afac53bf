"""The heatmap picture reads on a phone: its words are drawn, large enough at 360 px wide."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from model.render import RENDER_WIDTH, render_overlay
from model.types import HeatmapLabels, Verdict
from tests.images import skin_photo

PHONE_WIDTH = 360  # a small phone shows a chat picture this wide (CSS px)


def picture(verdict: Verdict | None = Verdict.POSITIVE, labels: HeatmapLabels | None = None, size=(320, 240)):
    heatmap = np.linspace(0, 1, 49).reshape(7, 7)
    return Image.open(io.BytesIO(render_overlay(skin_photo(size), heatmap, verdict, labels)))


def text_line_heights(region: Image.Image, darker_than: int = 100) -> list[int]:
    """Heights (px) of the runs of rows holding dark pixels: one per line of text."""
    dark_rows = (np.asarray(region.convert("L")) < darker_than).any(axis=1)
    heights, run = [], 0
    for dark in dark_rows:
        if dark:
            run += 1
        elif run:
            heights.append(run)
            run = 0
    return heights + ([run] if run else [])


def test_picture_is_phone_sized_and_a_jpeg():
    for size in ((275, 183), (3000, 2000), (600, 1800)):
        image = picture(size=size)
        assert image.format == "JPEG"
        assert image.width <= RENDER_WIDTH and image.height <= 640 + 200


def test_legend_words_stay_readable_at_360_px():
    image = picture(labels=HeatmapLabels(less="less influence", more="more influence", note=""))
    shown = image.resize((PHONE_WIDTH, round(image.height * PHONE_WIDTH / image.width)), Image.Resampling.LANCZOS)
    legend = shown.crop((0, round(shown.height * 0.8), shown.width // 2, shown.height))
    heights = text_line_heights(legend)
    assert heights and max(heights) >= 9  # a line of text ~10 px tall or more on the phone


def test_every_word_given_is_drawn_and_nothing_else_changes():
    base = np.asarray(picture(labels=HeatmapLabels()), int)
    other_legend = np.asarray(picture(labels=HeatmapLabels(less="moins", more="plus")), int)
    other_verdict = np.asarray(picture(labels=HeatmapLabels(verdicts={"positive": "Signes compatibles"})), int)
    no_verdict = np.asarray(picture(verdict=None), int)
    photo_height = 360  # the 320x240 photo shown 480 px wide; the legend strip is below it
    legend_rows = slice(photo_height, photo_height + 55)  # the colour bar and the first line of words
    corner = (slice(0, 60), slice(0, 240))
    assert np.abs(base[legend_rows] - other_legend[legend_rows]).sum(axis=2).max() > 200
    assert np.abs(base[corner] - other_verdict[corner]).sum(axis=2).max() > 200
    assert np.abs(base[corner] - no_verdict[corner]).sum(axis=2).max() > 200  # the corner box is drawn
    photo_rows = slice(80, photo_height)  # the photo itself is the same under all of them
    assert np.abs(base[photo_rows] - other_legend[photo_rows]).mean() < 3
