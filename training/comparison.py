"""The paper's comparison: every backbone of a study side by side, in-source and across sources,
with what it costs to serve (int8 size and latency) and to train.

One row per backbone; `comparison_markdown` is the table in summary.md, `plot_comparison` the
figure (comparison.png): in-source AUC against leave-one-source-out AUC, marker size by int8 size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from training.crosssource import CrossSource
from training.quantize import litert_latency_ms
from training.report import _save


@dataclass(frozen=True)
class ServedCost:
    """A backbone with its head as the service runs it: int8 flatbuffer size and one LiteRT call."""

    size_mb: float
    latency_ms: float


def served_cost(spec, weights: str | None, num_classes: int, quantization: str, calibration, sample: np.ndarray
                ) -> ServedCost:
    """Convert the backbone with a head (the head's values do not change size or speed) as served,
    and time one call on `sample` (one normalised photo, 1xHxWx3)."""
    from model.inference import Classifier
    from training.backbones import build_classifier
    from training.export import convert_to_tflite

    flatbuffer = convert_to_tflite(build_classifier(spec, num_classes, weights=weights), quantization, calibration)
    classifier = Classifier(model_content=flatbuffer, num_threads=1)
    return ServedCost(len(flatbuffer) / 1e6, litert_latency_ms(classifier, sample))


@dataclass(frozen=True)
class BackboneComparison:
    backbone: str
    in_source: dict  # training.evaluate.mean_std of the in-source folds
    cross_source: CrossSource | None
    cross_source_auc: float  # pooled over every photo's leave-one-source-out P(mpox)
    cost: ServedCost
    training_seconds: float  # mean over in-source folds: head (+ fine-tuning) on cached embeddings

    def as_dict(self) -> dict:
        return {"backbone": self.backbone, "in_source": self.in_source,
                "cross_source_auc": self.cross_source_auc, "int8_size_mb": self.cost.size_mb,
                "int8_latency_ms": self.cost.latency_ms, "training_seconds": self.training_seconds}


def pooled_auc(is_mpox: np.ndarray, mpox_probability: np.ndarray) -> float:
    is_mpox = np.asarray(is_mpox, bool)
    return float(roc_auc_score(is_mpox, mpox_probability)) if is_mpox.any() and (~is_mpox).any() else math.nan


def _mean_std(stats: dict, metric: str) -> str:
    value = stats[metric]
    return "-" if math.isnan(value["mean"]) else f"{value['mean']:.3f} ± {value['std']:.3f}"


def comparison_markdown(rows: list[BackboneComparison]) -> str:
    """In-source (mean ± std over folds) and cross-source (per held-out source, at a threshold chosen
    on the other sources) figures, int8 size and latency, training time: one row per backbone."""
    lines = [
        "| backbone | in-source accuracy | macro F1 | mpox AUC | sensitivity / specificity at threshold "
        "| cross-source AUC (pooled) | held-out source: AUC, sensitivity at specificity >= 0.80 "
        "| look-alikes called mpox (fold threshold) "
        "| int8 MB | int8 ms a call | training s a fold |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cross = row.cross_source
        sensitivities = lookalikes = "-"
        if cross is not None:
            sensitivities = "; ".join(
                f"{f.source} {f.auc:.2f}, {f.sensitivity_at_floor.value:.2f} "
                f"({f.sensitivity_at_floor.hits}/{f.sensitivity_at_floor.total})"
                for f in cross.at_fold_threshold if f.sensitivity_at_floor is not None)
            lookalikes = "; ".join(
                f"{f.source} {f.called_mpox.value:.2f} ({f.called_mpox.hits}/{f.called_mpox.total})"
                for f in cross.at_fold_threshold if f.sensitivity.total == 0)
        auc = "-" if math.isnan(row.cross_source_auc) else f"{row.cross_source_auc:.3f}"
        lines.append(
            f"| {row.backbone} | {_mean_std(row.in_source, 'accuracy')} | {_mean_std(row.in_source, 'macro_f1')} "
            f"| {_mean_std(row.in_source, 'positive_auc')} | {_mean_std(row.in_source, 'sensitivity_at_threshold')} / "
            f"{_mean_std(row.in_source, 'specificity_at_threshold')} | {auc} | {sensitivities} | {lookalikes} "
            f"| {row.cost.size_mb:.2f} | {row.cost.latency_ms:.2f} | {row.training_seconds:.1f} |")
    return "\n".join(lines) + "\n"


def plot_comparison(rows: list[BackboneComparison], path: Path) -> Path:
    """In-source against cross-source mpox AUC per backbone; marker area grows with int8 size."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5))
    axes = figure.subplots()
    for row in rows:
        x, y = row.in_source["positive_auc"]["mean"], row.cross_source_auc
        axes.scatter([x], [y], s=40 + 60 * row.cost.size_mb, alpha=0.7)
        axes.annotate(f"{row.backbone}\n{row.cost.size_mb:.1f} MB, {row.cost.latency_ms:.1f} ms", (x, y),
                      fontsize=7, xytext=(4, 4), textcoords="offset points")
    axes.plot([0.5, 1], [0.5, 1], color="grey", linewidth=0.8, linestyle="--")
    axes.set_xlabel("in-source mpox AUC (mean over folds)")
    axes.set_ylabel("leave-one-source-out mpox AUC (pooled)")
    axes.set_title("Backbones: in-source against cross-source")
    return _save(figure, path)
