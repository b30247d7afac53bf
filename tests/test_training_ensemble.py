"""training.ensemble: an ensemble judged on its members' folds, its threshold chosen as theirs are."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.test_training_cv import _synthetic_inputs
from training.config import StudyConfig
from training.crossval import run_folds
from training.ensemble import ensemble_rows, served_key
from training.evaluate import operating_threshold
from training.features import Embeddings
from training.train import group_splits


def _member_folds(tmp_path, seed: int) -> tuple[object, list[dict]]:
    inputs = _synthetic_inputs(0)
    rng = np.random.default_rng(seed)  # same photos and labels, another backbone's view of them
    embeddings = inputs.embeddings
    noise = rng.normal(scale=1.5, size=embeddings.plain.shape)
    inputs = dataclasses.replace(inputs, embeddings=Embeddings(
        embeddings.plain + noise, embeddings.augmented + noise[:, None], embeddings.mirrored + noise))
    splits = group_splits(inputs.labels, inputs.groups, 3, 0)
    return inputs, run_folds(inputs, splits, tmp_path / f"m{seed}", "key")


def test_an_ensemble_of_one_model_twice_is_that_model(tmp_path):
    """The averaged inner predictions line up with each fold's training photos: the same member
    twice gives back its own thresholds and figures."""
    inputs, rows = _member_folds(tmp_path, 1)
    twice = ensemble_rows([rows, rows], inputs.labels, inputs.class_names, "mpox", "conformal", 0.95)
    for own, ensemble in zip(rows, twice, strict=True):
        assert ensemble["threshold"] == pytest.approx(own["threshold"])
        for metric in ("accuracy", "positive_auc", "sensitivity_at_threshold", "specificity_at_threshold"):
            assert ensemble[metric] == pytest.approx(own[metric], nan_ok=True)


def test_an_ensemble_averages_its_members_and_chooses_its_threshold_on_their_mean_inner_predictions(tmp_path):
    inputs, first = _member_folds(tmp_path, 1)
    _, second = _member_folds(tmp_path, 2)
    rows = ensemble_rows([first, second], inputs.labels, inputs.class_names, "mpox", "conformal", 0.95)
    assert rows[0]["backbone"] == "mobilenet_v2_035 + mobilenet_v2_035"
    for fold, row in enumerate(rows):
        assert np.allclose(row["probabilities"], (np.array(first[fold]["probabilities"])
                                                  + np.array(second[fold]["probabilities"])) / 2)
        test = np.array(row["test_index"])
        train = np.setdiff1d(np.arange(len(inputs.labels)), test)
        inner = (np.array(first[fold]["inner_positive_probabilities"])
                 + np.array(second[fold]["inner_positive_probabilities"])) / 2
        assert len(inner) == len(train)
        assert row["threshold"] == pytest.approx(operating_threshold("conformal", inputs.labels[train] == 1, inner, 0.95))
    assert not np.allclose(first[0]["inner_positive_probabilities"], second[0]["inner_positive_probabilities"])


def test_members_on_other_folds_or_from_older_runs_are_refused(tmp_path):
    inputs, rows = _member_folds(tmp_path, 1)
    shifted = [dict(row, test_index=row["test_index"][1:]) for row in rows]
    with pytest.raises(ValueError, match="same folds"):
        ensemble_rows([rows, shifted], inputs.labels, inputs.class_names, "mpox", "conformal", 0.95)
    older = [{k: v for k, v in row.items() if k != "inner_positive_probabilities"} for row in rows]
    with pytest.raises(ValueError, match="rerun them"):
        ensemble_rows([rows, older], inputs.labels, inputs.class_names, "mpox", "conformal", 0.95)


def test_served_probabilities_are_used_only_when_every_member_has_them():
    assert served_key([[{"served_probabilities": []}], [{"served_probabilities": []}]]) == "served_probabilities"
    assert served_key([[{"served_probabilities": []}], [{}]]) == "probabilities"


def test_an_ensemble_must_name_two_of_the_studys_backbones(tmp_path):
    base = dict(data=(tmp_path,), out=tmp_path, backbones=("mobilenet_v1", "mobilenet_v2"))
    StudyConfig(**base, ensembles=(("mobilenet_v1", "mobilenet_v2"),))
    for members in (("mobilenet_v1",), ("mobilenet_v1", "mobilenet_v1"), ("mobilenet_v1", "resnet50")):
        with pytest.raises(ValueError, match="two or more"):
            StudyConfig(**base, ensembles=(members,))
