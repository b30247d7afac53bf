"""A quick quality gate before the classifier: is this a usable close photo of skin?

A model asked about a dark, washed-out, blurred or unrelated picture still answers, confidently
and wrongly. The gate refuses such photos with a reason the bot turns into advice ("retake it
closer, in daylight"). Each measure is cheap (a few ms on a 2-core machine) and its threshold is
deliberately lenient: refusing a good photo costs the user a retake, so `python -m benchmarks.screen`
reports the false-reject rate on real photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from model.types import Reason

_ANALYSIS_SIDE = 256  # measures are taken on a copy this size, so they do not depend on resolution
_SKIN_SIDE = 64  # colour is judged on a small, smoothed copy: noise averages out to grey


@dataclass(frozen=True)
class QualityThresholds:
    min_mean_luma: float = 35.0  # 0..255; below this the photo is too dark to judge
    max_clipped_fraction: float = 0.85  # share of pure-white pixels; stock photos reach ~0.76
    max_mean_luma: float = 246.0
    min_sharpness: float = 12.0  # variance of the Laplacian on the 256-px grey copy
    min_skin_fraction: float = 0.02  # share of skin-coloured pixels (pale skin on white: ~0.03)
    min_neighbour_correlation: float = 0.5  # photos ~0.9+; random noise ~0
    max_grey_chroma: float = 4.0  # below this mean chroma skin colour cannot be judged
    # Below this the picture has no colour at all (a scan, a screenshot of text, a black-and-white
    # photo): refused. Of 1,656 real photos the least colourful colour one scores 2.75, the five
    # black-and-white ones <= 0.1 (`benchmarks.screen` lists both).
    max_black_and_white_chroma: float = 1.5


@dataclass(frozen=True)
class QualityReport:
    mean_luma: float
    clipped_fraction: float
    sharpness: float
    skin_fraction: float
    chroma: float
    neighbour_correlation: float
    reason: Reason | None


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _laplacian_variance(grey: np.ndarray) -> float:
    lap = (
        -4.0 * grey[1:-1, 1:-1]
        + grey[:-2, 1:-1]
        + grey[2:, 1:-1]
        + grey[1:-1, :-2]
        + grey[1:-1, 2:]
    )
    return float(lap.var())


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels whose chroma falls in a broad skin range (light to dark skin, rashes included).

    Chroma (Cr, Cb) rather than brightness, so dark skin and shadowed skin count as skin.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 128.0
    cb = (b - y) * 0.564 + 128.0
    return (cr >= 133) & (cr <= 180) & (cb >= 70) & (cb <= 130) & (y >= 20)


def _neighbour_correlation(grey: np.ndarray) -> float:
    # Neighbouring pixels of any real photo are alike; in noise or a glitch they are unrelated.
    left, right = grey[:, :-1].ravel(), grey[:, 1:].ravel()
    if left.std() < 1e-3 or right.std() < 1e-3:
        return 1.0  # a flat image is smooth; the exposure checks deal with it
    return float(np.corrcoef(left, right)[0, 1])


def assess(image: Image.Image, thresholds: QualityThresholds | None = None) -> QualityReport:
    """Measure an RGB photo and say whether (and why not) it can be screened."""
    thresholds = thresholds or QualityThresholds()
    small = image.copy()
    small.thumbnail((_ANALYSIS_SIDE, _ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, dtype=np.float32)
    grey = _luma(rgb)
    mean_luma = float(grey.mean())
    clipped_fraction = float((grey >= 250).mean())
    sharpness = _laplacian_variance(grey)
    neighbour_correlation = _neighbour_correlation(grey)

    # Colour cannot tell skin in a faded photo: below max_grey_chroma the skin test is skipped,
    # and a picture with no colour at all is refused (the model judges lesions by their colour).
    chroma = float(np.abs(rgb - grey[..., np.newaxis]).mean())
    tiny = image.resize((_SKIN_SIDE, _SKIN_SIDE), Image.Resampling.BOX)
    skin_fraction = float(skin_mask(np.asarray(tiny, dtype=np.float32)).mean())

    reason: Reason | None = None
    if mean_luma < thresholds.min_mean_luma:
        reason = Reason.TOO_DARK
    elif mean_luma > thresholds.max_mean_luma or clipped_fraction > thresholds.max_clipped_fraction:
        reason = Reason.OVEREXPOSED
    elif sharpness < thresholds.min_sharpness:
        reason = Reason.TOO_BLURRY
    elif neighbour_correlation < thresholds.min_neighbour_correlation or chroma >= thresholds.max_grey_chroma and skin_fraction < thresholds.min_skin_fraction:
        reason = Reason.NOT_SKIN
    elif chroma < thresholds.max_black_and_white_chroma:
        reason = Reason.NOT_A_CLOSE_SKIN_PHOTO
    return QualityReport(
        mean_luma=mean_luma,
        clipped_fraction=clipped_fraction,
        sharpness=sharpness,
        skin_fraction=skin_fraction,
        chroma=chroma,
        neighbour_correlation=neighbour_correlation,
        reason=reason,
    )
