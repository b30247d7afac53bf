"""Screening end to end with a real (small) bundle: verdicts, refusals, heatmaps, thresholds."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.bundle import Thresholds
from model.decision import decide
from model.imaging import decode_image
from model.inference import Classifier
from model.preprocess import ViewAveraging, normalise, prepare_pixels
from model.types import Reason, ScreeningResult, Verdict
from tests.images import AWKWARD_VALID, BAD_INPUTS

QUALITY_REFUSALS = {
    "all_black": Reason.TOO_DARK,
    "all_white": Reason.OVEREXPOSED,
    "random_noise": Reason.NOT_SKIN,
    "blurred_flat": Reason.TOO_BLURRY,
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_every_bad_input_gets_a_refusal_not_a_crash(screener, name):
    result = screener.screen(BAD_INPUTS[name]())
    assert result.verdict in (Verdict.ERROR, Verdict.RETAKE)
    assert result.reason is not None and result.detail
    assert result.probabilities == {} and result.heatmap_jpeg is None
    assert result.model_id == screener.model_id


@pytest.mark.parametrize("name", sorted(QUALITY_REFUSALS))
def test_quality_gate_asks_for_a_retake(screener, name):
    result = screener.screen(BAD_INPUTS[name]())
    assert result.verdict is Verdict.RETAKE
    assert result.reason is QUALITY_REFUSALS[name]


# Decoded fine, but without colour: the gate refuses black-and-white pictures (issue 10).
GREY_VALID = ("grayscale", "sixteen_bit_png")


@pytest.mark.parametrize("name", sorted(set(AWKWARD_VALID) - set(GREY_VALID)))
def test_awkward_photos_are_screened(screener, name):
    result = screener.screen(AWKWARD_VALID[name]())
    assert result.verdict in (Verdict.POSITIVE, Verdict.INCONCLUSIVE, Verdict.NEGATIVE), result


@pytest.mark.parametrize("name", GREY_VALID)
def test_grey_photos_are_decoded_then_refused_as_black_and_white(screener, name):
    result = screener.screen(AWKWARD_VALID[name]())
    assert (result.verdict, result.reason) == (Verdict.RETAKE, Reason.NOT_A_CLOSE_SKIN_PHOTO), result


def test_real_photo_gives_probabilities_heatmap_and_timings(screener, shared_photo_paths):
    photo = next(p for p in shared_photo_paths if p.parent.name == "mpox")
    result = screener.screen(photo.read_bytes())
    assert result.verdict in (Verdict.POSITIVE, Verdict.INCONCLUSIVE, Verdict.NEGATIVE)
    assert set(result.probabilities) == {"chickenpox", "measles", "mpox", "normal"}
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert result.predicted_class == max(result.probabilities, key=result.probabilities.get)
    assert result.positive_probability == pytest.approx(result.probabilities["mpox"])
    heatmap = Image.open(io.BytesIO(result.heatmap_jpeg))
    assert heatmap.format == "JPEG" and min(heatmap.size) >= 200
    timings = result.timings
    assert timings.inference_ms > 0 and timings.heatmap_ms > 0 and timings.render_ms > 0


def test_the_model_answers_differ_between_photos(screener, shared_photo_paths):
    """Guards against a constant output: different photos, different probabilities."""
    outputs = {
        tuple(round(v, 3) for v in screener.screen(p.read_bytes(), with_heatmap=False).probabilities.values())
        for p in shared_photo_paths[::8]
    }
    assert len(outputs) > 3


def test_heatmap_depends_on_the_photo(screener, shared_photo_paths):
    first, second = (screener.screen(p.read_bytes()) for p in shared_photo_paths[:2])
    assert first.heatmap_jpeg != second.heatmap_jpeg


def test_result_round_trips_through_json(screener, shared_photo_paths):
    result = screener.screen(shared_photo_paths[0].read_bytes())
    again = ScreeningResult.from_json_dict(result.to_json_dict(), heatmap_jpeg=result.heatmap_jpeg)
    assert again.heatmap_jpeg == result.heatmap_jpeg
    assert again.probabilities == pytest.approx(result.probabilities, abs=1e-6)
    assert (again.verdict, again.predicted_class, again.model_id) == (
        result.verdict, result.predicted_class, result.model_id
    )
    assert again.timings.total_ms == pytest.approx(result.timings.total_ms, abs=0.01)


@pytest.mark.parametrize(
    ("probability", "verdict"),
    [(0.9, Verdict.POSITIVE), (0.6, Verdict.POSITIVE), (0.45, Verdict.INCONCLUSIVE), (0.1, Verdict.NEGATIVE)],
)
def test_decision_band(probability, verdict):
    assert decide(probability, Thresholds(positive=0.6, inconclusive=0.4)) is verdict


def test_thresholds_must_be_ordered():
    from model.errors import BundleError

    with pytest.raises(BundleError):
        Thresholds(positive=0.3, inconclusive=0.5)


def test_internal_failure_becomes_an_error_result(screener, monkeypatch, shared_photo_paths):
    def broken(batch):
        raise RuntimeError("interpreter exploded")

    monkeypatch.setattr(screener.classifier, "predict_with_embedding", broken)
    result = screener.screen(shared_photo_paths[0].read_bytes())
    assert result.verdict is Verdict.ERROR and result.reason is Reason.INTERNAL_ERROR


def test_screener_is_thread_safe(screener, shared_photo_paths):
    from concurrent.futures import ThreadPoolExecutor

    photos = [p.read_bytes() for p in shared_photo_paths[:6]]
    alone = [screener.screen(p).probabilities for p in photos]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda p: screener.screen(p).probabilities, photos))
    for a, b in zip(alone, together, strict=True):
        assert np.allclose(list(a.values()), list(b.values()))


def test_probabilities_are_the_mean_over_the_photo_and_its_mirror_image(screener, shared_photo_paths):
    manifest = screener.manifest
    assert manifest.view_averaging is ViewAveraging.MIRROR
    single = Classifier(screener.bundle.tflite_path)
    views_differ = 0
    for path in shared_photo_paths[::4]:
        photo = path.read_bytes()
        pixels = prepare_pixels(decode_image(photo), manifest.input_size)
        own = single.predict(normalise(pixels, manifest.normalisation)[np.newaxis])
        mirrored = single.predict(normalise(pixels[:, ::-1], manifest.normalisation)[np.newaxis])
        result = screener.screen(photo, with_heatmap=False)
        assert [result.probabilities[c] for c in manifest.class_names] == pytest.approx((own + mirrored) / 2, abs=1e-6)
        views_differ += not np.allclose(own, mirrored, atol=1e-3)
    assert views_differ  # the views do differ on some photos, so the mean is not a no-op
