"""Every selectable heatmap method runs on the bundle's float model and gives a usable map."""

from __future__ import annotations

import numpy as np
import pytest

from model.bundle import load_bundle
from model.explain import Explainer, HeatmapMethod
from model.imaging import decode_image
from model.preprocess import normalise, prepare_pixels


@pytest.fixture(scope="module")
def photo_batch(test_bundle_path, shared_photo_paths):
    manifest = load_bundle(test_bundle_path).manifest
    image = decode_image(shared_photo_paths[0].read_bytes())
    return normalise(prepare_pixels(image, manifest.input_size), manifest.normalisation)[np.newaxis]


@pytest.mark.parametrize("method", list(HeatmapMethod))
def test_each_method_gives_a_normalised_map(test_bundle_path, photo_batch, method):
    bundle = load_bundle(test_bundle_path)
    explainer = Explainer(bundle.keras_path, method, layer=bundle.manifest.heatmap_layer)
    # The predicted class, as the service explains for a negative screen (Grad-CAM's ReLU can
    # leave a class with no positive evidence blank).
    import keras

    predicted = int(np.argmax(keras.saving.load_model(bundle.keras_path, compile=False)(photo_batch)))
    heatmap = explainer.explain(photo_batch, predicted)
    assert heatmap.ndim == 2 and min(heatmap.shape) >= 7
    assert heatmap.min() == pytest.approx(0.0) and heatmap.max() == pytest.approx(1.0)
    assert np.isfinite(heatmap).all()


def test_compiled_gradcam_plus_plus_matches_the_eager_library_call(test_bundle_path, photo_batch):
    """The traced graph computes what tf-keras-vis computes when called the usual way."""
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    bundle = load_bundle(test_bundle_path)
    explainer = Explainer(bundle.keras_path, HeatmapMethod.GRADCAM_PLUS_PLUS, layer=bundle.manifest.heatmap_layer)
    fast = explainer.explain(photo_batch, 2)

    import keras

    model = keras.saving.load_model(bundle.keras_path, compile=False)
    eager = GradcamPlusPlus(model, model_modifier=ReplaceToLinear(), clone=True)(
        CategoricalScore([2]), photo_batch, penultimate_layer=bundle.manifest.heatmap_layer,
        expand_cam=False, normalize_cam=False,
    )[0].numpy()
    eager = (eager - eager.min()) / (eager.max() - eager.min())
    assert np.allclose(fast, eager, atol=1e-3)
