"""Quantization: the calibration set, the served representation, and what each mode costs.

MobileNetV2-0.35's body loses precision under int8 (its pooled embedding moves by ~28 %, even
with 16-bit activations), enough to flip ~1 answer in 10 of a head fitted on float embeddings.
So the study fits and scores its heads on the embedding the SERVED body computes (the TFLite
feature extractor in the serving mode, calibrated on every photo and augmented copy, exactly as
the exported model is): the figures and thresholds then describe the model that is served.

The study table: for one classifier trained without the held-out photos, convert it in each
mode, run it with LiteRT as the service does (`model.inference.Classifier`), and compare with
the float Keras model and with the study's own predictions on the held-out photos.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from model.inference import Classifier
from model.preprocess import Normalisation, ViewAveraging, classifier_views, normalise
from training.export import convert_to_tflite

LATENCY_RUNS = 30
# Calibration images at most: conversion time grows with them (~20 s for 465 here), and each
# fold's model is converted; ranges from 512 images of the same photos are as good.
CALIBRATION_LIMIT = 512


def calibration_batches(pixels: np.ndarray, augmented: np.ndarray, mode: Normalisation, limit: int = CALIBRATION_LIMIT):
    """A callable yielding every photo and augmented copy (evenly thinned to `limit`), normalised,
    one per batch: the int8 calibration set."""
    every = np.concatenate([pixels, augmented.reshape(-1, *pixels.shape[1:])])
    if len(every) > limit:
        every = every[np.linspace(0, len(every) - 1, limit).astype(int)]
    return lambda: (normalise(p, mode)[np.newaxis] for p in every)


def tflite_outputs(data: bytes, inputs: np.ndarray, normalisation: Normalisation) -> np.ndarray:
    """Raw float outputs of a TFLite model for uint8 pixels, run by the service's own Classifier."""
    classifier = Classifier(model_content=data, num_threads=1)
    outputs = [classifier.outputs(normalise(pixels, normalisation)[np.newaxis]) for pixels in inputs]
    empty = np.zeros((0, classifier.output_size), np.float32)
    return np.stack(outputs).astype(np.float32) if outputs else empty


def served_probabilities(keras_model, mode: str, calibration, pixels: np.ndarray, normalisation: Normalisation,
                         averaging: ViewAveraging | str = ViewAveraging.NONE) -> np.ndarray:
    """Probabilities of `keras_model` once converted as served, for uint8 pixels (N,H,W,3),
    averaged over the test-time views as the service does."""
    classifier = Classifier(model_content=convert_to_tflite(keras_model, mode, calibration), num_threads=1)
    return served_view_probabilities(classifier, pixels, normalisation, averaging)


def served_view_probabilities(classifier: Classifier, pixels: np.ndarray, normalisation: Normalisation,
                              averaging: ViewAveraging | str) -> np.ndarray:
    """The service's probabilities (`Classifier.predict_views`) for uint8 pixels (N,H,W,3)."""
    return np.stack([
        classifier.predict_views(normalise(classifier_views(p, averaging), normalisation)) for p in pixels])


def keras_view_probabilities(keras_model, pixels: np.ndarray, normalisation: Normalisation,
                             averaging: ViewAveraging | str) -> np.ndarray:
    """A Keras model's probabilities for uint8 pixels (N,H,W,3), averaged over the test-time views."""
    views = np.stack([classifier_views(p, averaging) for p in pixels], axis=1)
    return np.mean([keras_model.predict(normalise(v, normalisation), verbose=0) for v in views], axis=0)


def litert_call_times_ms(classifier: Classifier, batch: np.ndarray, runs: int = LATENCY_RUNS,
                         warm_up: int = 1) -> np.ndarray:
    """Wall time of each of `runs` LiteRT calls on `batch` (one view), after `warm_up` calls."""
    for _ in range(warm_up):
        classifier.predict(batch)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        classifier.predict(batch)
        times[i] = (time.perf_counter() - start) * 1000
    return times


def litert_latency_ms(classifier: Classifier, batch: np.ndarray, runs: int = LATENCY_RUNS) -> float:
    """Median wall time of one LiteRT call, after a warm-up call."""
    return float(np.median(litert_call_times_ms(classifier, batch, runs)))


def quantization_study(
    keras_model,
    normalisation: Normalisation,
    calibration,
    test_pixels: np.ndarray,
    test_labels: np.ndarray,
    study_probs: np.ndarray,
    positive: int,
    folder: Path,
    modes: tuple[str, ...] = ("fp32", "dynamic", "fp16", "int8"),
    averaging: ViewAveraging | str = ViewAveraging.NONE,
) -> list[dict]:
    """One row per mode: size, LiteRT latency (one call: one view), held-out accuracy, and
    agreement / largest change in P(positive) against the float Keras model and against the
    study's predictions (`study_probs`: the head on the served-mode embedding, what the figures
    describe). Probabilities are averaged over the test-time views, as served."""
    folder.mkdir(parents=True, exist_ok=True)
    float_probs = keras_view_probabilities(keras_model, test_pixels, normalisation, averaging)
    latency_input = normalise(test_pixels[:1], normalisation)

    def row(mode: str, probs: np.ndarray, size_kb: float | None, latency_ms: float | None) -> dict:
        predicted = probs.argmax(axis=1)
        return {
            "mode": mode, "size_kb": size_kb, "latency_ms": latency_ms,
            "accuracy": float((predicted == test_labels).mean()),
            "agreement": float((predicted == float_probs.argmax(axis=1)).mean()),
            "max_probability_change": float(np.abs(probs[:, positive] - float_probs[:, positive]).max()),
            "study_agreement": float((predicted == study_probs.argmax(axis=1)).mean()),
            "study_max_probability_change": float(np.abs(probs[:, positive] - study_probs[:, positive]).max()),
        }

    rows = [row("keras float32", float_probs, None, None)]
    for mode in tqdm(modes, desc="quantization", unit="mode"):
        path = folder / f"model_{mode}.tflite"
        path.write_bytes(convert_to_tflite(keras_model, mode, calibration))
        classifier = Classifier(path, num_threads=1)
        probs = served_view_probabilities(classifier, test_pixels, normalisation, averaging)
        latency = round(litert_latency_ms(classifier, latency_input), 2)
        rows.append(row(mode, probs, round(path.stat().st_size / 1024, 1), latency))
    return rows


def quantization_markdown(rows: list[dict], held_out: int, served_mode: str, positive_class: str,
                          float_embeddings: bool = False) -> str:
    body = "float" if float_embeddings else served_mode
    lines = [
        "## Quantization",
        "",
        f"Held-out photos: {held_out} (a group-aware split; the model never saw them). The head was fitted "
        f"on the `{body}` body's embedding, as in the study; \"study\" is that head on that embedding "
        "(what the cross-validated figures describe), \"float\" the same head on the float Keras body. "
        f"Δp: largest change in P({positive_class}). Latency: median of one LiteRT call, 1 thread, this machine.",
        "",
        "| model | size (KB) | latency (ms) | accuracy | agreement with study | max Δp vs study "
        "| agreement with float | max Δp vs float |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = "-" if row["size_kb"] is None else f"{row['size_kb']:.1f}"
        latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.2f}"
        name = f"{row['mode']} (served)" if row["mode"] == served_mode else row["mode"]
        lines.append(
            f"| {name} | {size} | {latency} | {row['accuracy']:.3f} | {row['study_agreement']:.3f} | "
            f"{row['study_max_probability_change']:.3f} | {row['agreement']:.3f} | {row['max_probability_change']:.3f} |"
        )
    return "\n".join(lines) + "\n"
