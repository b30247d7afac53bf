"""The typicality check as served: a small fitted bundle refuses pictures unlike its training
photos before any verdict; a bundle without the check still loads and says so once."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from model.bundle import SCHEMA_VERSION, load_bundle, sha256_file
from model.errors import BundleError
from model.screening import Screener
from model.types import Reason, Verdict
from model.typicality import TYPICALITY_NAME
from tests.bundles import SHARED_WEIGHTS, build_test_bundle, shared_photos
from tests.images import encode, skin_photo
from training.nonskin import generated_pictures


@pytest.fixture(scope="module")
def checked_bundle_path(tmp_path_factory):
    return build_test_bundle(tmp_path_factory.mktemp("checked") / "bundle", typicality=True).path


@pytest.fixture(scope="module")
def checked_screener(checked_bundle_path):
    return Screener(load_bundle(checked_bundle_path), heatmap_method=None)


def test_bundle_carries_the_check_checksummed(checked_bundle_path, tmp_path):
    manifest = load_bundle(checked_bundle_path).manifest
    assert manifest.schema_version == SCHEMA_VERSION == 2
    spec = manifest.typicality
    assert spec.method.value == "knn_cosine" and spec.target_refusal_rate == 0.02
    assert spec.out_of_fold_refusal_rate <= 0.02 and spec.photos == 24
    assert manifest.files[TYPICALITY_NAME] == sha256_file(checked_bundle_path / TYPICALITY_NAME)
    copy = tmp_path / "bundle"
    shutil.copytree(checked_bundle_path, copy)
    (copy / TYPICALITY_NAME).write_bytes(b"edited")
    with pytest.raises(BundleError, match="typicality.npz does not match"):
        load_bundle(copy)
    (copy / TYPICALITY_NAME).unlink()
    with pytest.raises(BundleError, match="typicality.npz is missing"):
        load_bundle(copy)


def test_pictures_unlike_the_training_photos_are_refused_before_a_verdict(checked_screener):
    from model.imaging import decode_image
    from model.quality import assess

    if not SHARED_WEIGHTS.is_file():
        pytest.skip("needs the ImageNet weights in ../shared/weights: random features tell nothing apart")
    # The ones the quality gate lets through: the check is what stands between them and a verdict.
    pictures = [p for p in generated_pictures() if assess(decode_image(p.data)).reason is None]
    assert len(pictures) >= 10
    outcomes = {p.name: checked_screener.screen(p.data) for p in pictures}
    by_check = {name: r for name, r in outcomes.items() if r.reason is Reason.NOT_A_CLOSE_SKIN_PHOTO}
    assert len(by_check) >= 0.8 * len(pictures), {n: (r.verdict, r.reason) for n, r in outcomes.items()}
    for result in by_check.values():
        assert result.verdict is Verdict.RETAKE and result.probabilities == {}
        assert result.positive_probability is None and result.heatmap_jpeg is None
        assert result.timings.inference_ms > 0 and "typicality check" in result.detail


def test_photos_like_the_training_photos_get_a_verdict(checked_screener, shared_photo_paths):
    fitted = {path for path, _ in shared_photos()}  # the test bundle's head and check saw these
    held_out = [p for p in shared_photo_paths if p not in fitted][::4]
    verdicts = [checked_screener.screen(p.read_bytes(), with_heatmap=False).verdict for p in held_out]
    screened = [v for v in verdicts if v in (Verdict.POSITIVE, Verdict.INCONCLUSIVE, Verdict.NEGATIVE)]
    # 24 photos are a thin reference: most unseen real photos, not all, must get through.
    assert len(screened) >= 0.75 * len(verdicts), verdicts


def test_embedding_output_is_the_mean_over_the_views(checked_screener):
    from model.imaging import decode_image
    from model.preprocess import classifier_views, normalise, prepare_pixels

    manifest, classifier = checked_screener.manifest, checked_screener.classifier
    assert classifier.embedding_size == 1280
    pixels = prepare_pixels(decode_image(encode(skin_photo(), "PNG")), manifest.input_size)
    views = normalise(classifier_views(pixels, manifest.view_averaging), manifest.normalisation)
    probabilities, embedding = classifier.predict_views_with_embedding(views)
    each = [classifier.predict_with_embedding(view[np.newaxis]) for view in views]
    assert np.allclose(embedding, np.mean([e for _, e in each], axis=0))
    assert np.allclose(probabilities, classifier.predict_views(views))
    assert np.isclose(probabilities.sum(), 1.0)


def test_old_bundle_loads_and_skips_the_check_with_one_log_line(test_bundle_path, tmp_path, caplog):
    old = tmp_path / "old"
    shutil.copytree(test_bundle_path, old)
    data = json.loads((old / "bundle.json").read_text())
    data["schema_version"] = 1
    data.pop("typicality", None)
    (old / "bundle.json").write_text(json.dumps(data))
    with caplog.at_level(logging.INFO, logger="model"):
        screener = Screener(load_bundle(old), heatmap_method=None)
    assert screener.typicality is None and screener.classifier.embedding_size is None
    lines = [r for r in caplog.records if "typicality" in r.getMessage()]
    assert len(lines) == 1 and "skipped" in lines[0].getMessage()
    chart = next(p for p in generated_pictures() if p.name == "chart_bar")
    caplog.clear()
    result = screener.screen(chart.data, with_heatmap=False)
    assert result.reason is not Reason.NOT_A_CLOSE_SKIN_PHOTO  # no check: it gets a verdict
    assert not [r for r in caplog.records if "typicality" in r.getMessage()]  # said once, at load


def test_check_without_an_embedding_output_stops_start_up(checked_bundle_path, test_bundle_path, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(checked_bundle_path, mixed)
    shutil.copy(test_bundle_path / "model.tflite", mixed / "model.tflite")  # one output only
    data = json.loads((mixed / "bundle.json").read_text())
    data["files"]["model.tflite"] = sha256_file(mixed / "model.tflite")
    (mixed / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="embedding output"):
        Screener(load_bundle(mixed), heatmap_method=None)


def test_grey_picture_is_refused_by_the_gate(checked_screener):
    grey = encode(skin_photo().convert("L"), "PNG")
    result = checked_screener.screen(grey)
    assert (result.verdict, result.reason) == (Verdict.RETAKE, Reason.NOT_A_CLOSE_SKIN_PHOTO)
    assert result.timings.inference_ms == 0 and "quality gate" in result.detail
