"""Fitting the typicality check: out-of-fold scores, a threshold from real photos only, methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.errors import BundleError
from model.typicality import TypicalityMethod, TypicalityModel, TypicalitySpec
from training.typicality import (
    compare_methods,
    conformal_threshold,
    fit_typicality,
    leave_source_out_refusals,
    out_of_fold_scores,
)

WIDTH = 64


def _photos(count: int, seed: int = 0, direction: int = 0) -> np.ndarray:
    """ReLU-like embeddings around one direction, varying mostly along a few axes of their own,
    as a backbone's pooled features of one kind of picture do."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(WIDTH)
    axes = slice(direction * 8, direction * 8 + 8)
    centre[axes] = 3.0
    variation = np.zeros((count, WIDTH))
    variation[:, axes] = rng.normal(0, 1.0, (count, 8))
    return np.maximum(centre + variation + rng.normal(0, 0.1, (count, WIDTH)), 0).astype(np.float32)


def test_conformal_threshold_refuses_at_most_the_target_share():
    scores = np.arange(1, 100, dtype=float)  # 99 photos
    threshold = conformal_threshold(scores, 0.02)
    assert threshold == 98 and (scores > threshold).sum() == 1
    # Too few photos to promise 2 %: the highest score, so none of them is refused.
    assert conformal_threshold(np.arange(10.0), 0.02) == 9


@pytest.mark.parametrize("method", list(TypicalityMethod))
def test_fitted_check_refuses_other_pictures_and_few_real_ones(method):
    photos, others = _photos(120), _photos(40, seed=1, direction=5)
    fit = fit_typicality(photos, np.arange(len(photos)), method=method)
    assert fit.spec.method is method and fit.spec.photos == 120 and fit.spec.folds == 10
    assert fit.spec.out_of_fold_refusal_rate <= 0.02
    assert fit.out_of_fold_refused.sum() == round(fit.spec.out_of_fold_refusal_rate * 120)
    new_real = fit.model.scores(_photos(200, seed=2)) > fit.spec.threshold
    assert new_real.mean() <= 0.06  # exchangeable new photos: about the target share
    assert (fit.model.scores(others) > fit.spec.threshold).all()


def test_a_photo_is_never_scored_against_its_own_copy():
    from training.typicality import group_folds

    photos = _photos(30)
    doubled = np.concatenate([photos, photos])  # every photo twice: a near-duplicate pair
    pairs = np.concatenate([np.arange(30), np.arange(30)])
    grouped = out_of_fold_scores(doubled, group_folds(pairs, None, 5, 0), neighbours=1)
    assert (grouped > 1e-3).all()
    # Folds that split each pair score every photo against its copy: 0, and a threshold too low.
    halves = [(np.arange(30, 60), np.arange(30)), (np.arange(30), np.arange(30, 60))]
    assert np.allclose(out_of_fold_scores(doubled, halves, neighbours=1), 0, atol=1e-3)


def test_statistics_survive_the_bundle_file(tmp_path: Path):
    photos = _photos(50)
    for method in TypicalityMethod:
        fit = fit_typicality(photos, np.arange(50), method=method, components=8)
        path = tmp_path / f"{method.value}.npz"
        path.write_bytes(fit.model.to_npz_bytes())
        again = TypicalityModel.from_npz(path, fit.spec)
        queries = _photos(5, seed=3)
        assert np.allclose(again.scores(queries), fit.model.scores(queries), atol=2e-3)


def test_spec_round_trips_and_rejects_nonsense():
    spec = fit_typicality(_photos(40), np.arange(40), neighbours=3).spec
    assert TypicalitySpec.from_json_dict(spec.to_json_dict()) == spec
    with pytest.raises(BundleError, match="typicality"):
        TypicalitySpec.from_json_dict({**spec.to_json_dict(), "method": "vibes"})
    with pytest.raises(BundleError, match="neighbours"):
        TypicalitySpec.from_json_dict({**spec.to_json_dict(), "neighbours": 0})


def test_per_source_and_leave_source_out_figures():
    photos = np.concatenate([_photos(40), _photos(40, seed=4, direction=5)])
    sources = ["a"] * 40 + ["b"] * 40
    fit = fit_typicality(photos, np.arange(80), sources=sources)
    assert set(fit.refused_by_source()) == {"a", "b"}
    assert sum(n for _, n in fit.refused_by_source().values()) == 80
    held_out = leave_source_out_refusals(photos, np.arange(80), sources)
    # Each source lies in its own direction: a check that never saw it refuses all of it.
    assert held_out == {"a": (40, 40), "b": (40, 40)}


def test_methods_are_compared_on_the_same_sets():
    rows = compare_methods(_photos(60), np.arange(60), None, {"other": _photos(10, seed=5, direction=6)})
    assert len(rows) >= 2 and {row["method"].split()[0] for row in rows} == {"knn_cosine", "mahalanobis"}
    for row in rows:
        assert row["other"][1] == 10 and row["out of fold"][1] == 60 and row["out of fold"][0] <= 1
    default = next(row for row in rows if row["method"] == "knn_cosine k=10")
    assert default["other"] == (10, 10)
