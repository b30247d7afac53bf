"""From probabilities to a screening verdict, using the bundle's thresholds."""

from __future__ import annotations

from model.bundle import Thresholds
from model.types import Verdict


def decide(positive_probability: float, thresholds: Thresholds) -> Verdict:
    """positive at/above the threshold, inconclusive in the band just below it, else negative."""
    if positive_probability >= thresholds.positive:
        return Verdict.POSITIVE
    if positive_probability >= thresholds.inconclusive:
        return Verdict.INCONCLUSIVE
    return Verdict.NEGATIVE
