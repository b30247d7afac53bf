"""The shared preprocessing matches each backbone family's Keras preprocess_input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.preprocess import (
    Normalisation,
    classifier_views,
    normalise,
    prepare_pixels,
)


@pytest.mark.parametrize(
    ("mode", "keras_module"),
    [
        (Normalisation.TF, "mobilenet_v2"),
        (Normalisation.TORCH, "densenet"),
        (Normalisation.CAFFE, "resnet50"),
        (Normalisation.RAW, "efficientnet"),
    ],
)
def test_normalise_matches_keras(mode, keras_module):
    import keras

    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.float32)
    expected = getattr(keras.applications, keras_module).preprocess_input(pixels.copy())
    assert np.allclose(normalise(pixels, mode), np.asarray(expected), atol=1e-4)


def test_prepare_resizes_whole_photo_without_cropping():
    image = Image.new("RGB", (400, 100), (10, 20, 30))
    image.paste((250, 0, 0), (0, 0, 20, 100))  # a red band at the far left edge
    pixels = prepare_pixels(image, (224, 224))
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    assert pixels[:, 0, 0].mean() > 200  # the edge survives: no centre crop


def test_prepared_pixels_normalise_to_floats():
    batch = normalise(prepare_pixels(Image.new("RGB", (300, 300)), (224, 224)), "tf")
    assert batch.shape == (224, 224, 3) and batch.dtype == np.float32
    assert batch.min() == -1.0


def test_classifier_views_are_the_photo_then_its_mirror_image():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    views = classifier_views(pixels, "mirror")
    assert views.shape == (2, 2, 3, 3)
    assert (views[0] == pixels).all()
    assert (views[1] == pixels[:, ::-1]).all()  # left-right: columns reversed, rows and channels kept
    assert (classifier_views(pixels, "none") == pixels[np.newaxis]).all()
