"""training.data: both layouts are read, MCSI labels are mapped with the acne level kept."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from training.audit import run_audit
from training.data import DataError, load_dataset, load_pixels, read_image


def _photo(seed: int) -> Image.Image:
    blocks = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((96, 80), Image.Resampling.BILINEAR)


def _mcsi(folder, rows):
    (folder / "images").mkdir(parents=True)
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["img_id", "diagnostic"])
        for k, (img_id, diagnostic, write) in enumerate(rows):
            writer.writerow([img_id, diagnostic])
            if write:
                _photo(k).save(folder / "images" / (img_id if "." in img_id else f"{img_id}.jpg"))
    return folder


def test_mcsi_layout_maps_classes_and_keeps_acne_levels(tmp_path):
    rows = [
        ("mpx_1.jpg", "monkeypox", True), ("mpx_2", "monkeypox", True),  # id without extension
        ("ack_1.jpg", "acne_l1", True), ("ack_2.jpg", "acne_l2", True), ("ack_3.jpg", "acne_l3", True),
        ("chk_1.jpg", "chickenpox", True), ("nor_1.png", "normal", True), ("gone.jpg", "normal", False),
    ]
    dataset = load_dataset(_mcsi(tmp_path / "MCSI", rows))
    assert dataset.layout == "mcsi"
    assert dataset.class_names == ("acne", "chickenpox", "mpox", "normal")
    assert dataset.missing == ("gone.jpg",)
    by_source = {r.source_label: r.label for r in dataset.records}
    assert by_source == {"monkeypox": "mpox", "acne_l1": "acne", "acne_l2": "acne", "acne_l3": "acne",
                         "chickenpox": "chickenpox", "normal": "normal"}
    assert list(dataset.labels) == [2, 2, 0, 0, 0, 1, 3]
    images = [read_image(r.path) for r in dataset.records]
    audit = run_audit(list(dataset.records), images, None, missing=dataset.missing)
    summary = audit.summary()
    assert summary["classes"] == {"acne": 3, "chickenpox": 1, "mpox": 2, "normal": 1}
    assert summary["source_labels"]["acne_l2"] == 1 and summary["source_labels"]["monkeypox"] == 2
    assert summary["missing_from_metadata"] == ["gone.jpg"]


def test_mcsi_metadata_without_required_columns_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "metadata.csv").write_text("name,label\nx.jpg,normal\n")
    with pytest.raises(DataError, match="img_id,diagnostic"):
        load_dataset(tmp_path)


def test_folder_layout_and_pixels_match_serving_resize(tmp_path):
    for k, name in enumerate(("mpox", "normal")):
        (tmp_path / name).mkdir()
        _photo(k).save(tmp_path / name / "a.jfif", format="JPEG")
    (tmp_path / "normal" / "notes.txt").write_text("not a photo")
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "folders" and len(dataset) == 2
    images = [read_image(r.path) for r in dataset.records]
    plain, augmented = load_pixels(images, (32, 32), copies=2, seed=0)
    assert plain.shape == (2, 32, 32, 3) and augmented.shape == (2, 2, 32, 32, 3)
    from model.preprocess import prepare_pixels

    assert np.array_equal(plain[0], prepare_pixels(images[0], (32, 32)))
    assert not np.array_equal(augmented[0, 0], plain[0])
    again, _ = load_pixels(images[1:], (32, 32), copies=0)
    assert np.array_equal(again[0], plain[1])


def test_one_class_is_refused(tmp_path):
    (tmp_path / "mpox").mkdir()
    _photo(0).save(tmp_path / "mpox" / "a.png")
    with pytest.raises(DataError, match="at least two classes"):
        load_dataset(tmp_path)
