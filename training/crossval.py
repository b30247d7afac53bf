"""Cross-validation of one backbone: folds (resumable), out-of-fold predictions, final fit.

The folds are any (train, test) splits: group-aware k-fold in one source, or one source held
out at a time (training.crosssource).

Each fold writes `folds/<backbone>/fold_<k>.json` (metrics, test photos, probabilities) as soon
as it finishes; a rerun with the same configuration reads finished folds instead of redoing them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from model.preprocess import normalise
from training.backbones import BackboneSpec, build_classifier
from training.evaluate import fold_metrics, operating_threshold
from training.features import Embeddings
from training.quantize import calibration_batches, keras_view_probabilities, served_probabilities
from training.train import (
    HeadConfig,
    balance_weights,
    balanced_class_weight,
    fine_tune,
    fit_head,
    group_splits,
    install_head,
    view_probabilities,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyInputs:
    """Everything a fold needs, for one backbone."""

    spec: BackboneSpec
    weights: str | None
    class_names: tuple[str, ...]
    positive_class: str
    labels: np.ndarray
    groups: np.ndarray
    embeddings: Embeddings
    pixels: np.ndarray  # uint8 (N,H,W,3), used by fine-tuning
    augmented_pixels: np.ndarray  # uint8 (N,copies,H,W,3)
    head: HeadConfig
    target_sensitivity: float
    fine_tune_layers: int = 0
    fine_tune_epochs: int = 10
    seed: int = 0
    serving_quantization: str | None = None  # when set, each fold also scores its model as served
    threshold_rule: str = "conformal"  # see training.evaluate.operating_threshold
    sources: np.ndarray | None = None  # each photo's data set, for head.selection == "sources"

    @property
    def calibration(self):
        """The int8 calibration set: every photo and augmented copy (labels unused)."""
        return calibration_batches(self.pixels, self.augmented_pixels, self.spec.normalisation)

    @property
    def positive_index(self) -> int:
        return self.class_names.index(self.positive_class)


def _fine_tune_on(inputs: StudyInputs, classifier, index: np.ndarray) -> np.ndarray:
    """Fine-tune `classifier` on the photos at `index` (+ augmented), early-stopped on a group-aware
    inner validation split of them; returns the validation photos' indices."""
    inner_train, inner_val = group_splits(inputs.labels[index], inputs.groups[index], inputs.head.inner_folds, inputs.seed)[0]
    fit_index, val_index = index[inner_train], index[inner_val]
    copies = inputs.augmented_pixels.shape[1]
    shape = inputs.pixels.shape[1:]
    pixels = np.concatenate([inputs.pixels[fit_index], inputs.augmented_pixels[fit_index].reshape(-1, *shape)])
    targets = np.concatenate([inputs.labels[fit_index], np.repeat(inputs.labels[fit_index], copies)])
    mode = inputs.spec.normalisation
    # the frozen head's weighting, so fine-tuning answers the same question (training.train.balance_weights)
    weights = balance_weights(inputs.labels, inputs.sources, fit_index, copies, inputs.head.balance, inputs.positive_index)
    fine_tune(
        classifier,
        (normalise(pixels, mode), targets),
        (normalise(inputs.pixels[val_index], mode), inputs.labels[val_index]),
        inputs.fine_tune_layers,
        inputs.fine_tune_epochs,
        balanced_class_weight(targets, len(inputs.class_names)) if weights is None else None,
        sample_weight=weights,
    )
    return val_index


def _fold_classifier(inputs: StudyInputs, fitted):
    """The fold's flat Keras model: the backbone with the fitted head in `predictions`."""
    num_classes = len(inputs.class_names)
    classifier = build_classifier(inputs.spec, num_classes, weights=inputs.weights, seed=inputs.seed)
    install_head(classifier, fitted.model, num_classes)
    return classifier


def run_fold(inputs: StudyInputs, fold: int, train: np.ndarray, test: np.ndarray) -> dict:
    """Train on `train`, choose the threshold on inner predictions, score on `test`.

    The threshold always comes from the frozen head's inner out-of-fold predictions of the
    training photos: fine-tuning's early-stopping split is too small to choose it (it gave
    thresholds far too high, sensitivity 0.54), and inner fine-tuning per fold is too costly.
    With `serving_quantization`, the fold's model is also converted as served and its test
    probabilities kept (`served_probabilities`), so the operating point can be checked on it."""
    num_classes = len(inputs.class_names)
    started = time.perf_counter()
    fitted = fit_head(inputs.embeddings, inputs.labels, inputs.groups, train, num_classes, inputs.head, inputs.seed,
                      inputs.sources, inputs.positive_index)
    classifier = None
    if inputs.fine_tune_layers > 0:
        classifier = _fold_classifier(inputs, fitted)
        _fine_tune_on(inputs, classifier, train)
    # what training costs once embeddings exist: head (with its inner folds) and any fine-tuning
    training_seconds = time.perf_counter() - started
    if inputs.fine_tune_layers > 0:
        test_probs = keras_view_probabilities(
            classifier, inputs.pixels[test], inputs.spec.normalisation, inputs.head.view_averaging)
    else:
        test_probs = view_probabilities(
            fitted.model, inputs.embeddings, test, num_classes, inputs.head.view_averaging)
    positive = inputs.positive_index
    threshold = operating_threshold(
        inputs.threshold_rule, inputs.labels[train] == positive, fitted.inner_probabilities[:, positive], inputs.target_sensitivity)
    metrics = fold_metrics(inputs.labels[test], test_probs, inputs.class_names, inputs.positive_class, threshold)
    row = {
        "backbone": inputs.spec.name,
        "fold": fold,
        "regularisation": fitted.regularisation,
        "inner_log_loss": fitted.inner_log_loss,
        "training_seconds": training_seconds,
        "test_index": test.tolist(),
        "probabilities": test_probs.tolist(),
        # what chose the threshold, kept so that an ensemble's can be chosen the same way
        "inner_positive_probabilities": fitted.inner_probabilities[:, positive].tolist(),
        **metrics,
    }
    if inputs.serving_quantization:
        classifier = classifier or _fold_classifier(inputs, fitted)
        served = served_probabilities(classifier, inputs.serving_quantization, inputs.calibration,
                                      inputs.pixels[test], inputs.spec.normalisation, inputs.head.view_averaging)
        row["served_probabilities"] = served.tolist()
    return row


def run_folds(
    inputs: StudyInputs, splits: list[tuple[np.ndarray, np.ndarray]], folder: Path, config_key: str
) -> list[dict]:
    """Every fold of one backbone, reading folds already finished under this configuration."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for fold, (train, test) in enumerate(tqdm(splits, desc=f"{inputs.spec.name} folds", unit="fold")):
        path = folder / f"fold_{fold:02d}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("config_key") == config_key:
                log.info("fold resumed backbone=%s fold=%d", inputs.spec.name, fold)
                rows.append(saved)
                continue
        row = {**run_fold(inputs, fold, train, test), "config_key": config_key}
        path.write_text(json.dumps(row, indent=1))
        rows.append(row)
    return rows


def out_of_fold(rows: list[dict], count: int, num_classes: int, key: str = "probabilities") -> np.ndarray:
    """Each photo's probabilities (`key` of the rows) from the fold in which it was a test photo."""
    result = np.full((count, num_classes), np.nan)
    for row in rows:
        if key in row:
            result[np.array(row["test_index"], int)] = np.array(row[key])
    return result


def fit_final(inputs: StudyInputs, index: np.ndarray | None = None):
    """A flat Keras classifier whose head is fitted on the photos at `index` (default: all)."""
    index = np.arange(len(inputs.labels)) if index is None else index
    num_classes = len(inputs.class_names)
    fitted = fit_head(inputs.embeddings, inputs.labels, inputs.groups, index, num_classes, inputs.head, inputs.seed,
                      inputs.sources, inputs.positive_index)
    classifier = _fold_classifier(inputs, fitted)
    if inputs.fine_tune_layers > 0:
        _fine_tune_on(inputs, classifier, index)
    return classifier, fitted
