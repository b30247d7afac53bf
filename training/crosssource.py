"""Leave one source out: train on the other sources, test on it, for every source in turn.

In-source k-fold CV mixes every source into every fold, so the model has always seen photos like
the test photos; a user's photos come from a source it never saw. Here each held-out source is
scored three ways, each with counts and 95 % Wilson intervals (training.sources):

- at the fold's own threshold, chosen by the bundle's rule on inner predictions of the training
  sources' photos (what the in-source rule gives on a new source);
- at a threshold chosen on the other sources' leave-one-source-out predictions (so the threshold,
  too, was chosen on photos from sources their models never saw, but never on this source);
- AUC, which needs no threshold.

The bundle's operating point is then chosen on all leave-one-source-out predictions together, and
the report states what that costs in specificity against the in-source threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.evaluate import operating_threshold, rates_at
from training.sources import SourceFigures, figures_table, lookalike_table, source_figures


def source_splits(sources: np.ndarray, order: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) indices with each source in `order` as the test set once."""
    every = np.arange(len(sources))
    return [(every[sources != name], every[sources == name]) for name in order]


@dataclass(frozen=True)
class CrossSource:
    """One backbone left-one-source-out: per-source figures and the operating point they imply."""

    backbone: str
    at_fold_threshold: list[SourceFigures]  # each source at its fold's in-source-rule threshold
    at_other_sources_threshold: list[SourceFigures]  # each source at a threshold chosen on the others
    threshold: float  # chosen on every photo's leave-one-source-out prediction (the bundle's rule)
    sensitivity: float  # pooled over every source, at `threshold`
    specificity: float
    in_source_threshold: float  # the threshold in-source CV chose
    sensitivity_at_in_source_threshold: float  # pooled leave-one-source-out, at that threshold
    specificity_at_in_source_threshold: float

    def as_dict(self) -> dict:
        return {
            "backbone": self.backbone,
            "at_fold_threshold": [f.as_dict() for f in self.at_fold_threshold],
            "at_other_sources_threshold": [f.as_dict() for f in self.at_other_sources_threshold],
            "threshold": self.threshold, "sensitivity": self.sensitivity, "specificity": self.specificity,
            "in_source_threshold": self.in_source_threshold,
            "sensitivity_at_in_source_threshold": self.sensitivity_at_in_source_threshold,
            "specificity_at_in_source_threshold": self.specificity_at_in_source_threshold,
        }


def cross_source_figures(backbone: str, rows: list[dict], order: tuple[str, ...], is_mpox: np.ndarray,
                         mpox_probability: np.ndarray, classes: list[str], rule: str, target: float,
                         in_source_threshold: float) -> CrossSource:
    """Figures from the leave-one-source-out fold rows (in `order`) and every photo's P(mpox) from
    the fold that held its source out (`mpox_probability`)."""
    at_fold, at_others = [], []
    for name, row in zip(order, rows, strict=True):
        test = np.array(row["test_index"], int)
        others = np.setdiff1d(np.arange(len(is_mpox)), test)
        own = [classes[i] for i in test]
        at_fold.append(source_figures(name, is_mpox[test], mpox_probability[test], row["threshold"], own))
        transferred = operating_threshold(rule, is_mpox[others], mpox_probability[others], target)
        at_others.append(source_figures(name, is_mpox[test], mpox_probability[test], transferred, own))
    threshold = operating_threshold(rule, is_mpox, mpox_probability, target)
    sensitivity, specificity = rates_at(is_mpox, mpox_probability, threshold)
    in_sensitivity, in_specificity = rates_at(is_mpox, mpox_probability, in_source_threshold)
    return CrossSource(backbone, at_fold, at_others, threshold, sensitivity, specificity,
                       in_source_threshold, in_sensitivity, in_specificity)


def cross_source_markdown(result: CrossSource, target: float) -> str:
    """The report's leave-one-source-out section for one backbone."""
    lines = [
        f"### {result.backbone}", "",
        "At each fold's own threshold (chosen by the bundle's rule on inner folds of the training sources):", "",
        figures_table(result.at_fold_threshold),
        "At a threshold chosen on the other sources' leave-one-source-out predictions (never on this source):", "",
        figures_table(result.at_other_sources_threshold),
    ]
    for figures in result.at_fold_threshold:
        if figures.sensitivity.total == 0 and figures.called_mpox_by_class:
            lines += ["Look-alikes called mpox at the fold's threshold, by condition:", "", lookalike_table(figures)]
    lines += [
        f"- Operating point from every photo's leave-one-source-out prediction: P(mpox) >= {result.threshold:.4f} "
        f"for sensitivity >= {target}; pooled there sensitivity {result.sensitivity:.3f}, specificity "
        f"{result.specificity:.3f}.",
        f"- The in-source threshold ({result.in_source_threshold:.4f}) gives on the same predictions sensitivity "
        f"{result.sensitivity_at_in_source_threshold:.3f}, specificity {result.specificity_at_in_source_threshold:.3f}: "
        f"holding the sensitivity across sources costs {result.specificity_at_in_source_threshold - result.specificity:+.3f} "
        "specificity (positive: specificity lost).",
    ]
    if result.specificity < 0.5:
        lines.append(
            f"- **No useful threshold holds sensitivity {target} across sources here**: on sources it never saw, "
            "enough mpox photos get P(mpox) near 0 that the threshold reaching it calls most other photos mpox. "
            "Judge this model by the per-source tables above, not by this operating point.")
    lines.append("")
    return "\n".join(lines)


def expectation_markdown(result: CrossSource, target: float) -> str:
    """The model card's first section for a bundle trained on several sources: each source as a
    new source, scored by models that never saw it at a threshold chosen without it."""
    held_out = result.at_other_sources_threshold
    lines = [
        f"The shipped model is trained on all {len(held_out)} sources, so none is left to test it on. Each source "
        "was therefore held out in turn: a model trained the same way on the other sources screened it, at a "
        "threshold chosen on their held-out predictions, never on this source. **These figures, not the "
        "in-source cross-validation under Metrics, are what a user should expect** (and users' phone photos "
        "differ from every source here). 95 % Wilson intervals; counts in brackets.", "",
        figures_table(held_out),
    ]
    for figures in held_out:
        if figures.sensitivity.total == 0 and figures.called_mpox_by_class:
            worst = sorted(figures.called_mpox_by_class.items(), key=lambda item: -item[1].hits)[:6]
            lines.append(f"- {figures.source} (no mpox photo): {figures.called_mpox.hits} of "
                         f"{figures.called_mpox.total} called mpox; most often "
                         + ", ".join(f"{name} {rate.hits}/{rate.total}" for name, rate in worst) + ".")
    lines += [
        f"- The bundle's threshold, P(mpox) >= {result.threshold:.4f}, was chosen on every photo's held-out "
        f"prediction for sensitivity >= {target}: pooled there, sensitivity {result.sensitivity:.3f} and "
        f"specificity {result.specificity:.3f}. How a new source's scores sit against it is what the rows above "
        "measure.",
        "- Sensitivity at specificity >= 0.80 is a point of each source's ROC curve (its threshold set on that "
        "source): like the AUC, it says how well photos are ranked, not what the bundle's threshold gives.",
    ]
    return "\n".join(lines) + "\n"
