"""Quantization study: what each TFLite mode costs in quality, memory and time.

For one float Keras classifier trained without the held-out photos: convert it in each mode
(int8 calibrated on real training photos), run it with LiteRT exactly as the service does
(`model.inference.Classifier`), and compare with the float model on the held-out photos.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from model.inference import Classifier
from model.preprocess import Normalisation, normalise
from training.export import convert_to_tflite

REPRESENTATIVE_PHOTOS = 100  # int8 calibration set size (real training photos)
LATENCY_RUNS = 30


def representative(pixels: np.ndarray, mode: Normalisation, limit: int = REPRESENTATIVE_PHOTOS):
    """A callable yielding normalised 1xHxWx3 batches of real training photos (int8 calibration)."""
    chosen = pixels[:limit]
    return lambda: (normalise(p, mode)[np.newaxis] for p in chosen)


def litert_latency_ms(classifier: Classifier, batch: np.ndarray, runs: int = LATENCY_RUNS) -> float:
    """Median wall time of one LiteRT call (1 thread), after a warm-up call."""
    classifier.predict(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.predict(batch)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def quantization_study(
    keras_model,
    normalisation: Normalisation,
    train_pixels: np.ndarray,
    test_pixels: np.ndarray,
    test_labels: np.ndarray,
    folder: Path,
    modes: tuple[str, ...] = ("fp32", "dynamic", "fp16", "int8"),
) -> list[dict]:
    """One row per mode: size, LiteRT latency, held-out accuracy and agreement with float."""
    folder.mkdir(parents=True, exist_ok=True)
    test_inputs = normalise(test_pixels, normalisation)
    float_probs = keras_model.predict(test_inputs, verbose=0)
    float_predicted = float_probs.argmax(axis=1)
    rows = [
        {
            "mode": "keras float32",
            "size_kb": None,
            "latency_ms": None,
            "accuracy": float((float_predicted == test_labels).mean()),
            "agreement": 1.0,
            "max_probability_change": 0.0,
        }
    ]
    for mode in tqdm(modes, desc="quantization", unit="mode"):
        path = folder / f"model_{mode}.tflite"
        path.write_bytes(convert_to_tflite(keras_model, mode, representative(train_pixels, normalisation)))
        classifier = Classifier(path, num_threads=1)
        probs = np.stack([classifier.predict(batch[np.newaxis]) for batch in test_inputs])
        predicted = probs.argmax(axis=1)
        rows.append(
            {
                "mode": mode,
                "size_kb": round(path.stat().st_size / 1024, 1),
                "latency_ms": round(litert_latency_ms(classifier, test_inputs[:1]), 2),
                "accuracy": float((predicted == test_labels).mean()),
                "agreement": float((predicted == float_predicted).mean()),
                "max_probability_change": float(np.abs(probs - float_probs).max()),
            }
        )
    return rows


def quantization_markdown(rows: list[dict], held_out: int) -> str:
    lines = [
        "## Quantization",
        "",
        f"Held-out photos: {held_out} (a group-aware split; the model never saw them). Latency: "
        "median of one LiteRT call, 1 thread, this machine.",
        "",
        "| model | size (KB) | latency (ms) | accuracy | agreement with float | max change in P |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = "-" if row["size_kb"] is None else f"{row['size_kb']:.1f}"
        latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.2f}"
        lines.append(
            f"| {row['mode']} | {size} | {latency} | {row['accuracy']:.3f} | {row['agreement']:.3f} | "
            f"{row['max_probability_change']:.3f} |"
        )
    return "\n".join(lines) + "\n"
