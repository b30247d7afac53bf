"""Several sources in one study, per-source figures with Wilson intervals, and a bundle on sources."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from training.audit import run_audit
from training.data import NOT_MPOX, DataError, load_sources, read_image
from training.evaluate import wilson_interval
from training.sources import source_figures
from training.train import group_splits


def _photo(seed: int) -> Image.Image:
    blocks = np.random.default_rng(seed).integers(0, 255, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((120, 100), Image.Resampling.BICUBIC)


def _source(root, classes: dict[str, list[str]], seed: int):
    for c, (name, files) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for k, file in enumerate(files):
            _photo(seed + 100 * c + k).save(root / name / file)
    return root


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553-0.3662; and the edge cases the sources give.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson_interval(0, 10)[0] == 0 and round(wilson_interval(0, 10)[1], 4) == 0.2775
    assert round(wilson_interval(29, 29)[0], 3) == 0.883 and wilson_interval(29, 29)[1] == pytest.approx(1)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_source_figures_count_calls_at_the_threshold_and_by_condition():
    is_mpox = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    p = np.array([0.9, 0.5, 0.1, 0.6, 0.2, 0.05, 0.7])
    classes = ["mpox", "mpox", "mpox", "acne", "acne", "herpes", "herpes"]
    figures = source_figures("s", is_mpox, p, 0.5, classes)
    assert (figures.sensitivity.hits, figures.sensitivity.total) == (2, 3)
    assert (figures.specificity.hits, figures.specificity.total) == (2, 4)
    assert (figures.called_mpox.hits, figures.called_mpox.total) == (2, 4)
    assert {k: (r.hits, r.total) for k, r in figures.called_mpox_by_class.items()} == {"acne": (1, 2), "herpes": (1, 2)}
    assert figures.auc == pytest.approx(7 / 12)  # 7 of the 12 (mpox, other) pairs ranked right
    only_negatives = source_figures("lookalikes", np.zeros(3, bool), np.array([0.1, 0.6, 0.9]), 0.5)
    assert math.isnan(only_negatives.auc) and only_negatives.called_mpox.hits == 2


def test_sources_map_to_the_screening_question_and_patients_share_a_fold(tmp_path):
    web = _source(tmp_path / "web", {"Monkeypox": ["1.png", "2.png"], "Normal": ["1.png", "2.png"]}, 0)
    # msld-v1 style: M<patient>_<n>; patient 1's three photos must stay together
    msld = _source(tmp_path / "msld", {"mpox": ["M1_01.png", "M1_02.png", "M1_03.png", "M2_01.png"],
                                       "others": ["NM1_01.png", "NM3_01.png", "NM3_02.png"]}, 1000)
    lookalikes = _source(tmp_path / "lookalikes", {"Herpes_simplex": ["a.png", "b.png"]}, 2000)
    dataset = load_sources([web, msld, lookalikes])
    assert dataset.class_names == ("mpox", NOT_MPOX) and dataset.sources == ("web", "msld", "lookalikes")
    by_name = {f"{r.source}/{r.source_label}/{r.path.name}": r for r in dataset.records}
    assert by_name["web/Monkeypox/1.png"].label == "mpox" and by_name["msld/others/NM1_01.png"].label == NOT_MPOX
    assert by_name["lookalikes/Herpes_simplex/a.png"].label == NOT_MPOX
    assert by_name["msld/mpox/M1_02.png"].patient == "msld:M1" != by_name["msld/others/NM1_01.png"].patient
    records = list(dataset.records)
    audit = run_audit(records, [read_image(r.path) for r in records], None)
    groups = {name: g for name, g in zip(audit.names, audit.groups, strict=True)}
    assert groups["msld/mpox/M1_01.png"] == groups["msld/mpox/M1_02.png"] == groups["msld/mpox/M1_03.png"]
    assert groups["msld/mpox/M1_01.png"] != groups["msld/mpox/M2_01.png"]
    assert groups["msld/others/NM3_01.png"] == groups["msld/others/NM3_02.png"]
    assert groups["web/Monkeypox/1.png"] != groups["msld/mpox/M2_01.png"]  # same file name, other source
    labels = np.array([dataset.class_names.index(r.label) for r in records])
    for train, test in group_splits(labels, audit.groups, 3, 0):
        assert not {audit.groups[i] for i in train} & {audit.groups[i] for i in test}


def test_sources_classed_by_condition_keep_their_own_classes_and_merge_mpox_and_shared_names(tmp_path):
    web = _source(tmp_path / "web", {"Monkeypox": ["1.png"], "Normal": ["1.png"], "measles": ["1.png"]}, 0)
    msid = _source(tmp_path / "msid", {"mpox": ["1.png"], "normal": ["1.png"], "Measles": ["1.png"]}, 100)
    looks = _source(tmp_path / "looks", {"Herpes_simplex": ["a.png"]}, 200)
    dataset = load_sources([web, msid, looks], labels="conditions")
    assert dataset.class_names == ("herpes_simplex", "measles", "mpox", "normal")
    by_name = {f"{r.source}/{r.source_label}": r for r in dataset.records}
    assert by_name["web/Monkeypox"].label == by_name["msid/mpox"].label == "mpox"
    assert by_name["web/Normal"].label == by_name["msid/normal"].label == "normal"
    assert by_name["looks/Herpes_simplex"].source_label == "Herpes_simplex"  # reports still name it as its source does
    with pytest.raises(DataError, match="unknown labels"):
        load_sources([web, msid], labels="icd10")


@pytest.mark.parametrize("labels", ["screening", "conditions"])
def test_sources_without_any_mpox_photo_are_refused(tmp_path, labels):
    a = _source(tmp_path / "a", {"Acne": ["1.png"]}, 0)
    b = _source(tmp_path / "b", {"Herpes": ["1.png"]}, 10)
    with pytest.raises(DataError, match="no mpox photo"):
        load_sources([a, b], labels=labels)
    c = _source(tmp_path / "c", {"mpox": ["1.png"]}, 20)
    d = _source(tmp_path / "d", {"Monkeypox": ["1.png"]}, 30)
    with pytest.raises(DataError, match="no non-mpox photo"):
        load_sources([c, d], labels=labels)


def test_evaluate_bundle_counts_every_photo_of_every_source(positive_bundle_path, tmp_path, capsys):
    """The session's real model with threshold 0: every readable photo is called mpox, refused or not."""
    from tests.bundles import SHARED_DATA
    from training.cv import main

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data/mpox-web-2022 is not present")
    source = tmp_path / "small-source"
    for name in ("mpox", "normal"):
        (source / name).mkdir(parents=True)
        for path in sorted((SHARED_DATA / name).iterdir())[:4]:
            (source / name / path.name).write_bytes(path.read_bytes())
    lookalikes = _source(tmp_path / "lookalikes", {"Herpes_simplex": ["a.png", "b.png", "c.png"]}, 0)
    out = tmp_path / "eval"
    assert main(["evaluate-bundle", "--bundle", str(positive_bundle_path), "--data", str(source), str(lookalikes),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| small-source |" in printed and "Herpes_simplex" in printed
    rows = {row["source"]: row for row in json.loads((out / "bundle_eval.json").read_text())["sources"]}
    small, looks = rows["small-source"], rows["lookalikes"]
    assert (small["sensitivity"]["hits"], small["sensitivity"]["total"]) == (4, 4)
    assert (small["specificity"]["hits"], small["specificity"]["total"]) == (0, 4)
    assert looks["auc"] is None and looks["not_mpox_called_mpox"]["hits"] == 3
    # as served, a refused photo gets no verdict: positive verdicts + refusals cover every photo
    for row in rows.values():
        served = row["served_mpox_caught"]["hits"] + row["served_not_mpox_called_mpox"]["hits"]
        assert served + row["refused"]["hits"] == row["refused"]["total"]


def test_leave_one_source_out_scores_each_source_at_thresholds_never_chosen_on_it():
    from training.crosssource import cross_source_figures, source_splits

    sources = np.array(["a"] * 6 + ["b"] * 6 + ["looks"] * 4)
    splits = source_splits(sources, ("a", "b", "looks"))
    assert [sorted(set(sources[test])) for _, test in splits] == [["a"], ["b"], ["looks"]]
    assert all(not set(train) & set(test) for train, test in splits)
    is_mpox = np.array([1, 1, 1, 0, 0, 0] * 2 + [0] * 4, bool)
    # source a's mpox photos score low: a threshold chosen on a itself would catch them, one
    # chosen on the other sources (whose mpox photos score high) misses them
    p = np.array([0.30, 0.35, 0.40, 0.1, 0.2, 0.05, 0.9, 0.8, 0.85, 0.1, 0.3, 0.2, 0.5, 0.6, 0.1, 0.2])
    rows = [{"test_index": test.tolist(), "threshold": 0.5} for _, test in splits]
    classes = ["mpox"] * 3 + ["normal"] * 3 + ["mpox"] * 3 + ["normal"] * 3 + ["herpes", "herpes", "acne", "acne"]
    result = cross_source_figures("m", rows, ("a", "b", "looks"), is_mpox, p, classes, "empirical", 1.0, 0.5)
    a_fold, b_fold, looks_fold = result.at_fold_threshold
    assert (a_fold.sensitivity.hits, b_fold.sensitivity.hits) == (0, 3)  # fold threshold 0.5
    assert looks_fold.called_mpox.hits == 2 and looks_fold.called_mpox_by_class["herpes"].hits == 2
    a_other = result.at_other_sources_threshold[0]
    assert a_other.threshold == pytest.approx(0.8)  # the lowest mpox score of b, the only other source with mpox
    assert a_other.sensitivity.hits == 0
    assert result.threshold == pytest.approx(0.30)  # every mpox photo, pooled
    assert result.sensitivity == 1 and result.specificity == pytest.approx(7 / 10)  # 0.3, 0.5, 0.6 called
    assert result.sensitivity_at_in_source_threshold == pytest.approx(3 / 6)
    assert result.specificity_at_in_source_threshold == pytest.approx(8 / 10)


def test_sensitivity_at_the_specificity_floor_is_a_point_of_the_sources_roc():
    is_mpox = np.array([1] * 5 + [0] * 10, bool)
    p = np.array([0.9, 0.8, 0.5, 0.3, 0.1] + [0.05 * k for k in range(10)])  # others 0 .. 0.45
    figures = source_figures("s", is_mpox, p, 0.95)
    # 8 of 10 others (0 .. 0.35) must stay below: the threshold sits just above 0.35
    assert (figures.sensitivity_at_floor.hits, figures.sensitivity_at_floor.total) == (3, 5)
    assert source_figures("looks", np.zeros(3, bool), np.array([0.1, 0.2, 0.3]), 0.5).sensitivity_at_floor is None
