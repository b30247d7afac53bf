"""Draw the heatmap over the user's photo as a PNG, with matplotlib's colour map and legend.

The picture must read well on a small phone screen: the photo stays visible under a
semi-transparent, perceptually ordered colour map ('turbo'), above a colour bar saying which end
means "the model looked here". A full matplotlib figure per request costs ~30 ms; instead the
legend strip is drawn by matplotlib once per width and cached, and the overlay is blended with the
same colour map in NumPy (~5 ms).
"""

from __future__ import annotations

import functools
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers

import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colorbar import ColorbarBase  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

# Pixels: sharp on a phone, small to send on a slow network, and quick to PNG-encode (the
# encoder is most of the render time: ~10 ms at 480 px, ~6 ms at 400 px).
DEFAULT_MAX_SIDE = 400
MIN_SIDE = 280  # small web photos are enlarged so the legend stays legible
COLOUR_MAP = "turbo"
OVERLAY_ALPHA = 0.45
LEGEND_HEIGHT = 44
_DPI = 100


LEGEND_WIDTH_STEP = 40  # legends are drawn for widths in these steps, then resized to fit


def legend_strip(width: int, low: str = "low", high: str = "high") -> Image.Image:
    """A white strip `width` px wide with a colour bar labelled `low` .. `high`."""
    bucket = max(LEGEND_WIDTH_STEP, round(width / LEGEND_WIDTH_STEP) * LEGEND_WIDTH_STEP)
    strip = _legend_strip(bucket, low, high)
    return strip if bucket == width else strip.resize((width, LEGEND_HEIGHT), Image.Resampling.BILINEAR)


def warm_up_legends(max_side: int = DEFAULT_MAX_SIDE) -> None:
    """Draw every legend width once, so no request pays matplotlib's ~15 ms figure cost."""
    for width in range(LEGEND_WIDTH_STEP, max_side + LEGEND_WIDTH_STEP, LEGEND_WIDTH_STEP):
        _legend_strip(width, "low", "high")


@functools.lru_cache(maxsize=64)
def _legend_strip(width: int, low: str, high: str) -> Image.Image:
    """The legend drawn by matplotlib at one width (cached)."""
    figure = Figure(figsize=(width / _DPI, LEGEND_HEIGHT / _DPI), dpi=_DPI, facecolor="white")
    axes = figure.add_axes((0.08, 0.55, 0.84, 0.3))
    bar = ColorbarBase(
        axes, cmap=colormaps[COLOUR_MAP], norm=Normalize(0, 1), orientation="horizontal", ticks=[0, 1]
    )
    bar.ax.set_xticklabels([low, high], fontsize=9)
    bar.ax.tick_params(length=0, pad=2)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, facecolor="white")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").resize((width, LEGEND_HEIGHT))


def _fit(photo: Image.Image, max_side: int) -> Image.Image:
    width, height = photo.size
    scale = min(max_side / max(width, height), max(1.0, MIN_SIDE / min(width, height)))
    scale = min(scale, max_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: a quick box reduction first, then the fine filter (5x faster on 2400 px).
    return photo.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0) if size != photo.size else photo


def overlay(photo: Image.Image, heatmap: np.ndarray) -> Image.Image:
    """The RGB photo blended with the colour-mapped heatmap, smoothly upsampled to its size."""
    low_res = Image.fromarray(np.clip(heatmap, 0, 1).astype(np.float32), mode="F")
    smooth = np.asarray(low_res.resize(photo.size, Image.Resampling.BICUBIC))
    colours = colormaps[COLOUR_MAP](np.clip(smooth, 0, 1), bytes=True)[..., :3]
    return Image.blend(photo, Image.fromarray(np.ascontiguousarray(colours)), OVERLAY_ALPHA)


def render_overlay(
    photo: Image.Image,
    heatmap: np.ndarray,
    max_side: int = DEFAULT_MAX_SIDE,
    legend_low: str = "low",
    legend_high: str = "high",
) -> bytes:
    """PNG bytes: `photo` with `heatmap` (any resolution, values 0..1) over it, and a legend."""
    shown = _fit(photo if photo.mode == "RGB" else photo.convert("RGB"), max_side)
    blended = overlay(shown, heatmap)
    canvas = Image.new("RGB", (shown.width, shown.height + LEGEND_HEIGHT), "white")
    canvas.paste(blended, (0, 0))
    canvas.paste(legend_strip(shown.width, legend_low, legend_high), (0, shown.height))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
