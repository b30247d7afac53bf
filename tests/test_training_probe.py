"""training.probe: colour constancy, centre crops, and heads that never saw the source they score."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.features import Embeddings
from training.probe import (
    HEAD,
    centre_crop,
    colour_constancy,
    crop_views,
    held_out_probabilities,
    main,
    probe_row,
)


def test_colour_constancy_makes_a_tinted_photo_grey_and_keeps_its_pattern():
    rng = np.random.default_rng(0)
    grey = rng.integers(60, 180, size=(1, 16, 16, 1)).repeat(3, axis=3)
    tinted = np.clip(grey * np.array([1.3, 1.0, 0.7]), 0, 255).astype(np.uint8)
    for power in (1.0, 6.0):
        corrected = colour_constancy(tinted, power).astype(float)
        means = corrected.reshape(-1, 3).mean(0)
        assert means.max() - means.min() < 0.05 * means.mean()  # the cast is gone
        assert np.corrcoef(corrected[..., 1].ravel(), grey[..., 0].ravel())[0, 1] > 0.99
    assert colour_constancy(tinted, None) is tinted


def test_centre_crop_zooms_in_on_the_middle():
    photo = np.zeros((1, 20, 20, 3), np.uint8)
    photo[0, 5:15, 5:15] = 255  # a white square filling the middle half
    assert centre_crop(photo, 1.0) is photo
    zoomed = centre_crop(photo, 0.5)
    assert zoomed.shape == photo.shape and zoomed[0, 2:18, 2:18].min() == 255

REPO = Path(__file__).resolve().parent.parent


def test_five_crops_are_the_whole_photo_the_centre_and_each_corner():
    photo = np.zeros((1, 20, 20, 3), np.uint8)
    photo[0, :10, :10] = 255  # white top-left quarter
    whole, centre, top_left, top_right, bottom_left, bottom_right = crop_views(photo, "5x0.5")
    assert whole is photo
    assert top_left.min() == 255 and top_right[0, 2:18, 2:18].max() == 0 and bottom_right.max() == 0
    assert bottom_left[0, 2:18, 2:18].max() == 0 and centre[0, :8, :8].min() == 255  # the centre crop sees part of it
    (single,) = crop_views(photo, "0.5")
    assert np.array_equal(single, centre)


def small_embeddings(seed: int) -> tuple[Embeddings, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sources = np.repeat(np.array(["a", "b", "c"]), 20)
    is_mpox = np.tile(np.arange(20) % 2 == 0, 3)
    plain = rng.normal(size=(60, 4)) + is_mpox[:, None] * 1.5
    mirrored = plain + rng.normal(scale=0.3, size=plain.shape)
    return Embeddings(plain, np.zeros((60, 0, 4)), mirrored), is_mpox, sources


def test_each_source_is_scored_by_a_head_that_never_saw_it():
    from sklearn.linear_model import LogisticRegression

    embeddings, is_mpox, sources = small_embeddings(1)
    head = dataclasses.replace(HEAD, cross_source_regularisation=(0.01, 1.0))
    probabilities, chosen = held_out_probabilities(embeddings, is_mpox, sources, np.arange(60), head)
    assert set(chosen) == {"a", "b", "c"} and set(chosen.values()) <= {0.01, 1.0}
    alone = LogisticRegression(C=chosen["a"], class_weight="balanced", max_iter=3000)
    alone.fit(embeddings.plain[sources != "a"], is_mpox[sources != "a"])
    held = sources == "a"
    served = (alone.predict_proba(embeddings.plain[held])[:, 1] + alone.predict_proba(embeddings.mirrored[held])[:, 1]) / 2
    assert probabilities[held] == pytest.approx(served)  # the photo and its mirror, averaged as served
    assert roc_auc(is_mpox[sources == "b"], probabilities[sources == "b"]) > 0.8
    row = probe_row("x", probabilities, is_mpox, sources, ("a", "b", "c"))
    assert row.startswith("| x | ") and row.count("|") == 5 and "/10" in row


def test_the_strength_is_chosen_as_the_study_chooses_it_across_sources():
    """The same choice as `fit_head` over the training sources held out one at a time, and one
    strength given is used as is."""
    from training.train import fit_head

    embeddings, is_mpox, sources = small_embeddings(3)
    head = dataclasses.replace(HEAD, cross_source_regularisation=(0.0003, 0.01, 1.0))
    _, chosen = held_out_probabilities(embeddings, is_mpox, sources, np.arange(60), head)
    train = np.flatnonzero(sources != "c")
    study = fit_head(embeddings, is_mpox.astype(int), np.arange(60), train, 2, head, 0, sources)
    assert chosen["c"] == study.regularisation
    fixed = dataclasses.replace(HEAD, cross_source_regularisation=(0.05,))
    assert set(held_out_probabilities(embeddings, is_mpox, sources, np.arange(60), fixed)[1].values()) == {0.05}


def test_a_head_of_finer_conditions_scores_p_mpox_and_chooses_its_strength_on_the_screening_question():
    """Each source's other photos are a condition of their own (as in the real sources), so a
    held-out source's condition is a class the head never saw: the strength is still chosen,
    on P(mpox) against the rest, and every photo gets P(mpox) from a head that never saw its source."""
    from training.train import fit_head

    embeddings, is_mpox, sources = small_embeddings(4)
    conditions = np.where(is_mpox, "Monkeypox", np.char.add("rash_", sources))
    head = dataclasses.replace(HEAD, cross_source_regularisation=(0.01, 1.0), balance="sources")
    probabilities, chosen = held_out_probabilities(embeddings, is_mpox, sources, np.arange(60), head, conditions)
    assert ((probabilities >= 0) & (probabilities <= 1)).all() and set(chosen.values()) <= {0.01, 1.0}
    assert all(roc_auc(is_mpox[sources == s], probabilities[sources == s]) > 0.8 for s in "abc")
    # the study's fit_head on the four classes (mpox, rash_a, rash_b, rash_c) without source "c"
    classes, labels = np.unique(np.where(is_mpox, "mpox", np.char.add("rash_", sources)), return_inverse=True)
    train = np.flatnonzero(sources != "c")
    fitted = fit_head(embeddings, labels, np.arange(60), train, 4, head, 0, sources, positive=0)
    assert fitted.regularisation == chosen["c"]
    assert fitted.inner_log_loss < 1.0  # P(mpox) scored, not the log of ~0 for rash_a held out
    assert set(fitted.model.classes_) == {0, 1, 2}  # mpox and the two training sources' rashes


def roc_auc(labels, scores):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(labels, scores)


def test_probe_runs_on_small_sources_without_weights(tmp_path):
    """End to end on random weights (no network, no shared data): a row per backbone and variant."""
    rng = np.random.default_rng(2)
    for source, classes in {"one": ("mpox", "normal"), "two": ("mpox", "others"), "three": ("Acne_vulgaris",)}.items():
        for name in classes:
            folder = tmp_path / source / name
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "probe.md"
    command = [sys.executable, "-m", "training.probe", "--data", *(str(tmp_path / s) for s in ("one", "two", "three")),
               "--weights", "none", "--backbones", "mobilenet_v2_035,mobilenet_v3_small", "--input-size", "96",
               "--colour", "grey-world", "--crops", "5x0.7", "--strengths", "0.1,1",  # one of each, to keep it short
               "--features", "pooled,levels", "--embedding-norm", "rms", "--balance", "sources", "--labels", "screening,conditions",
               "--ensembles", "mobilenet_v2_035+mobilenet_v3_small", "--out", str(out)]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "oneDNN" not in run.stderr and "cpu_feature_guard" not in run.stderr  # TensorFlow's start-up notes
    rows = [line for line in out.read_text().splitlines() if line.startswith("| mobilenet_")]
    variants = 2 * 2  # features, labels
    assert len(rows) == 3 * variants and all(row.rstrip().endswith("/4 |") for row in rows)  # 4 look-alike photos
    assert sum("(mean P)" in row for row in rows) == variants
    assert sum(", rms, grey-world, 5x0.7, levels, sources, conditions: C" in row for row in rows) == 2


def test_an_ensemble_of_a_backbone_not_probed_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "a"), str(tmp_path / "b"), "--backbones", "mobilenet_v1",
              "--ensembles", "mobilenet_v1+mobilenet_v1_075"])
    assert "not in --backbones: mobilenet_v1_075" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "value"), [("--features", "pooled,deep"), ("--balance", "patients"),
                                               ("--labels", "conditions,icd10"),
                                               ("--embedding-norm", "none,l3")])
def test_an_unknown_variant_is_refused_before_any_work(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "a"), str(tmp_path / "b"), option, value])
    assert f"{option}: unknown" in capsys.readouterr().err
