"""Is this picture like the photos the model was trained on? The learned check before a verdict.

A classifier asked about a coffee cup or a page of text still answers, sometimes "mpox" with
confidence. The quality gate catches dark, blurred, noisy and colourless pictures; this check
catches the rest: a picture whose embedding (the served body's pooled features, the very vector
the head reads, averaged over the views the service runs) lies far from every training photo's.

The study (`training.typicality`) fits the statistics and chooses the threshold on out-of-fold
scores of real photos only; the bundle stores them (`typicality.npz`, checksummed, and the
`typicality` entry of bundle.json). Scoring is a few small matrix products: well under 1 ms.

Methods (the study compares them; the bundle says which it carries):
- `knn_cosine` (the demo's): 1 - the mean cosine similarity to the k nearest training photos
  (deep nearest neighbours, Sun et al. 2022), on the embedding as it is or centred / projected.
  No distribution is assumed, so a training set of several sources and classes is fine.
- `mahalanobis`: the Mahalanobis distance to the training photos' mean, covariance shrunk by
  Ledoit-Wolf, optionally after a PCA projection (Lee et al. 2018, with one Gaussian).
"""

from __future__ import annotations

import enum
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import BundleError

TYPICALITY_NAME = "typicality.npz"


class TypicalityMethod(enum.StrEnum):
    KNN_COSINE = "knn_cosine"
    MAHALANOBIS = "mahalanobis"


@dataclass(frozen=True)
class TypicalitySpec:
    """The `typicality` entry of bundle.json: how to read typicality.npz and where to refuse."""

    method: TypicalityMethod
    threshold: float  # a picture scoring above it is refused
    target_refusal_rate: float  # the share of real photos the threshold was chosen to refuse at most
    out_of_fold_refusal_rate: float  # what it refused of the training photos, out of fold
    photos: int  # training photos the threshold was chosen on
    folds: int
    neighbours: int = 0  # k of knn_cosine
    embedding: str = "served body's pooled features, mean over the classifier's views"
    file: str = TYPICALITY_NAME

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "method": self.method.value, "threshold": self.threshold,
            "target_refusal_rate": self.target_refusal_rate,
            "out_of_fold_refusal_rate": self.out_of_fold_refusal_rate, "photos": self.photos,
            "folds": self.folds, "neighbours": self.neighbours, "embedding": self.embedding,
            "file": self.file,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> TypicalitySpec:
        try:
            spec = cls(
                method=TypicalityMethod(data["method"]), threshold=float(data["threshold"]),
                target_refusal_rate=float(data["target_refusal_rate"]),
                out_of_fold_refusal_rate=float(data["out_of_fold_refusal_rate"]),
                photos=int(data["photos"]), folds=int(data["folds"]),
                neighbours=int(data.get("neighbours", 0)),
                embedding=str(data.get("embedding", cls.embedding)),
                file=str(data.get("file", TYPICALITY_NAME)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"bundle.json typicality entry is missing or has a bad field: {exc}") from exc
        if not 0.0 <= spec.target_refusal_rate < 1.0:
            raise BundleError(f"typicality target_refusal_rate must be in [0, 1), got {spec.target_refusal_rate}")
        if spec.method is TypicalityMethod.KNN_COSINE and spec.neighbours < 1:
            raise BundleError("typicality method knn_cosine needs neighbours >= 1")
        return spec


def unit_rows(values: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(values, axis=-1, keepdims=True)
    return values / np.where(norms == 0, 1.0, norms)


@dataclass(frozen=True)
class TypicalityModel:
    """The fitted statistics: centre, optional projection, and the method's own arrays."""

    method: TypicalityMethod
    center: np.ndarray  # (D,) subtracted first
    projection: np.ndarray | None  # (D, d) PCA components, or None for the full embedding
    reference: np.ndarray | None = None  # knn_cosine: (M, d) unit rows of the training photos
    precision: np.ndarray | None = None  # mahalanobis: (d, d) inverse shrunk covariance
    neighbours: int = 1

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        centred = np.asarray(embeddings, np.float32) - self.center
        return centred if self.projection is None else centred @ self.projection

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Atypicality of each row of `embeddings` (n, D): higher is less like the training photos."""
        features = self.transform(np.atleast_2d(embeddings))
        if self.method is TypicalityMethod.KNN_COSINE:
            similarities = unit_rows(features) @ self.reference.T.astype(np.float32)
            k = min(self.neighbours, similarities.shape[1])
            nearest = -np.partition(-similarities, k - 1, axis=1)[:, :k]
            return 1.0 - nearest.mean(axis=1)
        return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", features, self.precision, features), 0.0))

    def to_npz_bytes(self) -> bytes:
        arrays = {"center": self.center.astype(np.float32)}
        if self.projection is not None:
            arrays["projection"] = self.projection.astype(np.float32)
        if self.reference is not None:
            arrays["reference"] = self.reference.astype(np.float16)  # unit rows: fp16 is ample
        if self.precision is not None:
            arrays["precision"] = self.precision.astype(np.float32)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_npz(cls, path: Path, spec: TypicalitySpec) -> TypicalityModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            model = cls(
                method=spec.method, center=arrays["center"].astype(np.float32),
                projection=arrays.get("projection"),
                reference=None if "reference" not in arrays else arrays["reference"].astype(np.float32),
                precision=arrays.get("precision"), neighbours=spec.neighbours,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise BundleError(f"{path} is not a readable typicality file: {exc}") from exc
        needed = "reference" if spec.method is TypicalityMethod.KNN_COSINE else "precision"
        if getattr(model, needed) is None:
            raise BundleError(f"{path} lacks '{needed}', which method {spec.method.value} needs")
        return model

    @property
    def embedding_width(self) -> int:
        return int(self.center.shape[0])


@dataclass(frozen=True)
class TypicalityCheck:
    """The serving side: score one embedding, say whether the picture is refused."""

    spec: TypicalitySpec
    model: TypicalityModel

    def score(self, embedding: np.ndarray) -> float:
        return float(self.model.scores(embedding)[0])

    def refuses(self, score: float) -> bool:
        return score > self.spec.threshold


def load_check(folder: Path, spec: TypicalitySpec | None) -> TypicalityCheck | None:
    """The bundle's check, or None when the bundle carries none (older bundles)."""
    if spec is None:
        return None
    return TypicalityCheck(spec, TypicalityModel.from_npz(Path(folder) / spec.file, spec))
