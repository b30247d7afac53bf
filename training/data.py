"""Read a study data set and turn its photos into model inputs.

Two layouts are understood:

- folder per class: `DIR/<class>/<photo>`;
- MCSI (Campana et al. 2023): `DIR/metadata.csv` with columns `img_id,diagnostic` and a flat
  `DIR/images/` folder. `monkeypox` becomes `mpox` and `acne_l1..3` become `acne`; the original
  diagnostic is kept as `source_label` so the audit can still count acne levels.

Several folders (`load_sources`) are several sources of one study: each photo keeps its source's
name and its own class (`source_label`), and its study class becomes the screening question,
`mpox` or `not_mpox`, because sources name their classes differently (`Monkeypox/`, `others/`,
`Acne_vulgaris/`) and only that question is shared by all of them; or, with `labels="conditions"`,
each photo's own class in lower case (`chickenpox`, `acne_vulgaris`, `others`), mpox photos being
`mpox` whatever their source calls them, so that a head can learn the finer conditions that
sources share or add. Where a source says which
photos show one person (msld-v1's `M<patient>_<n>.jpg`), that id is kept for fold assignment.

Photos are decoded with `model.imaging.decode_image` and resized with `model.preprocess`, the
same calls the service makes, so training and serving see a photo the same way.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance
from tqdm.auto import tqdm

from model.errors import ImageRejected
from model.imaging import decode_image
from model.preprocess import prepare_pixels
from model.types import Reason

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MCSI_METADATA = "metadata.csv"
MCSI_IMAGES = "images"
# MCSI diagnostic values -> study class names.
MCSI_CLASS_MAP = {"monkeypox": "mpox", "acne_l1": "acne", "acne_l2": "acne", "acne_l3": "acne"}
# Class names that mean mpox in the sources we know (case-insensitive); every other class is not mpox.
MPOX_CLASS_NAMES = frozenset({"mpox", "monkeypox"})
NOT_MPOX = "not_mpox"
# msld-v1 file names: M<patient>_<n> (mpox) and NM<patient>_<n> (others); one patient, one person.
PATIENT_FILE_NAME = re.compile(r"^(N?M)(\d+)_\d+$", re.IGNORECASE)


class DataError(ValueError):
    """The data folder cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    label: str  # the class the study uses
    source_label: str  # as the data set names it (keeps MCSI's acne level)
    source: str = ""  # the data set (folder name) the photo comes from
    patient: str | None = None  # "<source>:<id>" where the source names the person photographed


@dataclass(frozen=True)
class Dataset:
    root: Path
    layout: str  # "folders" or "mcsi"
    records: tuple[ImageRecord, ...]
    class_names: tuple[str, ...]
    missing: tuple[str, ...] = field(default=())  # metadata rows whose file is absent
    sources: tuple[str, ...] = ()  # data set names, in --data order (one for a single folder)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def name(self) -> str:
        return "+".join(self.sources) if self.sources else self.root.name

    @property
    def labels(self) -> np.ndarray:
        """Class index of every record, in `class_names` order."""
        index = {name: i for i, name in enumerate(self.class_names)}
        return np.array([index[r.label] for r in self.records], dtype=np.int64)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def patient_id(source: str, path: Path) -> str | None:
    """`<source>:<id>` when the file name names the person photographed (msld-v1), else None."""
    match = PATIENT_FILE_NAME.match(path.stem)
    return f"{source}:{match.group(1).upper()}{int(match.group(2))}" if match else None


def is_mpox_class(name: str) -> bool:
    """Whether a source's class name means mpox (the screening question's positive answer)."""
    return name.strip().lower() in MPOX_CLASS_NAMES


def _read_folders(root: Path) -> tuple[list[ImageRecord], list[str]]:
    records = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        records += [ImageRecord(p, folder.name, folder.name, root.name, patient_id(root.name, p))
                    for p in sorted(folder.iterdir()) if _is_image(p)]
    return records, []


def _find_mcsi_file(images: Path, img_id: str, by_stem: dict[str, Path]) -> Path | None:
    exact = images / img_id
    if exact.is_file():
        return exact
    return by_stem.get(Path(img_id).stem)


def _read_mcsi(root: Path) -> tuple[list[ImageRecord], list[str]]:
    images = root / MCSI_IMAGES
    if not images.is_dir():
        raise DataError(f"{root / MCSI_METADATA} found but {images} is not a folder")
    by_stem = {p.stem: p for p in images.iterdir() if _is_image(p)}
    records, missing = [], []
    with (root / MCSI_METADATA).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {c.strip() for c in reader.fieldnames or []}
        if not {"img_id", "diagnostic"} <= columns:
            raise DataError(f"{root / MCSI_METADATA} needs columns img_id,diagnostic; found {sorted(columns)}")
        for row in reader:
            img_id, diagnostic = row["img_id"].strip(), row["diagnostic"].strip().lower()
            path = _find_mcsi_file(images, img_id, by_stem)
            if path is None:
                missing.append(img_id)
                continue
            records.append(ImageRecord(path, MCSI_CLASS_MAP.get(diagnostic, diagnostic), diagnostic, root.name))
    return records, missing


def _read_source(root: Path) -> tuple[str, list[ImageRecord], list[str]]:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    layout = "mcsi" if (root / MCSI_METADATA).is_file() else "folders"
    records, missing = _read_mcsi(root) if layout == "mcsi" else _read_folders(root)
    return layout, records, missing


def load_dataset(root: str | Path, min_classes: int = 2) -> Dataset:
    """Find the photos and their classes under `root` (folder-per-class or MCSI layout).

    min_classes: 2 to train on it; 1 to evaluate on it (a source of look-alikes has no mpox)."""
    root = Path(root)
    layout, records, missing = _read_source(root)
    class_names = tuple(sorted({r.label for r in records}))
    if len(class_names) < min_classes:
        raise DataError(
            f"{root} must hold at least two classes (one folder per class, or MCSI's metadata.csv "
            f"+ images/); found {list(class_names)}"
        )
    return Dataset(root, layout, tuple(records), class_names, tuple(missing), (root.name,))


LABELS = ("screening", "conditions")  # what several sources' photos are classed by


def study_class(label: str, labels: str) -> str:
    """A photo's class in a study of several sources: the screening question, or its condition."""
    if is_mpox_class(label):
        return "mpox"
    return label.lower() if labels == "conditions" else NOT_MPOX


def load_sources(roots: list[str | Path] | tuple[str | Path, ...], labels: str = "screening") -> Dataset:
    """One folder: `load_dataset`. Several: one data set of sources, classed mpox / not_mpox, or
    with `labels="conditions"` mpox / each source's own other classes.

    A source may hold one class only (dermnet-lookalikes has no mpox photo): it is still a
    source to train on and to hold out, as long as all of them together hold both mpox and
    other photos."""
    if labels not in LABELS:
        raise DataError(f"unknown labels {labels!r}; choose from {', '.join(LABELS)}")
    roots = [Path(root) for root in roots]
    if len(roots) == 1:
        return load_dataset(roots[0])
    names = [root.name for root in roots]
    if len(set(names)) != len(names):
        raise DataError(f"sources must have distinct folder names; got {names}")
    records, missing, layouts = [], [], set()
    for root in roots:
        layout, found, absent = _read_source(root)
        if not found:
            raise DataError(f"{root} holds no photos")
        layouts.add(layout)
        records += [replace(r, label=study_class(r.label, labels)) for r in found]
        missing += [f"{root.name}/{m}" for m in absent]
    class_names = tuple(sorted({r.label for r in records}))
    if "mpox" not in class_names or len(class_names) < 2:
        raise DataError(f"the sources {names} together hold no {'non-mpox' if class_names == ('mpox',) else 'mpox'} photo")
    return Dataset(roots[0].parent, "+".join(sorted(layouts)), tuple(records), class_names, tuple(missing),
                   tuple(names))


def read_image(path: Path) -> Image.Image:
    """Decode one photo as the service would (upright 8-bit RGB). Raises ImageRejected."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageRejected(Reason.CORRUPT, f"cannot read {path.name}: {exc}") from exc
    return decode_image(data)


def augment_image(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A plausible re-take of the same photo: mirror, small rotation and zoom, light and colour."""
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-20, 20))
    image = image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=None)
    width, height = image.size
    zoom = float(rng.uniform(0.8, 1.0))  # crop away up to 20 %; also hides rotation corners
    crop_w, crop_h = max(1, int(width * zoom)), max(1, int(height * zoom))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    image = image.crop((left, top, left + crop_w, top + crop_h))
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.8, 1.2)))
    image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.8, 1.2)))
    return ImageEnhance.Color(image).enhance(float(rng.uniform(0.85, 1.15)))


def load_pixels(
    images: list[Image.Image], size: tuple[int, int], copies: int = 0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pixels of every image (N,H,W,3) and of `copies` augmented versions (N,copies,H,W,3).

    Resizing is `model.preprocess.prepare_pixels`, as in serving; the augmented copies are
    drawn from a generator seeded per image, so they do not depend on which images are loaded.
    """
    width, height = size
    plain = np.zeros((len(images), height, width, 3), np.uint8)
    augmented = np.zeros((len(images), copies, height, width, 3), np.uint8)
    for i, image in enumerate(tqdm(images, desc=f"photos to {width}x{height} px (+{copies} augmented)", unit="photo",
                                   leave=False, disable=len(images) < 100)):
        plain[i] = prepare_pixels(image, size)
        rng = np.random.default_rng([seed, i])
        for k in range(copies):
            augmented[i, k] = prepare_pixels(augment_image(image, rng), size)
    return plain, augmented
