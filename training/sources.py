"""Figures of one model on one source of photos: what a user whose photos look like that source gets.

Each rate comes with its counts and a 95 % Wilson interval, because the sources are small (tens
to hundreds of photos) and a rate without them reads as more certain than it is.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score

from training.evaluate import threshold_for_specificity, wilson_interval

# The bar: mpox sensitivity where the threshold keeps specificity at or above this.
SPECIFICITY_FLOOR = 0.80


@dataclass(frozen=True)
class Rate:
    """hits out of total, with its 95 % Wilson interval."""

    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.hits, self.total)

    def text(self) -> str:
        if not self.total:
            return "n/a (0 photos)"
        low, high = self.interval
        return f"{self.value:.2f} [{low:.2f}-{high:.2f}] ({self.hits}/{self.total})"

    def as_dict(self) -> dict:
        low, high = self.interval
        return {"value": self.value, "low": low, "high": high, "hits": self.hits, "total": self.total}


@dataclass(frozen=True)
class SourceFigures:
    """One model on one source, at one threshold on P(mpox)."""

    source: str
    threshold: float
    auc: float  # NaN when the source holds one class only
    sensitivity: Rate  # mpox photos with P(mpox) >= threshold
    specificity: Rate  # other photos below it
    # other photos called mpox, by the source's own class (the look-alike conditions)
    called_mpox_by_class: dict[str, Rate] = field(default_factory=dict)
    # mpox photos caught at the lowest threshold keeping this source's specificity >= SPECIFICITY_FLOOR:
    # a point of its ROC curve (the threshold is set on the source itself), like AUC a ranking figure
    sensitivity_at_floor: Rate | None = None

    @property
    def called_mpox(self) -> Rate:
        """Photos that are not mpox but were called mpox (1 - specificity, as counts)."""
        return Rate(self.specificity.total - self.specificity.hits, self.specificity.total)

    def as_dict(self) -> dict:
        return {
            "source": self.source, "threshold": self.threshold, "auc": None if math.isnan(self.auc) else self.auc,
            "sensitivity": self.sensitivity.as_dict(), "specificity": self.specificity.as_dict(),
            "not_mpox_called_mpox": self.called_mpox.as_dict(),
            "called_mpox_by_class": {name: rate.as_dict() for name, rate in self.called_mpox_by_class.items()},
            "sensitivity_at_specificity_floor": None if self.sensitivity_at_floor is None else {
                "specificity_floor": SPECIFICITY_FLOOR, **self.sensitivity_at_floor.as_dict()},
        }


def source_figures(source: str, is_mpox: np.ndarray, mpox_probability: np.ndarray, threshold: float,
                   classes: list[str] | None = None) -> SourceFigures:
    """AUC and sensitivity/specificity at `threshold` (P(mpox) >= threshold calls mpox); with the
    photos' own `classes`, how often the photos of each non-mpox class were called mpox."""
    is_mpox = np.asarray(is_mpox, bool)
    called = np.asarray(mpox_probability) >= threshold
    both = is_mpox.any() and (~is_mpox).any()
    auc = float(roc_auc_score(is_mpox, mpox_probability)) if both else math.nan
    at_floor = None
    if both:
        floor = threshold_for_specificity(is_mpox, mpox_probability, SPECIFICITY_FLOOR)
        at_floor = Rate(int((np.asarray(mpox_probability)[is_mpox] >= floor).sum()), int(is_mpox.sum()))
    by_class = {}
    if classes is not None:
        negatives = Counter(c for c, positive in zip(classes, is_mpox, strict=True) if not positive)
        hits = Counter(c for c, positive, call in zip(classes, is_mpox, called, strict=True) if call and not positive)
        by_class = {name: Rate(hits[name], count) for name, count in negatives.most_common()}
    return SourceFigures(
        source=source, threshold=float(threshold), auc=auc,
        sensitivity=Rate(int(called[is_mpox].sum()), int(is_mpox.sum())),
        specificity=Rate(int((~called[~is_mpox]).sum()), int((~is_mpox).sum())),
        called_mpox_by_class=by_class, sensitivity_at_floor=at_floor,
    )


def figures_table(rows: list[SourceFigures]) -> str:
    """A Markdown table: one row per source."""
    lines = [
        "| source | AUC | mpox sensitivity [95 % CI] (caught/mpox photos) | specificity [95 % CI] (right/other photos) "
        f"| other photos called mpox | sensitivity at specificity >= {SPECIFICITY_FLOOR:.2f} (ROC point) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        auc = "n/a (one class)" if math.isnan(row.auc) else f"{row.auc:.3f}"
        floor = "n/a" if row.sensitivity_at_floor is None else row.sensitivity_at_floor.text()
        lines.append(f"| {row.source} | {auc} | {row.sensitivity.text()} | {row.specificity.text()} "
                     f"| {row.called_mpox.text()} | {floor} |")
    return "\n".join(lines) + "\n"


def lookalike_table(row: SourceFigures) -> str:
    """How often photos of each look-alike condition were called mpox (Markdown)."""
    lines = [f"| {row.source}: condition | called mpox [95 % CI] (called/photos) |", "|---|---|"]
    lines += [f"| {name} | {rate.text()} |" for name, rate in row.called_mpox_by_class.items()]
    return "\n".join(lines) + "\n"
