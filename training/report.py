"""Write the study's results: results.csv, the paper-style table, and the PNG plots."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay  # noqa: E402

from training.evaluate import TABLE_METRICS  # noqa: E402

CSV_SKIP = {"test_index", "probabilities", "per_class", "confusion_matrix", "config_key", "served_probabilities"}
BOX_METRICS = ("accuracy", "macro_f1", "sensitivity_at_threshold", "specificity_at_threshold")


def write_results_csv(rows: list[dict], path: Path) -> None:
    """One row per backbone x fold: the scalar metrics, and per-class F1."""
    if not rows:
        return
    flat = []
    for row in rows:
        scalars = {k: v for k, v in row.items() if k not in CSV_SKIP}
        scalars.update({f"f1_{name}": v["f1"] for name, v in row["per_class"].items()})
        flat.append(scalars)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(flat[0]))
        writer.writeheader()
        writer.writerows(flat)


def _cell(stats: dict) -> str:
    if math.isnan(stats["mean"]):
        return "-"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def summary_table(per_backbone: dict[str, dict]) -> str:
    """Markdown: one row per backbone, mean ± std over folds of each metric."""
    header = "| backbone | folds | " + " | ".join(TABLE_METRICS) + " |"
    lines = [header, "|" + "---|" * (len(TABLE_METRICS) + 2)]
    for name, stats in per_backbone.items():
        folds = stats["accuracy"]["folds"]
        lines.append(f"| {name} | {folds} | " + " | ".join(_cell(stats[m]) for m in TABLE_METRICS) + " |")
    return "\n".join(lines) + "\n"


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def plot_folds(rows: list[dict], path: Path) -> Path:
    """Box plots of the per-fold figures, one panel per metric, one box per backbone."""
    backbones = sorted({row["backbone"] for row in rows})
    figure = Figure(figsize=(3.2 * len(BOX_METRICS), 3.6))
    for k, metric in enumerate(BOX_METRICS):
        axes = figure.add_subplot(1, len(BOX_METRICS), k + 1)
        data = [[r[metric] for r in rows if r["backbone"] == b and not math.isnan(r[metric])] for b in backbones]
        axes.boxplot(data, tick_labels=backbones)
        axes.set_title(metric.replace("_", " "), fontsize=9)
        axes.set_ylim(-0.05, 1.05)
        axes.tick_params(axis="x", labelrotation=30, labelsize=7)
    return _save(figure, path)


def plot_confusion(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...], title: str, path: Path) -> Path:
    figure = Figure(figsize=(4.8, 4.4))
    axes = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        labels, probabilities.argmax(axis=1), labels=list(range(len(class_names))),
        display_labels=class_names, ax=axes, colorbar=False,
    )
    axes.set_title(title, fontsize=9)
    return _save(figure, path)


def plot_roc(labels: np.ndarray, oof: dict[str, np.ndarray], positive: int, threshold_points: dict[str, tuple[float, float]], path: Path) -> Path:
    """Out-of-fold ROC of positive-vs-rest per backbone, with the chosen operating point."""
    figure = Figure(figsize=(4.8, 4.4))
    axes = figure.add_subplot()
    for name, probabilities in oof.items():
        RocCurveDisplay.from_predictions(labels == positive, probabilities[:, positive], name=name, ax=axes)
        if name in threshold_points:
            sensitivity, specificity = threshold_points[name]
            axes.plot([1 - specificity], [sensitivity], "o", color="black")
    axes.set_title("out-of-fold ROC, positive class vs rest (dot: operating point)", fontsize=8)
    return _save(figure, path)
