"""XAI validation: a grid of Grad-CAM++ heatmaps on held-out photos, right and wrong answers.

Uses the service's own `model.explain.Explainer` and `model.render.render_overlay`, so a
clinician judges exactly the pictures people would receive.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from model.explain import Explainer  # noqa: E402
from model.preprocess import normalise  # noqa: E402
from model.render import render_overlay  # noqa: E402

PER_KIND = 4  # photos shown per row: correct / wrong


def pick(labels: np.ndarray, probabilities: np.ndarray, per_kind: int = PER_KIND) -> tuple[list[int], list[int]]:
    """Most confident correct answers (one class after another) and most confident mistakes."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = [int(i) for i in np.argsort(-confidence) if predicted[i] == labels[i]]
    # Round-robin over classes so the correct row is not all one class.
    by_class: dict[int, list[int]] = {}
    for i in correct:
        by_class.setdefault(int(labels[i]), []).append(i)
    mixed: list[int] = []
    for rank in range(max((len(v) for v in by_class.values()), default=0)):
        mixed += [by_class[c][rank] for c in sorted(by_class) if rank < len(by_class[c])]
    wrong = [int(i) for i in np.argsort(-confidence) if predicted[i] != labels[i]]
    return mixed[:per_kind], wrong[:per_kind]


def heatmap_gallery(
    keras_path: Path,
    heatmap_layer: str | None,
    images: list[Image.Image],
    pixels: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    normalisation,
    path: Path,
) -> Path:
    """One PNG: top row correctly classified, bottom row misclassified held-out photos."""
    explainer = Explainer(keras_path, "gradcam++", layer=heatmap_layer)
    correct, wrong = pick(labels, probabilities)
    figure = Figure(figsize=(3 * PER_KIND, 7.2))
    for row, (title, chosen) in enumerate((("correct", correct), ("wrong", wrong))):
        for column in range(PER_KIND):
            axes = figure.add_subplot(2, PER_KIND, row * PER_KIND + column + 1)
            axes.axis("off")
            if column >= len(chosen):
                axes.set_title(f"({title}: none)" if column == 0 else "", fontsize=8)
                continue
            i = chosen[column]
            predicted = int(probabilities[i].argmax())
            heatmap = explainer.explain(normalise(pixels[i], normalisation)[np.newaxis], predicted)
            overlay = Image.open(io.BytesIO(render_overlay(images[i], heatmap)))
            axes.imshow(overlay)
            axes.set_title(
                f"{title}: true {class_names[labels[i]]}\npred {class_names[predicted]} "
                f"({probabilities[i, predicted]:.2f})",
                fontsize=8,
            )
    figure.suptitle("Grad-CAM++ on held-out photos (explained class = predicted class)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
