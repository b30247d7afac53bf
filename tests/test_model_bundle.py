"""Bundle loading: a broken bundle fails at start-up with one message naming the problem."""

from __future__ import annotations

import json
import shutil

import pytest

from model.bundle import load_bundle
from model.errors import BundleError
from model.preprocess import ViewAveraging


@pytest.fixture
def bundle_copy(test_bundle_path, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(test_bundle_path, target)
    return target


def _edit_manifest(folder, **changes):
    path = folder / "bundle.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_valid_bundle_loads(test_bundle_path):
    bundle = load_bundle(test_bundle_path)
    manifest = bundle.manifest
    assert manifest.positive_class == "mpox" and manifest.quantization == "int8"
    assert set(manifest.files) == {"model.tflite", "model.keras", "MODEL_CARD.md"}
    assert bundle.model_id == "test-mobilenet-v2-035@0.0.1"
    assert "not a diagnosis" in bundle.card_path.read_text()


def test_manifest_carries_what_the_issue_requires(test_bundle_path):
    data = json.loads((test_bundle_path / "bundle.json").read_text())
    for key in (
        "schema_version", "model_id", "model_version", "class_names", "positive_class",
        "input_size", "normalisation", "thresholds", "quantization", "metrics",
        "training_data", "created_at", "code_version", "files",
    ):
        assert key in data, key


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda f: (f / "model.tflite").unlink(), "model.tflite is missing"),
        (lambda f: (f / "model.tflite").write_bytes(b"not a model"), "does not match"),
        (lambda f: (f / "MODEL_CARD.md").write_text("edited"), "does not match"),
        (lambda f: (f / "bundle.json").write_text("{not json"), "not valid JSON"),
        (lambda f: (f / "bundle.json").unlink(), "not a model bundle"),
        (lambda f: _edit_manifest(f, schema_version=99), "schema_version"),
        (lambda f: _edit_manifest(f, positive_class="smallpox"), "positive class"),
        (lambda f: _edit_manifest(f, quantization="int3"), "quantization"),
        (lambda f: _edit_manifest(f, thresholds={"positive": 0.2, "inconclusive": 0.9}), "thresholds"),
        (lambda f: _edit_manifest(f, class_names=None), "bad field"),
    ],
)
def test_broken_bundle_gives_one_clear_error(bundle_copy, breakage, message):
    breakage(bundle_copy)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


def test_bundle_written_before_classifier_views_reads_as_the_photo_alone(bundle_copy):
    # bundle.json's checksums cover the other files only, so an older manifest still loads.
    data = json.loads((bundle_copy / "bundle.json").read_text())
    assert data["view_averaging"] == "mirror"
    del data["view_averaging"]
    (bundle_copy / "bundle.json").write_text(json.dumps(data))
    assert load_bundle(bundle_copy).manifest.view_averaging is ViewAveraging.NONE


def test_unknown_view_averaging_is_refused(bundle_copy):
    _edit_manifest(bundle_copy, view_averaging="rotate")
    with pytest.raises(BundleError, match="bad field"):
        load_bundle(bundle_copy)


def test_bundle_without_the_check_reads_as_such(bundle_copy):
    manifest = load_bundle(bundle_copy).manifest
    assert manifest.schema_version == 2 and manifest.typicality is None
    _edit_manifest(bundle_copy, schema_version=1)  # written before the check existed
    assert load_bundle(bundle_copy).manifest.typicality is None


def test_missing_folder(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")
