"""Every registered backbone: the keras.applications constructor exists, our normalisation is the
one its preprocess_input applies, it builds FLAT (tf-keras-vis needs that), and Grad-CAM++ runs on
the light ones after a .keras round trip. Built with weights=None at small inputs to stay fast."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from model.preprocess import normalise
from training.backbones import BACKBONES, build_classifier, get_backbone, resolve_weights

pytestmark = pytest.mark.timeout(300)

# keras.applications module holding each constructor's preprocess_input
PREPROCESS_MODULE = {
    "MobileNet": "mobilenet", "MobileNetV2": "mobilenet_v2", "MobileNetV3Small": "mobilenet_v3", "MobileNetV3Large": "mobilenet_v3",
    "EfficientNetB0": "efficientnet", "ResNet50": "resnet50", "DenseNet121": "densenet", "VGG16": "vgg16",
    "InceptionV3": "inception_v3", "Xception": "xception",
}
SMALLEST_INPUT = {"InceptionV3": 75, "Xception": 71}  # Keras' minimum sizes; 32 px elsewhere
HEAVY = {"vgg16", "resnet50", "densenet121", "inception_v3", "xception"}  # no Grad-CAM run (time)
# one per family: alpha does not change the architecture's layout
FAMILIES = ["mobilenet_v1_075", "mobilenet_v2_035", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", *sorted(HEAVY)]


def test_every_family_is_registered_and_unknown_names_are_refused():
    constructors = {spec.constructor for spec in BACKBONES.values()}
    assert constructors == set(PREPROCESS_MODULE)
    assert {get_backbone(name).constructor for name in FAMILIES} == constructors
    with pytest.raises(ValueError, match="unknown backbone"):
        get_backbone("resnet_9000")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_spec_matches_keras_constructor_and_its_preprocess_input(name):
    import keras

    spec = BACKBONES[name]
    assert callable(getattr(keras.applications, spec.constructor))
    module = getattr(keras.applications, PREPROCESS_MODULE[spec.constructor])
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    expected = module.preprocess_input(pixels.astype(np.float32).copy())
    np.testing.assert_allclose(normalise(pixels, spec.normalisation), expected, rtol=1e-5, atol=1e-4)


def _small(name: str):
    spec = get_backbone(name)
    return dataclasses.replace(spec, input_size=SMALLEST_INPUT.get(spec.constructor, 32))


@pytest.mark.parametrize("name", FAMILIES)
def test_family_builds_flat_with_named_head(name, tmp_path):
    import keras

    spec = _small(name)
    model = build_classifier(spec, 3, weights=None)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "backbone nested: not flat"
    assert model.output_shape == (None, 3)
    assert model.get_layer("features") is not None and model.get_layer("predictions") is not None
    if spec.heatmap_layer:
        model.get_layer(spec.heatmap_layer)
    if name in HEAVY:
        return
    from model.explain import Explainer

    path = tmp_path / "model.keras"
    model.save(path)
    explainer = Explainer(path, layer=spec.heatmap_layer)
    batch = normalise(np.random.default_rng(1).integers(0, 256, (1, spec.input_size, spec.input_size, 3),
                                                        dtype=np.uint8), spec.normalisation)
    heatmap = explainer.explain(batch.astype(np.float32), 1)
    assert heatmap.ndim == 2 and np.isfinite(heatmap).all() and 0 <= heatmap.min() <= heatmap.max() <= 1


def test_resolve_weights_imagenet_prefers_keras_cache(tmp_path, monkeypatch):
    spec = get_backbone("mobilenet_v2_035")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_weights(spec, "imagenet", None) == "imagenet"  # not cached: Keras downloads
    cached = tmp_path / ".keras" / "models" / spec.weights_file
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"h5")
    assert resolve_weights(spec, "imagenet", None) == str(cached)
    assert resolve_weights(spec, "none", None) is None


def test_resolve_weights_file_and_weights_dir(tmp_path):
    spec = get_backbone("resnet50")
    weights = tmp_path / "mine.h5"
    weights.write_bytes(b"h5")
    assert resolve_weights(spec, str(weights), None) == str(weights)
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_weights(spec, str(tmp_path / "absent.h5"), None)
    with pytest.raises(FileNotFoundError) as missing:
        resolve_weights(spec, "imagenet", tmp_path)
    assert spec.weights_file in str(missing.value) and "--weights" in str(missing.value)
    (tmp_path / spec.weights_file).write_bytes(b"h5")
    assert resolve_weights(spec, "imagenet", tmp_path) == str(tmp_path / spec.weights_file)


def test_every_backbone_of_the_shared_weights_loads_them(tmp_path):
    """The comparison's five backbones: each spec names its file in ../shared/weights, which loads."""
    from training.backbones import SHARED_WEIGHTS_BACKBONES

    folder = Path(__file__).resolve().parent.parent.parent / "shared" / "weights"
    if not folder.is_dir():
        pytest.skip("../shared/weights is not present")
    for name in SHARED_WEIGHTS_BACKBONES:
        spec = get_backbone(name)
        weights = resolve_weights(spec, "imagenet", folder)
        model = build_classifier(spec, 2, weights=weights)
        assert model.input_shape[1:3] == (spec.input_size, spec.input_size)
        assert model.get_layer("features").output.shape[-1] > 100, name


def test_rms_embedding_is_the_pooled_direction_and_serves_as_int8_with_heatmaps(tmp_path):
    """--embedding-norm rms: `features` is the pooled embedding scaled to unit root mean square,
    inside the model, so the int8 model and the Keras model for heatmaps read what the head read."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from model.explain import Explainer
    from training.export import convert_to_tflite, with_embedding_output
    from training.features import feature_model

    spec = dataclasses.replace(_small("mobilenet_v2_035"), input_size=64, embedding_norm="rms")
    model = build_classifier(spec, 3, weights=None)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "backbone nested: not flat"
    batch = normalise(np.random.default_rng(2).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8),
                      spec.normalisation).astype(np.float32)
    features = feature_model(model).predict(batch, verbose=0)
    pooled = keras.Model(model.input, model.get_layer("pooled").output).predict(batch, verbose=0)
    np.testing.assert_allclose(np.sqrt((features ** 2).mean(axis=1)), 1.0, rtol=1e-4)
    np.testing.assert_allclose(features, pooled / np.sqrt((pooled ** 2).mean(axis=1, keepdims=True)), rtol=1e-3, atol=1e-5)

    interpreter = Interpreter(model_content=convert_to_tflite(
        with_embedding_output(model), "int8", lambda: (batch[i:i + 1] for i in range(len(batch)))))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch[:1])
    interpreter.invoke()
    outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    assert sorted(o.shape[-1] for o in outputs) == [3, features.shape[1]]

    path = tmp_path / "model.keras"
    model.save(path)
    heatmap = Explainer(path, layer=spec.heatmap_layer).explain(batch[:1], 1)
    assert heatmap.ndim == 2 and np.isfinite(heatmap).all()


def test_unknown_embedding_norm_is_refused():
    with pytest.raises(ValueError, match="embedding_norm"):
        build_classifier(dataclasses.replace(_small("mobilenet_v2_035"), embedding_norm="l3"), 2, weights=None)
