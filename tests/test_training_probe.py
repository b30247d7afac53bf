"""training.probe: colour constancy, centre crops, and heads that never saw the source they score."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.probe import centre_crop, colour_constancy, held_out_probabilities, main, probe_row


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


def test_each_source_is_scored_by_a_head_that_never_saw_it():
    rng = np.random.default_rng(1)
    sources = np.repeat(np.array(["a", "b", "c"]), 20)
    is_mpox = np.tile(np.arange(20) % 2 == 0, 3)
    features = rng.normal(size=(60, 4)) + is_mpox[:, None] * 1.5
    probabilities, chosen = held_out_probabilities(features, is_mpox, sources, (0.01, 1.0))
    assert set(chosen) == {"a", "b", "c"} and set(chosen.values()) <= {0.01, 1.0}
    from sklearn.linear_model import LogisticRegression

    alone = LogisticRegression(C=chosen["a"], class_weight="balanced", max_iter=3000)
    alone.fit(features[sources != "a"], is_mpox[sources != "a"])
    assert probabilities[sources == "a"] == pytest.approx(alone.predict_proba(features[sources == "a"])[:, 1])
    assert roc_auc(is_mpox[sources == "b"], probabilities[sources == "b"]) > 0.8
    row = probe_row("x", probabilities, is_mpox, sources, ("a", "b", "c"))
    assert row.startswith("| x | ") and row.count("|") == 5 and "/10" in row


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
    code = main(["--data", *(str(tmp_path / s) for s in ("one", "two", "three")), "--weights", "none",
                 "--backbones", "mobilenet_v2_035", "--input-size", "96", "--colour", "none,grey-world",
                 "--crops", "1.0,0.7", "--strengths", "0.1,1", "--out", str(out)])
    assert code == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| mobilenet_v2_035")]
    assert len(rows) == 4 and all(row.rstrip().endswith("/4 |") for row in rows)  # 4 look-alike photos
