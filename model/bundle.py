"""The model bundle: the unit the study exports and the worker serves.

A bundle is a folder:

    model.tflite    the quantized serving model (LiteRT)
    model.keras     the float Keras model, for heatmaps
    bundle.json     everything needed to use them correctly (see `BundleManifest`)
    MODEL_CARD.md   data, metrics, intended use and limitations, for people
    typicality.npz  (schema 2, optional) the statistics of the "is this like the training
                    photos?" check, `model.typicality`

Loading checks the schema and every file's sha256, so a half-copied or mismatched bundle fails
at start-up with one clear message instead of giving wrong answers later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model.errors import BundleError
from model.preprocess import Normalisation, ViewAveraging
from model.typicality import TypicalitySpec

# 2: the optional typicality check (a second, embedding output of model.tflite, typicality.npz).
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
MANIFEST_NAME = "bundle.json"
TFLITE_NAME = "model.tflite"
KERAS_NAME = "model.keras"
CARD_NAME = "MODEL_CARD.md"
REQUIRED_FILES = (TFLITE_NAME, KERAS_NAME, CARD_NAME)
QUANTIZATION_MODES = ("fp32", "dynamic", "fp16", "int8")


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on P(positive class).

    positive: at or above it the screen is positive.
    inconclusive: at or above it (and below `positive`) the screen is inconclusive.
    """

    positive: float
    inconclusive: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.inconclusive <= self.positive <= 1.0:
            raise BundleError(
                f"thresholds must satisfy 0 <= inconclusive <= positive <= 1, got "
                f"inconclusive={self.inconclusive}, positive={self.positive}"
            )


@dataclass(frozen=True)
class BundleManifest:
    """The contents of bundle.json."""

    model_id: str
    model_version: str
    class_names: tuple[str, ...]
    positive_class: str
    input_size: tuple[int, int]  # (width, height)
    normalisation: Normalisation
    thresholds: Thresholds
    quantization: str
    backbone: str
    heatmap_layer: str | None = None  # the conv layer Grad-CAM reads; None = the last one
    # Views the probabilities are averaged over; bundles written before it existed used the photo alone.
    view_averaging: ViewAveraging = ViewAveraging.NONE
    metrics: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    code_version: str = ""
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    # The learned "is this like the training photos?" check; None in schema-1 bundles.
    typicality: TypicalitySpec | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def positive_index(self) -> int:
        return self.class_names.index(self.positive_class)

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["input_size"] = list(self.input_size)
        data["normalisation"] = self.normalisation.value
        data["view_averaging"] = self.view_averaging.value
        data["typicality"] = None if self.typicality is None else self.typicality.to_json_dict()
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> BundleManifest:
        version = data.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS:
            raise BundleError(
                f"bundle.json has schema_version {version!r}; this code reads "
                f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}"
            )
        typicality = data.get("typicality") if version >= 2 else None
        try:
            manifest = cls(
                model_id=str(data["model_id"]),
                model_version=str(data["model_version"]),
                class_names=tuple(str(c) for c in data["class_names"]),
                positive_class=str(data["positive_class"]),
                input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
                normalisation=Normalisation(data["normalisation"]),
                thresholds=Thresholds(**data["thresholds"]),
                quantization=str(data["quantization"]),
                backbone=str(data["backbone"]),
                heatmap_layer=data.get("heatmap_layer"),
                view_averaging=ViewAveraging(data.get("view_averaging", "none")),
                metrics=dict(data.get("metrics") or {}),
                training_data=dict(data.get("training_data") or {}),
                created_at=str(data.get("created_at", "")),
                code_version=str(data.get("code_version", "")),
                files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
                typicality=None if typicality is None else TypicalitySpec.from_json_dict(typicality),
                schema_version=int(version),
            )
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise BundleError(f"bundle.json is missing or has a bad field: {exc}") from exc
        if len(set(manifest.class_names)) != len(manifest.class_names) or len(manifest.class_names) < 2:
            raise BundleError("bundle.json class_names must be at least two distinct names")
        if manifest.positive_class not in manifest.class_names:
            raise BundleError(
                f"positive class {manifest.positive_class!r} is not one of {list(manifest.class_names)}"
            )
        if manifest.quantization not in QUANTIZATION_MODES:
            raise BundleError(f"unknown quantization mode {manifest.quantization!r}")
        return manifest


@dataclass(frozen=True)
class Bundle:
    """A validated bundle on disk."""

    path: Path
    manifest: BundleManifest

    @property
    def tflite_path(self) -> Path:
        return self.path / TFLITE_NAME

    @property
    def keras_path(self) -> Path:
        return self.path / KERAS_NAME

    @property
    def card_path(self) -> Path:
        return self.path / CARD_NAME

    @property
    def typicality_path(self) -> Path | None:
        spec = self.manifest.typicality
        return None if spec is None else self.path / spec.file

    @property
    def model_id(self) -> str:
        return f"{self.manifest.model_id}@{self.manifest.model_version}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle folder. Raises BundleError naming the first problem found."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"model bundle folder {folder} does not exist")
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path} is missing: {folder} is not a model bundle")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{manifest_path} must hold a JSON object")
    manifest = BundleManifest.from_json_dict(data)
    needed = REQUIRED_FILES + (() if manifest.typicality is None else (manifest.typicality.file,))
    for name in needed:
        file_path = folder / name
        if not file_path.is_file():
            raise BundleError(f"{file_path} is missing from the bundle")
        expected = manifest.files.get(name)
        if expected is None:
            raise BundleError(f"bundle.json lists no sha256 for {name}")
        actual = sha256_file(file_path)
        if actual != expected:
            raise BundleError(
                f"{file_path} does not match bundle.json (sha256 {actual[:12]}..., "
                f"expected {expected[:12]}...): the bundle is corrupt or mixed with another"
            )
    return Bundle(path=folder, manifest=manifest)


def write_bundle(
    folder: str | Path,
    manifest: BundleManifest,
    tflite_model: bytes,
    keras_model_path: str | Path,
    model_card: str,
    extra_files: dict[str, bytes] | None = None,
) -> Bundle:
    """Write a complete bundle (files, checksums, manifest) and return it verified.

    `extra_files` (name -> bytes, e.g. typicality.npz) are written and checksummed too."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TFLITE_NAME).write_bytes(tflite_model)
    keras_source = Path(keras_model_path)
    if keras_source.resolve() != (folder / KERAS_NAME).resolve():
        (folder / KERAS_NAME).write_bytes(keras_source.read_bytes())
    (folder / CARD_NAME).write_text(model_card, encoding="utf-8")
    for name, content in (extra_files or {}).items():
        (folder / name).write_bytes(content)
    files = {name: sha256_file(folder / name) for name in (*REQUIRED_FILES, *(extra_files or {}))}
    data = manifest.to_json_dict()
    data["files"] = files
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return load_bundle(folder)
