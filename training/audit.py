"""Audit a data set before training: what is unreadable, duplicated, unbalanced or odd-sized.

Near-duplicates (the same lesion cropped, mirrored, re-encoded or resized) are found two ways:
a perceptual hash (also against the mirrored photo) and the cosine similarity of frozen-backbone
embeddings. Every such pair links two photos; the connected components are the photo *groups*
that cross-validation keeps inside one fold, so a lesion is never in both train and test.
Photos of one patient (where a source names them, `ImageRecord.patient`) join one group too.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Defaults chosen on the shared web photos: every pair above them was the same lesion (crops,
# mirror images, resized copies); the closest distinct lesions scored about 0.856 and 16 bits.
PHASH_MAX_DISTANCE = 12  # bits of a 64-bit pHash
EMBEDDING_MIN_COSINE = 0.86


@dataclass(frozen=True)
class DuplicatePair:
    first: int
    second: int
    phash_distance: int
    cosine: float
    exact: bool


@dataclass(frozen=True)
class AuditReport:
    names: tuple[str, ...]  # "class/file" of each readable photo, in data set order
    labels: tuple[str, ...]
    groups: np.ndarray  # group id per photo (connected components of duplicate pairs)
    pairs: tuple[DuplicatePair, ...]
    unreadable: tuple[tuple[str, str], ...]  # (name, reason)
    missing: tuple[str, ...]
    class_counts: dict[str, int]
    source_counts: dict[str, int]  # as the data set labels them (MCSI acne levels)
    sizes: dict[str, dict[str, float]]  # width/height: min, median, max
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def exact_pairs(self) -> list[DuplicatePair]:
        return [p for p in self.pairs if p.exact]

    @property
    def cross_class_pairs(self) -> list[DuplicatePair]:
        return [p for p in self.pairs if self.labels[p.first] != self.labels[p.second]]

    def duplicate_groups(self) -> list[list[str]]:
        """Groups of two or more photos, by name."""
        members: dict[int, list[str]] = {}
        for name, group in zip(self.names, self.groups, strict=True):
            members.setdefault(int(group), []).append(name)
        return sorted((sorted(m) for m in members.values() if len(m) > 1), key=lambda m: m[0])

    def summary(self) -> dict:
        """JSON-ready figures for summary.json and the bundle's training_data."""
        groups = self.duplicate_groups()
        return {
            "photos": len(self.names),
            "classes": self.class_counts,
            "source_labels": self.source_counts,
            "unreadable": [f"{n}: {r}" for n, r in self.unreadable],
            "missing_from_metadata": list(self.missing),
            "exact_duplicate_pairs": len(self.exact_pairs),
            "near_duplicate_pairs": len(self.pairs) - len(self.exact_pairs),
            "cross_class_duplicate_pairs": len(self.cross_class_pairs),
            "duplicate_groups": groups,
            "photos_in_duplicate_groups": sum(len(g) for g in groups),
            "image_sizes": self.sizes,
            "thresholds": self.thresholds,
        }


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def perceptual_hashes(images: list[Image.Image]) -> tuple[list, list]:
    """pHash of each photo and of its mirror image (a flipped copy is still the same lesion)."""
    import imagehash

    plain = [imagehash.phash(image) for image in images]
    mirrored = [imagehash.phash(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) for image in images]
    return plain, mirrored


def cosine_matrix(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norms == 0, 1.0, norms)
    return unit @ unit.T


def find_pairs(
    digests: list[str],
    hashes: tuple[list, list],
    cosines: np.ndarray | None,
    phash_max: int = PHASH_MAX_DISTANCE,
    cosine_min: float = EMBEDDING_MIN_COSINE,
) -> list[DuplicatePair]:
    """Every pair of photos that are exact or near-duplicates by any of the three tests."""
    plain, mirrored = hashes
    pairs = []
    for i in range(len(digests)):
        for j in range(i + 1, len(digests)):
            distance = min(plain[i] - plain[j], plain[i] - mirrored[j])
            cosine = float(cosines[i, j]) if cosines is not None else 0.0
            exact = digests[i] == digests[j]
            if exact or distance <= phash_max or cosine >= cosine_min:
                pairs.append(DuplicatePair(i, j, int(distance), round(cosine, 4), exact))
    return pairs


def patient_links(patients: list[str | None]) -> list[tuple[int, int]]:
    """(first photo, other photo) for every photo of a patient after that patient's first."""
    first: dict[str, int] = {}
    links = []
    for index, patient in enumerate(patients):
        if patient is not None:
            links.append((first.setdefault(patient, index), index))
    return [(a, b) for a, b in links if a != b]


def connected_groups(count: int, pairs: list[DuplicatePair], links: list[tuple[int, int]] = ()) -> np.ndarray:
    """Group id per photo: photos linked by any chain of duplicate pairs or `links` share one id."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = [p.first for p in pairs] + [a for a, _ in links]
    cols = [p.second for p in pairs] + [b for _, b in links]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def _size_summary(images: list[Image.Image]) -> dict[str, dict[str, float]]:
    if not images:
        return {}
    widths = np.array([image.width for image in images])
    heights = np.array([image.height for image in images])
    return {
        axis: {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}
        for axis, v in (("width", widths), ("height", heights))
    }


def run_audit(
    records: list,
    images: list[Image.Image],
    embeddings: np.ndarray | None,
    unreadable: list[tuple[str, str]] | None = None,
    missing: tuple[str, ...] = (),
    phash_max: int = PHASH_MAX_DISTANCE,
    cosine_min: float = EMBEDDING_MIN_COSINE,
) -> AuditReport:
    """Audit the readable `records` (with their decoded `images` and backbone `embeddings`)."""
    digests = [file_sha256(r.path) for r in records]
    cosines = cosine_matrix(embeddings) if embeddings is not None else None
    pairs = find_pairs(digests, perceptual_hashes(images), cosines, phash_max, cosine_min)
    # With several sources a name says which one: two sources may both have mpox/1.jpg.
    several = len({r.source for r in records}) > 1
    prefix = [f"{r.source}/" if several else "" for r in records]
    return AuditReport(
        names=tuple(f"{p}{r.path.parent.name}/{r.path.name}" for p, r in zip(prefix, records, strict=True)),
        labels=tuple(r.label for r in records),
        groups=connected_groups(len(records), pairs, patient_links([r.patient for r in records])),
        pairs=tuple(pairs),
        unreadable=tuple(unreadable or ()),
        missing=tuple(missing),
        class_counts=dict(sorted(Counter(r.label for r in records).items())),
        source_counts=dict(sorted(Counter(f"{p}{r.source_label}" for p, r in zip(prefix, records, strict=True)).items())),
        sizes=_size_summary(images),
        thresholds={"phash_max_distance": phash_max, "embedding_min_cosine": cosine_min},
    )


def audit_markdown(report: AuditReport) -> str:
    """The audit as a Markdown section for summary.md."""
    s = report.summary()
    lines = [
        "## Data audit",
        "",
        f"- Photos used: {s['photos']}; per class: {s['classes']}",
        f"- Labels as given by the data set: {s['source_labels']}",
        f"- Unreadable files: {len(s['unreadable'])} {s['unreadable'] or ''}".rstrip(),
        f"- Listed in metadata but missing: {len(s['missing_from_metadata'])}",
        f"- Exact duplicates (sha256): {s['exact_duplicate_pairs']} pairs; near-duplicates "
        f"(pHash <= {report.thresholds['phash_max_distance']} bits incl. mirror, or embedding "
        f"cosine >= {report.thresholds['embedding_min_cosine']}): {s['near_duplicate_pairs']} pairs",
        f"- Duplicates across classes: {s['cross_class_duplicate_pairs']} pairs",
        f"- Duplicate groups kept inside one fold: {len(s['duplicate_groups'])} groups, "
        f"{s['photos_in_duplicate_groups']} photos",
        f"- Image sizes (px): {s['image_sizes']}",
    ]
    lines += ["", "| photo A | photo B | pHash bits | cosine | exact |", "|---|---|---|---|---|"]
    for p in report.pairs:
        lines.append(
            f"| {report.names[p.first]} | {report.names[p.second]} | {p.phash_distance} | "
            f"{p.cosine:.3f} | {'yes' if p.exact else 'no'} |"
        )
    return "\n".join(lines) + "\n"
