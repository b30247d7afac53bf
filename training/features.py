"""Frozen-backbone embeddings, computed once per backbone per run and cached on disk.

The frozen phase of every fold only needs the pooled embedding (`features` layer) of each photo,
of its mirror image (the second test-time view, `model.preprocess.classifier_views`) and of a few
augmented copies, so they are computed once for the whole data set and reused by all folds; the
augmented copies are used only when their photo is in a training fold.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from model.preprocess import ViewAveraging, classifier_views, normalise
from training.backbones import BackboneSpec, build_classifier

log = logging.getLogger(__name__)
BATCH_SIZE = 32


@dataclass(frozen=True)
class Embeddings:
    plain: np.ndarray  # (N, D) embedding of each photo
    augmented: np.ndarray  # (N, copies, D) embeddings of augmented copies
    mirrored: np.ndarray  # (N, D) embedding of each photo's mirror image

    def views(self, index: np.ndarray, averaging: ViewAveraging | str) -> list[np.ndarray]:
        """Embeddings of the test-time views of the photos at `index`, one (n, D) array per view."""
        if ViewAveraging(averaging) is ViewAveraging.MIRROR:
            return [self.plain[index], self.mirrored[index]]
        return [self.plain[index]]


def mirror_images(pixels: np.ndarray) -> np.ndarray:
    """The second test-time view of every photo in uint8 pixels (N,H,W,3)."""
    return np.stack([classifier_views(p, ViewAveraging.MIRROR)[1] for p in pixels]) if len(pixels) else pixels


def feature_model(classifier):
    """The classifier truncated at its pooled `features` layer (same weights, no copy)."""
    import keras

    return keras.Model(classifier.input, classifier.get_layer("features").output)


def embed(extractor, pixels: np.ndarray, spec: BackboneSpec, desc: str = "embedding") -> np.ndarray:
    """Embeddings of uint8 pixels (..., H, W, 3) -> (..., D), normalised as in serving."""
    lead_shape = pixels.shape[:-3]
    flat = pixels.reshape(-1, *pixels.shape[-3:])
    if len(flat) == 0:
        return np.zeros((*lead_shape, int(extractor.output_shape[-1])), np.float32)
    chunks = []
    for start in tqdm(range(0, len(flat), BATCH_SIZE), desc=desc, unit="batch", leave=False):
        batch = normalise(flat[start : start + BATCH_SIZE], spec.normalisation)
        chunks.append(np.asarray(extractor(batch, training=False)))
    return np.concatenate(chunks).reshape(*lead_shape, -1).astype(np.float32)


def served_embeddings(extractor, spec: BackboneSpec, plain_pixels: np.ndarray, augmented_pixels: np.ndarray,
                      quantization: str) -> Embeddings:
    """Embeddings from `extractor` converted to TFLite in `quantization` mode and run with LiteRT."""
    from training.export import convert_to_tflite
    from training.quantize import calibration_batches, tflite_outputs

    calibration = calibration_batches(plain_pixels, augmented_pixels, spec.normalisation)
    flatbuffer = convert_to_tflite(extractor, quantization, calibration)
    shape = plain_pixels.shape[1:]
    augmented = tflite_outputs(flatbuffer, augmented_pixels.reshape(-1, *shape), spec.normalisation)
    return Embeddings(
        plain=tflite_outputs(flatbuffer, plain_pixels, spec.normalisation),
        augmented=augmented.reshape(*augmented_pixels.shape[:2], -1),
        mirrored=tflite_outputs(flatbuffer, mirror_images(plain_pixels), spec.normalisation),
    )


def cache_key(
    spec: BackboneSpec, weights: str | None, paths: list[Path], copies: int, seed: int, quantization: str | None = None
) -> str:
    """Changes whenever the backbone, its weights, its serving mode, the photos or the augmentation change."""
    parts = {
        "backbone": spec.name,
        "input_size": spec.input_size,
        "embedding_norm": spec.embedding_norm,
        "quantization": quantization or "float",
        "weights": weights or "none",
        "copies": copies,
        "seed": seed,
        "views": "plain+mirrored",
        "photos": [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def compute_embeddings(
    spec: BackboneSpec,
    weights: str | None,
    plain_pixels: np.ndarray,
    augmented_pixels: np.ndarray,
    cache_path: Path | None = None,
    seed: int = 0,
    quantization: str | None = None,
) -> Embeddings:
    """Embeddings of all photos and their augmented copies, read from `cache_path` when present.

    With `quantization` (a TFLite mode) they come from the feature extractor converted as the
    service runs it, calibrated on all these photos and copies (see training.quantize)."""
    if cache_path is not None and cache_path.is_file():
        with np.load(cache_path) as cached:
            log.info("embeddings read from cache path=%s", cache_path)
            return Embeddings(cached["plain"], cached["augmented"], cached["mirrored"])
    classifier = build_classifier(spec, 2, weights=weights, seed=seed)
    extractor = feature_model(classifier)
    if quantization is None:
        result = Embeddings(
            plain=embed(extractor, plain_pixels, spec, f"{spec.name} photos"),
            augmented=embed(extractor, augmented_pixels, spec, f"{spec.name} augmented"),
            mirrored=embed(extractor, mirror_images(plain_pixels), spec, f"{spec.name} mirrored"),
        )
    else:
        result = served_embeddings(extractor, spec, plain_pixels, augmented_pixels, quantization)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache_path, plain=result.plain, augmented=result.augmented, mirrored=result.mirrored)
    return result
