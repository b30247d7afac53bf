"""Build small, real model bundles for tests: a real Keras model, converted to TFLite.

The classifier is MobileNetV2-0.35 with the ImageNet weights from ../shared/weights (random
weights when that file is absent), and a softmax head fitted for a few steps on frozen features
of real photos, so its answers come from a model, never from canned outputs. With
`typicality=True` it carries the typicality check, fitted on the same photos' served embeddings
(on generated skin-like pictures where the shared photos are absent).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from model.bundle import Bundle, BundleManifest, Thresholds
from model.imaging import decode_image
from model.preprocess import ViewAveraging, normalise, prepare_pixels
from training.backbones import build_classifier, get_backbone
from training.export import convert_to_tflite, export_bundle, with_embedding_output

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data" / "mpox-web-2022"
SHARED_WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
CLASSES = ("chickenpox", "measles", "mpox", "normal")


def shared_photos(per_class: int = 6) -> list[tuple[Path, int]]:
    photos: list[tuple[Path, int]] = []
    for index, name in enumerate(CLASSES):
        files = sorted(p for p in (SHARED_DATA / name).iterdir() if p.is_file())
        photos += [(p, index) for p in files[:per_class]]
    return photos


def build_test_bundle(
    folder: Path,
    quantization: str = "int8",
    thresholds: Thresholds | None = None,
    fit_steps: int = 60,
    view_averaging: ViewAveraging = ViewAveraging.MIRROR,  # as the demo
    typicality: bool = False,
) -> Bundle:
    import keras

    spec = get_backbone("mobilenet_v2_035")
    weights = str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else None
    model = build_classifier(spec, len(CLASSES), weights=weights, seed=0)
    size = (spec.input_size, spec.input_size)
    photos = shared_photos() if SHARED_DATA.is_dir() else []
    if photos:
        pixels = np.stack([prepare_pixels(decode_image(p.read_bytes()), size) for p, _ in photos])
        batches = normalise(pixels, spec.normalisation)
        labels = np.array([label for _, label in photos])
        # Fit only the head, quickly: enough for the model's answers to depend on the photo.
        for layer in model.layers:
            layer.trainable = layer.name == "predictions"
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        model.fit(batches, labels, epochs=max(1, fit_steps // 10), batch_size=8, verbose=0)
    else:
        from tests.images import skin_photo

        pixels = np.stack([prepare_pixels(skin_photo(seed=seed), size) for seed in range(24)])
        batches = normalise(pixels, spec.normalisation)
    manifest = BundleManifest(
        model_id="test-mobilenet-v2-035",
        model_version="0.0.1",
        class_names=CLASSES,
        positive_class="mpox",
        input_size=size,
        normalisation=spec.normalisation,
        thresholds=thresholds or Thresholds(positive=0.5, inconclusive=0.3),
        quantization=quantization,
        backbone=spec.name,
        heatmap_layer=spec.heatmap_layer,
        view_averaging=view_averaging,
        metrics={"note": "test bundle; head fitted on a few photos, not evaluated"},
        training_data={"photos": len(photos), "source": "shared/data/mpox-web-2022 (subset)"},
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        code_version="test",
    )
    calibration = lambda: (b[np.newaxis] for b in batches[:16])  # noqa: E731
    if not typicality:
        return export_bundle(folder, model, manifest, representative_batches=calibration)
    from training.typicality import fit_served

    served = convert_to_tflite(with_embedding_output(model), quantization, calibration)
    fit = fit_served(served, pixels, spec.normalisation, view_averaging, np.arange(len(pixels)))
    return export_bundle(folder, model, manifest, calibration, typicality=fit, tflite=served)
