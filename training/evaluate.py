"""Metrics of one fold, mean +- std across folds, and the operating point on P(positive).

All figures come from scikit-learn. The operating point is chosen on predictions the model did
not train on (inner out-of-fold predictions inside a fold, outer out-of-fold predictions for the
final model), never on the fold being scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

# Metrics shown in the paper-style table, in order.
TABLE_METRICS = (
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "positive_auc",
    "sensitivity",
    "specificity",
    "sensitivity_at_threshold",
    "specificity_at_threshold",
)


def choose_threshold(is_positive: np.ndarray, positive_probability: np.ndarray, target: float) -> float:
    """The highest threshold on P(positive) whose sensitivity on these predictions >= target."""
    is_positive = np.asarray(is_positive, bool)
    if not is_positive.any():
        raise ValueError("no positive photos to choose a threshold from")
    if is_positive.all():
        return float(np.min(positive_probability))
    _, tpr, thresholds = roc_curve(is_positive, positive_probability)
    reaching = thresholds[(tpr >= target) & np.isfinite(thresholds)]
    return float(min(1.0, reaching.max()))


def conformal_threshold(is_positive: np.ndarray, positive_probability: np.ndarray, target: float) -> float:
    """The split-conformal threshold on P(positive) for sensitivity `target`.

    With n positive photos it is the k-th lowest of their probabilities, k = floor((n + 1) *
    (1 - target)): a new positive photo exchangeable with them falls below it with probability at
    most 1 - target. `choose_threshold` stops at the last positive it needs, so by construction a
    new photo is missed more often than on the photos it was chosen on. With fewer than
    1 / (1 - target) - 1 positives no threshold can promise the target; it is then the lowest one.
    """
    positives = np.sort(np.asarray(positive_probability)[np.asarray(is_positive, bool)])
    if len(positives) == 0:
        raise ValueError("no positive photos to choose a threshold from")
    k = math.floor((len(positives) + 1) * (1 - target) + 1e-9)
    return float(positives[max(k, 1) - 1])


THRESHOLD_RULES = {"conformal": conformal_threshold, "empirical": choose_threshold}


def operating_threshold(rule: str, is_positive: np.ndarray, positive_probability: np.ndarray, target: float) -> float:
    """The threshold for sensitivity `target` by `rule` ("conformal" or "empirical")."""
    return THRESHOLD_RULES[rule](is_positive, positive_probability, target)


def threshold_for_specificity(is_positive: np.ndarray, positive_probability: np.ndarray, target: float) -> float:
    """The lowest threshold on P(positive) that keeps specificity on these predictions >= target."""
    negatives = np.sort(np.asarray(positive_probability)[~np.asarray(is_positive, bool)])
    if len(negatives) == 0:
        return 0.0
    kept = min(len(negatives), max(1, math.ceil(target * len(negatives))))
    return float(np.nextafter(negatives[kept - 1], np.inf))  # those `kept` negatives stay below it


def rates_at(is_positive: np.ndarray, positive_probability: np.ndarray, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) when P(positive) >= threshold counts as positive."""
    is_positive = np.asarray(is_positive, bool)
    called = np.asarray(positive_probability) >= threshold
    sensitivity = float(called[is_positive].mean()) if is_positive.any() else math.nan
    specificity = float((~called[~is_positive]).mean()) if (~is_positive).any() else math.nan
    return sensitivity, specificity


def fold_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    positive_class: str,
    threshold: float,
) -> dict:
    """Accuracy, macro and per-class figures, positive-class sensitivity/specificity, AUC, CM."""
    positive = class_names.index(positive_class)
    predicted = probabilities.argmax(axis=1)
    every_class = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=every_class, zero_division=0
    )
    present = [i for i in every_class if support[i] > 0]  # a fold may lack a rare class
    is_positive = labels == positive
    sensitivity, specificity = rates_at(is_positive, (predicted == positive).astype(float), 0.5)
    at_sensitivity, at_specificity = rates_at(is_positive, probabilities[:, positive], threshold)
    both = is_positive.any() and (~is_positive).any()
    return {
        "photos": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_precision": float(np.mean(precision[present])),
        "macro_recall": float(np.mean(recall[present])),
        "macro_f1": float(np.mean(f1[present])),
        "positive_auc": float(roc_auc_score(is_positive, probabilities[:, positive])) if both else math.nan,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "threshold": float(threshold),
        "sensitivity_at_threshold": at_sensitivity,
        "specificity_at_threshold": at_specificity,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=every_class).tolist(),
    }


def mean_std(rows: Iterable[dict], metrics: Iterable[str] = TABLE_METRICS) -> dict[str, dict[str, float]]:
    """mean and sample std of each metric over folds (NaN folds, e.g. no positives, left out)."""
    rows = list(rows)
    result = {}
    for metric in metrics:
        values = np.array([row[metric] for row in rows if not math.isnan(row[metric])], float)
        result[metric] = {
            "mean": float(values.mean()) if len(values) else math.nan,
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "folds": int(len(values)),
        }
    return result



def wilson_interval(hits: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion hits/total; (nan, nan) for 0/0.

    Wilson rather than the normal approximation: it stays inside [0, 1] and keeps its coverage
    at the small counts and rates near 1 that sensitivities on one source have."""
    if total == 0:
        return math.nan, math.nan
    rate = hits / total
    denominator = 1 + z * z / total
    centre = (rate + z * z / (2 * total)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
