"""Operating points: the threshold rules and what they promise on photos not yet seen."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import choose_threshold, conformal_threshold, operating_threshold, rates_at


def test_conformal_threshold_is_the_kth_lowest_positive():
    positives = np.linspace(0.2, 0.9, 100)
    is_positive = np.r_[np.ones(100, bool), np.zeros(50, bool)]
    p = np.r_[positives, np.linspace(0.0, 0.3, 50)]
    # floor(101 * 0.05) = 5: the 5th lowest positive, so 96 of the 100 stay at or above it
    assert conformal_threshold(is_positive, p, 0.95) == pytest.approx(positives[4])
    # the empirical rule stops at the last positive it needs: 95 of 100
    assert choose_threshold(is_positive, p, 0.95) == pytest.approx(positives[5])
    # with 26 positives (a fold's training photos here) floor(27 * 0.05) = 1: every one is kept
    assert conformal_threshold(is_positive[:26], p[:26], 0.95) == pytest.approx(positives[0])
    assert operating_threshold("conformal", is_positive, p, 0.95) == conformal_threshold(is_positive, p, 0.95)
    assert operating_threshold("empirical", is_positive, p, 0.95) == choose_threshold(is_positive, p, 0.95)


def test_conformal_threshold_holds_its_sensitivity_on_new_photos():
    """Over many draws, new positives clear a threshold chosen on 26 others at least 95 % of the
    time with the conformal rule; the empirical rule falls short, as the nested study found."""
    rng = np.random.default_rng(0)
    caught = {"conformal": [], "empirical": []}
    is_positive = np.r_[np.ones(26, bool), np.zeros(60, bool)]
    for _ in range(2000):
        chosen_on, new = np.r_[rng.beta(5, 2, 26), rng.beta(2, 5, 60)], rng.beta(5, 2, 20)
        for rule in caught:
            threshold = operating_threshold(rule, is_positive, chosen_on, 0.95)
            caught[rule].append(rates_at(np.ones(20, bool), new, threshold)[0])
    assert np.mean(caught["conformal"]) >= 0.95
    assert np.mean(caught["empirical"]) < 0.95


def test_no_positives_is_a_clear_error():
    with pytest.raises(ValueError, match="no positive photos"):
        conformal_threshold(np.zeros(5, bool), np.linspace(0, 1, 5), 0.95)
