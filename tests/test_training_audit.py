"""training.audit: duplicates are found, grouped, and never straddle cross-validation folds."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from training.audit import run_audit
from training.data import load_dataset, read_image
from training.train import group_splits


def _photo(seed: int) -> Image.Image:
    blocks = np.random.default_rng(seed).integers(0, 255, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((120, 100), Image.Resampling.BICUBIC)


def _with_duplicates(root):
    for c, name in enumerate(("chickenpox", "mpox", "normal")):
        (root / name).mkdir()
        for k in range(8):
            _photo(100 * c + k).save(root / name / f"{k}.png")
    shutil.copy(root / "mpox" / "0.png", root / "mpox" / "exact_copy.png")
    near = _photo(101).transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((110, 92))
    near.save(root / "mpox" / "mirrored_resized.jpg", quality=85)
    shutil.copy(root / "normal" / "3.png", root / "chickenpox" / "same_as_normal_3.png")
    return load_dataset(root)


def test_exact_near_and_cross_class_duplicates_form_groups_kept_in_one_fold(tmp_path):
    dataset = _with_duplicates(tmp_path)
    images = [read_image(r.path) for r in dataset.records]
    audit = run_audit(list(dataset.records), images, embeddings=None)
    groups = audit.duplicate_groups()
    assert ["mpox/0.png", "mpox/exact_copy.png"] in groups
    assert ["mpox/1.png", "mpox/mirrored_resized.jpg"] in groups
    assert ["chickenpox/same_as_normal_3.png", "normal/3.png"] in groups
    assert len(audit.exact_pairs) == 2 and len(audit.cross_class_pairs) == 1
    assert len(groups) == 3  # nothing else: distinct photos are not linked
    for seed in range(5):
        for train, test in group_splits(dataset.labels, audit.groups, 5, seed):
            assert not set(audit.groups[train]) & set(audit.groups[test])


def test_embedding_similarity_links_photos_hashes_miss(tmp_path):
    dataset = _with_duplicates(tmp_path)
    images = [read_image(r.path) for r in dataset.records]
    embeddings = np.random.default_rng(0).normal(size=(len(images), 16))
    embeddings[5] = embeddings[9] + 0.01  # two unrelated photos the backbone sees as one
    audit = run_audit(list(dataset.records), images, embeddings)
    assert audit.groups[5] == audit.groups[9]
    linked = [p for p in audit.pairs if {p.first, p.second} == {5, 9}]
    assert linked and linked[0].cosine > 0.99 and not linked[0].exact
