"""Backbones by name: the one factory that training, evaluation and export all use.

Every classifier is built FLAT (the backbone is created on our input tensor and the head sits on
`base.output`), because tf-keras-vis cannot see inside a nested backbone model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.preprocess import Normalisation

EMBEDDING_NORMS = ("none", "rms")  # BackboneSpec.embedding_norm


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one ImageNet backbone from keras.applications."""

    name: str
    constructor: str  # attribute of keras.applications
    input_size: int
    normalisation: Normalisation
    weights_file: str  # the file name Keras caches for include_top=False
    options: dict[str, Any] = field(default_factory=dict)
    heatmap_layer: str | None = None  # the last conv layer Grad-CAM should read
    # "rms": the pooled embedding divided by its root mean square, so the head reads its
    # direction, not its size (held out, msld-v1 ranked 0.83 -> 0.86; docs/STUDY.md).
    embedding_norm: str = "none"


def _mobilenet_v2(alpha: float) -> BackboneSpec:
    # Names: mobilenet_v2 (alpha 1.0), mobilenet_v2_035, mobilenet_v2_05, ...
    suffix = "" if alpha == 1.0 else "_" + f"{alpha:g}".replace(".", "")
    alpha_text = "1.0" if alpha == 1.0 else f"{alpha:g}"  # as in Keras' cache file names
    return BackboneSpec(
        name=f"mobilenet_v2{suffix}",
        constructor="MobileNetV2",
        input_size=224,
        normalisation=Normalisation.TF,
        weights_file=f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha_text}_224_no_top.h5",
        options={"alpha": alpha},
        heatmap_layer="out_relu",
    )


MOBILENET_V1_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}  # as keras.applications.MobileNet writes it


def _mobilenet_v1(alpha: float, size: int) -> BackboneSpec:
    # Names: mobilenet_v1 (alpha 1.0), mobilenet_v1_075, ...; Keras' cache names: mobilenet_7_5_192_tf_no_top.h5
    suffix = "" if alpha == 1.0 else "_" + f"{alpha:g}".replace(".", "")
    return BackboneSpec(
        name=f"mobilenet_v1{suffix}",
        constructor="MobileNet",
        input_size=size,
        normalisation=Normalisation.TF,
        weights_file=f"mobilenet_{MOBILENET_V1_ALPHA_TEXT[alpha]}_{size}_tf_no_top.h5",
        options={"alpha": alpha},
        heatmap_layer="conv_pw_13_relu",
    )


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        _mobilenet_v2(0.35),
        _mobilenet_v2(0.5),
        _mobilenet_v2(1.0),
        _mobilenet_v1(1.0, 224),
        _mobilenet_v1(0.75, 192),
        BackboneSpec(
            "mobilenet_v3_small",
            "MobileNetV3Small",
            224,
            Normalisation.RAW,
            "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        ),
        BackboneSpec(
            "mobilenet_v3_large",
            "MobileNetV3Large",
            224,
            Normalisation.RAW,
            "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        ),
        BackboneSpec(
            "efficientnet_b0", "EfficientNetB0", 224, Normalisation.RAW, "efficientnetb0_notop.h5"
        ),
        BackboneSpec(
            "resnet50",
            "ResNet50",
            224,
            Normalisation.CAFFE,
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        BackboneSpec(
            "densenet121",
            "DenseNet121",
            224,
            Normalisation.TORCH,
            "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        BackboneSpec(
            "vgg16",
            "VGG16",
            224,
            Normalisation.CAFFE,
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        BackboneSpec(
            "inception_v3",
            "InceptionV3",
            299,
            Normalisation.TF,
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        BackboneSpec(
            "xception",
            "Xception",
            299,
            Normalisation.TF,
            "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
    )
}


# The backbones whose ImageNet weights ../shared/weights holds: the study's comparison.
SHARED_WEIGHTS_BACKBONES = ("mobilenet_v2_035", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v1", "mobilenet_v1_075")


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; choose from: {', '.join(sorted(BACKBONES))}"
        ) from None


def resolve_weights(spec: BackboneSpec, weights: str | None, weights_dir: str | Path | None) -> str | None:
    """What to pass as keras.applications' `weights=`.

    weights: 'imagenet' (downloaded when online, or found in ~/.keras/models), 'none', or a file.
    weights_dir: a folder holding Keras' cache file names, for offline machines; it wins.
    """
    if weights_dir is not None:
        candidate = Path(weights_dir) / spec.weights_file
        if not candidate.is_file():
            raise FileNotFoundError(
                f"{spec.name}: {candidate} not found; put Keras' '{spec.weights_file}' there "
                f"or pass --weights imagenet on a machine that can download it"
            )
        return str(candidate)
    if weights is None or weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        cached = Path(os.path.expanduser("~/.keras/models")) / spec.weights_file
        return str(cached) if cached.is_file() else "imagenet"
    if not Path(weights).is_file():
        raise FileNotFoundError(f"weights file {weights} not found")
    return weights


def build_classifier(
    spec: BackboneSpec,
    num_classes: int,
    weights: str | None = None,
    dropout: float = 0.2,
    seed: int = 0,
):
    """A flat Keras model: backbone on our input tensor, then pooling, dropout and softmax.

    Layer names `features` (pooled embedding) and `predictions` are fixed so training can read
    the embedding and put a separately trained head into place.
    """
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((spec.input_size, spec.input_size, 3), name="image")
    constructor = getattr(keras.applications, spec.constructor)
    base = constructor(input_tensor=inputs, include_top=False, weights=weights, **spec.options)
    if spec.embedding_norm == "none":
        features = keras.layers.GlobalAveragePooling2D(name="features")(base.output)
    elif spec.embedding_norm == "rms":
        pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(base.output)
        unit = keras.layers.UnitNormalization(name="unit_pooled")(pooled)
        # Unit length times sqrt(width): each feature's mean square is 1, near the raw embedding's
        # size, so the head's range of L2 strengths still fits.
        features = keras.layers.Rescaling(float(np.sqrt(int(base.output.shape[-1]))), name="features")(unit)
    else:
        raise ValueError(f"unknown embedding_norm {spec.embedding_norm!r}; choose from {', '.join(EMBEDDING_NORMS)}")
    x = keras.layers.Dropout(dropout, name="head_dropout")(features)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{spec.name}_classifier")

