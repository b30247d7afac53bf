"""Run the quantized classifier with LiteRT.

One interpreter per Classifier, created once; LiteRT interpreters are not thread-safe, so calls
are serialised with a lock (a worker process runs one job at a time anyway, and the embedded pool
shares one Classifier).

A bundle of schema 2 may give the model a second output, the pooled embedding the head reads
(`features`): the typicality check scores it, so it costs no second inference. The class output
is the narrower one (a handful of classes against a 1280-wide embedding).
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
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: int(d["shape"][-1]))
        if len(outputs) > 2:
            raise BundleError(f"{source} has {len(outputs)} outputs; expected classes and an optional embedding")
        self._output = outputs[0]
        self._embedding = outputs[1] if len(outputs) == 2 else None
        self._lock = threading.Lock()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"])

    @property
    def output_size(self) -> int:
        """Width of the output: the classes, or the embedding of a feature extractor."""
        return int(self._output["shape"][-1])

    @property
    def embedding_size(self) -> int | None:
        """Width of the second (embedding) output, or None when the model has one output."""
        return None if self._embedding is None else int(self._embedding["shape"][-1])

    def _quantize_input(self, batch: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return batch.astype(np.float32, copy=False)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(dtype)

    @staticmethod
    def _dequantize(values: np.ndarray, details: dict) -> np.ndarray:
        if values.dtype == np.float32:
            return values
        scale, zero_point = details["quantization"]
        return (values.astype(np.float32) - zero_point) * scale

    def _invoke(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(first output, embedding output or None) for the first item of `batch`, as float."""
        tensor = self._quantize_input(batch)
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"]).copy()
            embedding = None if self._embedding is None else self._interpreter.get_tensor(self._embedding["index"]).copy()
        output = self._dequantize(raw, self._output)[0]
        return output, None if embedding is None else self._dequantize(embedding, self._embedding)[0]

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """The model's float output for the first item of `batch` (e.g. an embedding)."""
        return self._invoke(batch)[0]

    @staticmethod
    def _as_probabilities(output: np.ndarray) -> np.ndarray:
        probabilities = np.clip(output.astype(np.float64), 0.0, None)
        total = probabilities.sum()
        # int8 outputs are coarse; renormalise so the figures shown to people add up to 100 %.
        return probabilities / total if total > 0 else np.full_like(probabilities, 1 / len(probabilities))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities, shape (num_classes,), summing to 1."""
        return self._as_probabilities(self.outputs(batch))

    def predict_with_embedding(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and the embedding output (None for a one-output model), from one call."""
        output, embedding = self._invoke(batch)
        return self._as_probabilities(output), embedding

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        """Mean probabilities over the views of one photo (VxHxWx3, normalised), one call each."""
        return self.predict_views_with_embedding(views)[0]

    def predict_views_with_embedding(self, views: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean probabilities and mean embedding (None without that output) over the views."""
        answers = [self.predict_with_embedding(view[np.newaxis]) for view in views]
        probabilities = np.mean([p for p, _ in answers], axis=0)
        if self._embedding is None:
            return probabilities, None
        return probabilities, np.mean([e for _, e in answers], axis=0)
