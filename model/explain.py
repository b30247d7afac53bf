"""Heatmaps of what the classifier looked at, with tf-keras-vis on the float Keras model.

Grad-CAM++ is the default: sharp enough to show the lesion, cheap enough to serve. Called the
usual eager way it costs ~125 ms on MobileNetV2-0.35, mostly Python overhead of the eager forward
pass; here the same tf-keras-vis call is traced once into a `tf.function` (with a fixed input
signature, the class index as a tensor, and CAM expansion/normalisation done afterwards in NumPy),
and warmed up at load time, so each request runs one compiled graph (~10 ms).
Faster-ScoreCAM and SmoothGrad are kept for offline review: they need many forward passes.
"""

from __future__ import annotations

import enum
import threading
from pathlib import Path

import numpy as np

from model.errors import BundleError


class HeatmapMethod(enum.StrEnum):
    GRADCAM_PLUS_PLUS = "gradcam++"
    GRADCAM = "gradcam"
    FASTER_SCORECAM = "faster-scorecam"
    SALIENCY = "smoothgrad"


class Explainer:
    """Produce an HxW attention map in [0, 1] for one preprocessed photo and one class."""

    def __init__(
        self,
        keras_path: str | Path,
        method: HeatmapMethod | str = HeatmapMethod.GRADCAM_PLUS_PLUS,
        layer: str | None = None,
    ) -> None:
        import keras
        import tensorflow as tf
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        self._tf = tf
        self.method = HeatmapMethod(method)
        try:
            model = keras.saving.load_model(str(keras_path), compile=False)
        except Exception as exc:  # Keras raises many types for a bad file
            raise BundleError(f"{keras_path} is not a loadable Keras model: {exc}") from exc
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])
        self.layer = layer
        # Scores are taken before the softmax (ReplaceToLinear), as tf-keras-vis recommends.
        modifier = ReplaceToLinear()
        self._visualizer = self._make_visualizer(model, modifier)
        self._lock = threading.Lock()
        self._compiled = None
        # Only Grad-CAM++ is written in TensorFlow ops end to end; the others use NumPy inside
        # tf-keras-vis and run eagerly.
        if self.method is HeatmapMethod.GRADCAM_PLUS_PLUS:
            self._compiled = self._compile()

    def _make_visualizer(self, model, modifier):
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam

        visualizer_class = {
            HeatmapMethod.GRADCAM_PLUS_PLUS: GradcamPlusPlus,
            HeatmapMethod.GRADCAM: Gradcam,
            HeatmapMethod.FASTER_SCORECAM: Scorecam,
            HeatmapMethod.SALIENCY: Saliency,
        }[self.method]
        if self.method is HeatmapMethod.FASTER_SCORECAM:
            # ScoreCAM weights maps by the softmax score itself: keep the activation.
            return visualizer_class(model, clone=False)
        return visualizer_class(model, model_modifier=modifier, clone=True)

    def _compile(self):
        tf = self._tf
        visualizer = self._visualizer
        layer = self.layer

        def score_of(class_index):
            return lambda output: tf.gather(output, class_index, axis=-1)

        @tf.function(
            input_signature=[
                tf.TensorSpec((1, *self.input_shape), tf.float32),
                tf.TensorSpec((), tf.int32),
            ],
            reduce_retracing=True,
        )
        def cam(batch, class_index):
            return visualizer(
                score_of(class_index),
                batch,
                penultimate_layer=layer,
                expand_cam=False,
                normalize_cam=False,
            )

        return cam

    def warm_up(self) -> None:
        """Trace and run once so the first user does not pay for compilation."""
        self.explain(np.zeros((1, *self.input_shape), np.float32), 0)

    def explain(self, batch: np.ndarray, class_index: int) -> np.ndarray:
        """A low-resolution map (e.g. 7x7 for 224 px), scaled to [0, 1]."""
        with self._lock:
            if self._compiled is not None:
                raw = self._compiled(
                    self._tf.constant(batch, self._tf.float32),
                    self._tf.constant(class_index, self._tf.int32),
                ).numpy()
            else:
                raw = self._explain_eagerly(batch, class_index)
        heatmap = np.asarray(raw, dtype=np.float32).reshape(raw.shape[-2:])
        heatmap = np.nan_to_num(heatmap, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(heatmap.min()), float(heatmap.max())
        return (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)

    def _explain_eagerly(self, batch: np.ndarray, class_index: int) -> np.ndarray:
        from tf_keras_vis.utils.scores import CategoricalScore

        score = CategoricalScore([class_index])
        if self.method is HeatmapMethod.GRADCAM:
            return self._visualizer(
                score, batch, penultimate_layer=self.layer, expand_cam=False, normalize_cam=False
            )[0]
        if self.method is HeatmapMethod.FASTER_SCORECAM:
            return self._visualizer(
                score, batch, penultimate_layer=self.layer, max_N=10, normalize_cam=False
            )[0]
        return self._visualizer(score, batch, smooth_samples=20, smooth_noise=0.2)[0]
