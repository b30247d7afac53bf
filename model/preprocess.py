"""The one resize-and-normalise step shared by training and serving.

Training (`training.data`) and serving (`model.screening`) both call `prepare_pixels` and
`normalise`, so a photo is seen the same way in the study and in production. The normalisation
modes mirror `keras.applications.*.preprocess_input` for each backbone family (a test checks it).
"""

from __future__ import annotations

import enum

import numpy as np
from PIL import Image


class Normalisation(enum.StrEnum):
    """How pixel values are scaled for a backbone (named after Keras' `preprocess_input` modes)."""

    TF = "tf"  # [-1, 1]: MobileNet, MobileNetV2, InceptionV3, Xception
    TORCH = "torch"  # [0, 1] then ImageNet mean/std: DenseNet
    CAFFE = "caffe"  # BGR, ImageNet mean subtracted: VGG16, ResNet50
    RAW = "raw"  # 0..255 unchanged: EfficientNet, MobileNetV3 (they rescale inside the model)


class ViewAveraging(enum.StrEnum):
    """Which views of a photo the classifier's probabilities are averaged over (test-time
    augmentation)."""

    NONE = "none"  # the photo alone
    MIRROR = "mirror"  # the photo and its left-right mirror image (a lesion has no handedness)


_IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def prepare_pixels(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image to `size` (width, height) and return uint8 HxWx3 pixels.

    The whole photo is resized (no crop): a lesion near the border must not be cut away.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


def normalise(pixels: np.ndarray, mode: Normalisation | str) -> np.ndarray:
    """Scale uint8 (or float 0..255) pixels, ...xHxWx3 RGB, to the backbone's float32 input."""
    x = np.asarray(pixels, dtype=np.float32)
    mode = Normalisation(mode)
    if mode is Normalisation.TF:
        return x / 127.5 - 1.0
    if mode is Normalisation.TORCH:
        return (x / 255.0 - _IMAGENET_MEAN_RGB) / _IMAGENET_STD_RGB
    if mode is Normalisation.CAFFE:
        return x[..., ::-1] - _CAFFE_MEAN_BGR
    return x


def classifier_views(pixels: np.ndarray, averaging: ViewAveraging | str) -> np.ndarray:
    """The views of one photo's prepared HxWx3 pixels, stacked (VxHxWx3); the first is the photo.

    Averaging the classifier over a photo and its mirror image steadies its answer on small
    training sets; training (`training.features`) and serving use these same views."""
    pixels = np.asarray(pixels)
    if ViewAveraging(averaging) is ViewAveraging.MIRROR:
        return np.stack([pixels, pixels[..., ::-1, :]])
    return pixels[np.newaxis]

