"""The committed demo bundle (`models/demo/`): it verifies, and it serves what the study trained.

The final model was fitted on all 93 shared photos, so these are training-set figures: they do
not measure accuracy (docs/STUDY.md does, out of fold). They catch a bundle that loads but is
served differently from how it was trained (a wrong size, normalisation or view), which would
drop it towards chance.
"""

from __future__ import annotations

import numpy as np
import pytest

from model import Verdict, load_bundle, load_screener
from model.preprocess import ViewAveraging
from tests.bundles import SHARED_DATA
from tests.conftest import DEMO_BUNDLE


@pytest.fixture(scope="module")
def demo_screener():
    return load_screener(DEMO_BUNDLE, heatmap_method=None)


def test_demo_bundle_verifies_and_says_what_it_is():
    manifest = load_bundle(DEMO_BUNDLE).manifest
    assert manifest.quantization == "int8" and manifest.backbone == "mobilenet_v2_035"
    assert manifest.positive_class == "mpox" and manifest.view_averaging is ViewAveraging.MIRROR
    assert manifest.training_data["audit"]["photos"] == 93
    assert "out_of_fold_sensitivity" in manifest.metrics
    card = (DEMO_BUNDLE / "MODEL_CARD.md").read_text()
    assert "not a diagnosis" in card and "not validated clinically" in card


def test_demo_bundle_serves_what_the_study_trained(demo_screener):
    if not SHARED_DATA.is_dir():
        pytest.skip("shared photos are not present")
    manifest = demo_screener.manifest
    labels, predicted, p_mpox = [], [], []
    for path in sorted(p for p in SHARED_DATA.rglob("*") if p.is_file()):
        result = demo_screener.screen(path.read_bytes(), with_heatmap=False)
        assert result.verdict in (Verdict.POSITIVE, Verdict.INCONCLUSIVE, Verdict.NEGATIVE), (path, result)
        labels.append(path.parent.name)
        predicted.append(result.predicted_class)
        p_mpox.append(result.positive_probability)
    labels, predicted, p_mpox = np.array(labels), np.array(predicted), np.array(p_mpox)
    assert (labels == predicted).mean() >= 0.9
    assert (p_mpox[labels == "mpox"] >= manifest.thresholds.positive).mean() >= 0.95
