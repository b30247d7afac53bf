"""Run the quantized classifier with LiteRT.

One interpreter per Classifier, created once; LiteRT interpreters are not thread-safe, so calls
are serialised with a lock (a worker process runs one job at a time anyway, and the embedded pool
shares one Classifier).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from model.errors import BundleError


class Classifier:
    """Class probabilities for a preprocessed 1xHxWx3 float32 batch."""

    def __init__(
        self,
        tflite_path: str | Path | None = None,
        num_threads: int = 1,
        model_content: bytes | None = None,
    ) -> None:
        """From a .tflite file, or from flatbuffer bytes (`model_content`, as the study converts)."""
        source = str(tflite_path) if tflite_path is not None else "the TFLite model"
        try:
            self._interpreter = Interpreter(
                model_path=None if tflite_path is None else str(tflite_path),
                model_content=model_content,
                num_threads=num_threads,
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{source} is not a loadable TFLite model: {exc}") from exc
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._lock = threading.Lock()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"])

    @property
    def output_size(self) -> int:
        """Width of the output: the classes, or the embedding of a feature extractor."""
        return int(self._output["shape"][-1])

    def _quantize_input(self, batch: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return batch.astype(np.float32, copy=False)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(dtype)

    def _dequantize_output(self, values: np.ndarray) -> np.ndarray:
        if values.dtype == np.float32:
            return values
        scale, zero_point = self._output["quantization"]
        return (values.astype(np.float32) - zero_point) * scale

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """The model's float output for the first item of `batch` (e.g. an embedding)."""
        tensor = self._quantize_input(batch)
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"]).copy()
        return self._dequantize_output(raw)[0]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities, shape (num_classes,), summing to 1."""
        probabilities = np.clip(self.outputs(batch).astype(np.float64), 0.0, None)
        total = probabilities.sum()
        # int8 outputs are coarse; renormalise so the figures shown to people add up to 100 %.
        return probabilities / total if total > 0 else np.full_like(probabilities, 1 / len(probabilities))

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        """Mean probabilities over the views of one photo (VxHxWx3, normalised), one call each."""
        return np.mean([self.predict(view[np.newaxis]) for view in views], axis=0)
