"""python -m training.cv --quick end to end on the shared photos, and resuming finished folds."""

from __future__ import annotations

import csv
import dataclasses
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from tests.bundles import SHARED_DATA, SHARED_WEIGHTS
from training import crossval
from training.backbones import get_backbone
from training.crossval import StudyInputs, run_folds
from training.features import Embeddings
from training.train import (
    HeadConfig,
    balance_weights,
    fit_head,
    group_splits,
    inner_splits,
    probabilities,
    training_rows,
)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if not SHARED_DATA.is_dir() or not SHARED_WEIGHTS.is_file():
        pytest.skip("shared photos or MobileNetV2-0.35 weights are not present")
    from training.cv import main

    out = tmp_path_factory.mktemp("study") / "run"
    code = main(["--data", str(SHARED_DATA), "--out", str(out), "--weights-dir", str(SHARED_WEIGHTS.parent),
                 "--quick", "--seed", "0", "--input-size", "160"])  # the smaller, faster serving size
    assert code == 0
    return out


def test_quick_run_writes_every_output(quick_run):
    for name in ("results.csv", "summary.md", "summary.json", "config.json", "run.json", "audit.md",
                 "folds.png", "confusion_matrix.png", "roc.png", "gallery.png"):
        assert (quick_run / name).is_file() and (quick_run / name).stat().st_size > 0, name
    with (quick_run / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["fold"]) for r in rows] == [0, 1, 2]
    assert all(0.5 < float(r["accuracy"]) <= 1.0 for r in rows)  # far above chance (~0.4 majority)
    summary = json.loads((quick_run / "summary.json").read_text())
    assert summary["quantization"][-1]["mode"] == "int8"
    # heads are fitted on the int8 body's embedding, so the served model behaves like the study's
    assert summary["quantization"][-1]["study_agreement"] >= 0.95
    served = summary["operating_points"]["mobilenet_v2_035"]["served"]
    assert served["folds"] == 3 and served["agreement"] >= 0.95 and served["max_probability_change"] < 0.1
    assert summary["operating_points"]["mobilenet_v2_035"]["threshold_basis"] == "served model"
    baseline = summary["reference_baseline"]
    assert {"group_folds_accuracy", "float_group_folds_accuracy", "float_ordinary_5_fold_accuracy"} <= set(baseline)
    # config.json is the StudyConfig itself: it rebuilds the same configuration
    from training.config import StudyConfig
    from training.cv import parse_config

    config = json.loads((quick_run / "config.json").read_text())
    assert config["folds"] == 3 and config["input_size"] == 160 and config["data"] == [str(SHARED_DATA)]
    assert StudyConfig(**{**config, "data": tuple(map(Path, config["data"])), "out": Path(config["out"]),
                          "weights_dir": Path(config["weights_dir"]), "backbones": tuple(config["backbones"]),
                          "ensembles": tuple(map(tuple, config["ensembles"]))}
                       ) == parse_config(shlex.split(config["command"])[3:])
    run = json.loads((quick_run / "run.json").read_text())
    assert run["folds_used"] == 3 and "tensorflow" in " ".join(run["packages"])


def test_audit_finds_the_same_lesion_photos_in_shared_data(quick_run):
    groups = json.loads((quick_run / "summary.json").read_text())["audit"]["duplicate_groups"]
    as_sets = [set(g) for g in groups]
    assert any({"mpox/5.jfif", "mpox/10.jfif"} <= g for g in as_sets)  # crops of one photo
    assert any({"mpox/23.jfif", "mpox/43.jfif"} <= g for g in as_sets)  # mirror images
    assert any({"normal/24.jfif", "normal/25.jfif"} <= g for g in as_sets)
    # a zoomed crop of one stock photo: found by the embedding, which the audit computes at the
    # backbone's native size even when the study serves a smaller input (here 160 px)
    assert any({"mpox/17.jfif", "mpox/33.jfif"} <= g for g in as_sets)


def test_quick_bundle_loads_and_screens_a_photo(quick_run):
    from model import Verdict, load_bundle, load_screener

    bundle = load_bundle(quick_run / "bundle")
    manifest = bundle.manifest
    assert manifest.quantization == "int8" and manifest.positive_class == "mpox"
    assert manifest.input_size == (160, 160)  # --input-size reaches the served bundle
    assert manifest.view_averaging == "mirror"  # served as studied: photo and mirror image averaged
    assert 0 < manifest.thresholds.inconclusive <= manifest.thresholds.positive < 1
    assert manifest.training_data["audit"]["photos"] == 93 and manifest.code_version
    screener = load_screener(quick_run / "bundle")
    result = screener.screen((SHARED_DATA / "mpox" / "10.jfif").read_bytes())
    assert result.heatmap_jpeg  # Grad-CAM++ works at the smaller input too
    assert result.verdict in (Verdict.POSITIVE, Verdict.INCONCLUSIVE, Verdict.NEGATIVE)
    assert abs(sum(result.probabilities.values()) - 1) < 1e-3


def _synthetic_inputs(seed: int = 0) -> StudyInputs:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), 12)
    centres = rng.normal(size=(3, 8)) * 3
    plain = centres[labels] + rng.normal(size=(36, 8))
    augmented = plain[:, None, :] + rng.normal(scale=0.1, size=(36, 2, 8))
    mirrored = plain + rng.normal(scale=0.1, size=(36, 8))
    empty = np.zeros((36, 1, 1, 3), np.uint8)
    return StudyInputs(
        spec=get_backbone("mobilenet_v2_035"), weights=None, class_names=("a", "mpox", "c"), positive_class="mpox",
        labels=labels, groups=np.arange(36) // 2, embeddings=Embeddings(plain, augmented, mirrored), pixels=empty,
        augmented_pixels=empty[:, None], head=HeadConfig(regularisation=(1.0,), inner_folds=2),
        target_sensitivity=0.95,
    )


def test_resume_skips_finished_folds_and_redoes_changed_ones(tmp_path, monkeypatch):
    inputs = _synthetic_inputs()
    splits = group_splits(inputs.labels, inputs.groups, 3, 0)
    first = run_folds(inputs, splits, tmp_path, "key-1")
    (tmp_path / "fold_02.json").unlink()  # as if interrupted during the last fold
    calls = []
    real = crossval.run_fold
    monkeypatch.setattr(crossval, "run_fold", lambda *a: calls.append(a[1]) or real(*a))
    resumed = run_folds(inputs, splits, tmp_path, "key-1")
    assert calls == [2]
    assert [r["accuracy"] for r in resumed] == [r["accuracy"] for r in first]
    run_folds(inputs, splits, tmp_path, "key-2")  # another configuration: nothing reused
    assert calls == [2, 0, 1, 2]


def _three_sources(seed: int = 0) -> tuple[StudyInputs, np.ndarray]:
    inputs = _synthetic_inputs(seed)
    sources = np.array(["web", "msld", "looks"])[np.arange(36) % 3]
    return dataclasses.replace(inputs, sources=sources), sources


def test_head_holds_one_training_source_out_at_a_time_when_selecting_by_source():
    inputs, sources = _three_sources()
    head = HeadConfig(selection="sources", inner_folds=2)
    everything = np.arange(36)
    splits = inner_splits(inputs.labels, inputs.groups, sources, everything, head, 0)
    assert sorted(tuple(np.unique(sources[test])) for _, test in splits) == [("looks",), ("msld",), ("web",)]
    assert all(set(sources[train]).isdisjoint(sources[test]) for train, test in splits)
    # one source in the training photos, or group selection: group-aware k folds as before
    web = np.flatnonzero(sources == "web")
    assert len(inner_splits(inputs.labels, inputs.groups, sources, web, head, 0)) == 2
    assert len(inner_splits(inputs.labels, inputs.groups, sources, everything, HeadConfig(inner_folds=2), 0)) == 2
    # a source whose absence leaves one class to train on (every photo not of class 0 is in it): group folds
    one_class_elsewhere = np.where(sources == "web", inputs.labels, 0)
    assert len(inner_splits(one_class_elsewhere, inputs.groups, sources, everything, head, 0)) == 2


def test_head_chosen_by_source_scores_each_source_with_a_model_that_never_saw_it():
    inputs, sources = _three_sources()
    head = HeadConfig(selection="sources", cross_source_regularisation=(0.05, 5.0), regularisation=(123.0,))
    everything = np.arange(36)
    fitted = fit_head(inputs.embeddings, inputs.labels, inputs.groups, everything, 3, head, 0, sources)
    assert fitted.regularisation in (0.05, 5.0)  # the cross-source grid, not the in-source one
    # the inner predictions (which also choose the fold's threshold) of the "msld" photos come from
    # a head fitted on the other two sources only, averaged over the photo and its mirror view
    msld, others = np.flatnonzero(sources == "msld"), np.flatnonzero(sources != "msld")
    features, targets = training_rows(inputs.embeddings, inputs.labels, others)
    from sklearn.linear_model import LogisticRegression

    alone = LogisticRegression(C=fitted.regularisation, class_weight="balanced", max_iter=3000, random_state=0)
    alone.fit(features, targets)
    expected = np.mean([probabilities(alone, view, 3) for view in inputs.embeddings.views(msld, "mirror")], axis=0)
    assert fitted.inner_probabilities[msld] == pytest.approx(expected, abs=1e-6)
    # without sources the same configuration falls back to group folds and the in-source grid
    assert fit_head(inputs.embeddings, inputs.labels, inputs.groups, everything, 3, head, 0).regularisation == 123.0


def test_source_balance_weighs_each_class_and_each_source_within_it_the_same():
    labels = np.array([1] * 2 + [0] * 6 + [1] * 4 + [0] * 12)  # source "a": 2 mpox, 6 others; "b": 4 and 12
    sources = np.array(["a"] * 8 + ["b"] * 16)
    index = np.arange(24)
    assert balance_weights(labels, sources, index, 2, "classes") is None  # sklearn's class weights then
    weights = balance_weights(labels, sources, index, 2, "sources")
    per_photo = weights[:24]
    assert np.array_equal(weights[24:], np.repeat(per_photo, 2))  # each augmented copy weighs as its photo
    total = {(lab, src): per_photo[(labels == lab) & (sources == src)].sum() for lab in (0, 1) for src in "ab"}
    assert len({round(t, 9) for t in total.values()}) == 1  # every (class, source) cell the same
    assert per_photo.sum() == pytest.approx(24)
    # a class found in one source only: that source carries the whole class
    only_b = np.where(sources == "a", 0, labels)
    weights = balance_weights(only_b, sources, index, 0, "sources")
    assert weights[only_b == 1].sum() == pytest.approx(weights[only_b == 0].sum())
    with pytest.raises(ValueError, match="unknown balance"):
        balance_weights(labels, sources, index, 0, "patients")


def test_sources_first_balance_shares_the_rest_by_source_then_by_its_conditions():
    """An atlas of many conditions weighs, in all, as much as a source of one (with "sources"
    each of its conditions would take as much as that whole source)."""
    # mpox 2, "a" has mpox and one other condition, "atlas" has three conditions and no mpox
    labels = np.array([2, 2, 0, 0, 0, 2, 2, 1, 1, 3, 4, 4, 4, 4])
    sources = np.array(["a"] * 5 + ["b"] * 4 + ["atlas"] * 5)
    index = np.arange(14)
    weights = balance_weights(labels, sources, index, 1, "sources-first", positive=2)
    per_photo = weights[:14]
    assert np.array_equal(weights[14:], per_photo) and per_photo.sum() == pytest.approx(14)

    def total(mask):
        return per_photo[mask].sum() / 14

    assert total(labels == 2) == pytest.approx(0.5)  # the screening question balanced
    assert total((labels == 2) & (sources == "a")) == pytest.approx(total((labels == 2) & (sources == "b")))
    rest_of = {src: total((labels != 2) & (sources == src)) for src in ("a", "b", "atlas")}
    assert all(share == pytest.approx(0.5 / 3) for share in rest_of.values())  # each source alike
    assert total(labels == 3) == pytest.approx(total(labels == 4)) == pytest.approx(0.5 / 3 / 2)  # then its conditions
    # condition 0 is "a"'s only one, condition 1 "b"'s: each takes its source's whole share
    assert total(labels == 0) == pytest.approx(total(labels == 1)) == pytest.approx(0.5 / 3)
    # "sources" gives each of the four conditions of the rest a share: the atlas two of four
    by_condition = balance_weights(labels, sources, index, 0, "sources", positive=2)
    assert by_condition[sources == "atlas"].sum() / 14 == pytest.approx(0.25)
    # two classes: the same as "sources"
    screening = (labels == 2).astype(int)
    assert np.allclose(balance_weights(screening, sources, index, 0, "sources-first", positive=1),
                       balance_weights(screening, sources, index, 0, "sources", positive=1))


def test_source_balanced_head_fits_with_those_weights_and_no_class_weights():
    inputs, _ = _three_sources()
    sources = np.array(["web"] * 6 + ["msld"] * 9 + ["looks"] * 21)  # uneven, so the balances differ
    inputs = dataclasses.replace(inputs, sources=sources)
    head = HeadConfig(selection="sources", cross_source_regularisation=(0.5,), balance="sources")
    everything = np.arange(36)
    fitted = fit_head(inputs.embeddings, inputs.labels, inputs.groups, everything, 3, head, 0, sources)
    features, targets = training_rows(inputs.embeddings, inputs.labels, everything)
    from sklearn.linear_model import LogisticRegression

    copies = inputs.embeddings.augmented.shape[1]
    alone = LogisticRegression(C=0.5, max_iter=3000, random_state=0)
    alone.fit(features, targets, sample_weight=balance_weights(inputs.labels, sources, everything, copies, "sources"))
    assert fitted.model.coef_ == pytest.approx(alone.coef_, abs=1e-5)
    plain = fit_head(inputs.embeddings, inputs.labels, inputs.groups, everything, 3,
                     dataclasses.replace(head, balance="classes"), 0, sources)
    assert not np.allclose(plain.model.coef_, fitted.model.coef_)


def test_missing_backbone_weights_stop_with_a_clear_message(tmp_path, capsys):
    from training.cv import main

    data = tmp_path / "data"
    from PIL import Image

    for name in ("mpox", "normal"):
        (data / name).mkdir(parents=True)
        Image.new("RGB", (80, 80), "tan").save(data / name / "a.png")
    code = main(["--data", str(data), "--out", str(tmp_path / "out"), "--backbones", "resnet50",
                 "--weights-dir", str(tmp_path)])
    assert code == 2
    message = capsys.readouterr().err
    assert "resnet50" in message and "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "Traceback" not in message


def test_several_backbones_skip_the_unavailable_ones_with_a_note(tmp_path):
    from training.cv import parse_config, prepare_all

    config = parse_config(["--data", "x", "--out", "y", "--backbones", "resnet50,not_a_backbone",
                           "--weights-dir", str(tmp_path)])
    with pytest.raises(FileNotFoundError) as caught:
        prepare_all(config, [], [], tmp_path)
    notes = str(caught.value)
    assert "skipped resnet50" in notes and "skipped not_a_backbone: unknown backbone" in notes


def test_fine_tuned_fold_takes_its_threshold_from_frozen_inner_predictions(monkeypatch):
    """The early-stopping split once chose the threshold (sensitivity at threshold 0.54): here the
    stand-in fine-tuned model says P(mpox)=0.5 for every photo, so that split would give 0.5."""
    from training.evaluate import operating_threshold
    from training.train import fit_head

    class FineTuned:  # stands in for the fine-tuned Keras model
        def predict(self, batch, verbose=0):
            return np.tile([0.25, 0.5, 0.25], (len(batch), 1))

    monkeypatch.setattr(crossval, "build_classifier", lambda *a, **k: FineTuned())
    monkeypatch.setattr(crossval, "install_head", lambda *a: None)
    monkeypatch.setattr(crossval, "fine_tune", lambda *a, **k: {})
    inputs = dataclasses.replace(_synthetic_inputs(), fine_tune_layers=2)
    train, test = group_splits(inputs.labels, inputs.groups, 3, 0)[0]
    row = crossval.run_fold(inputs, 0, train, test)
    frozen = fit_head(inputs.embeddings, inputs.labels, inputs.groups, train, 3, inputs.head, inputs.seed)
    expected = operating_threshold(
        inputs.threshold_rule, inputs.labels[train] == 1, frozen.inner_probabilities[:, 1], 0.95)
    assert row["threshold"] == pytest.approx(expected) and expected != pytest.approx(0.5)
    assert np.allclose(row["probabilities"], [[0.25, 0.5, 0.25]] * len(test))  # scored with the fine-tuned model


def test_fine_tuning_weighs_its_rows_as_the_source_balanced_head_does(monkeypatch):
    calls = []
    monkeypatch.setattr(crossval, "fine_tune", lambda *a, **k: calls.append((a, k)) or {})
    inputs, sources = _three_sources()
    inputs = dataclasses.replace(inputs, pixels=np.zeros((36, 4, 4, 3), np.uint8),
                                 augmented_pixels=np.zeros((36, 2, 4, 4, 3), np.uint8),
                                 head=dataclasses.replace(inputs.head, balance="sources"))
    everything = np.arange(36)
    val_index = crossval._fine_tune_on(inputs, object(), everything)
    (args, kwargs), = calls
    fit_index = np.setdiff1d(everything, val_index)
    assert args[5] is None  # no class weights: the sample weights already balance the classes
    assert np.allclose(kwargs["sample_weight"], balance_weights(inputs.labels, sources, fit_index, 2, "sources", 1))
    assert len(kwargs["sample_weight"]) == len(args[1][1]) == 3 * len(fit_index)
    calls.clear()
    crossval._fine_tune_on(dataclasses.replace(inputs, head=dataclasses.replace(inputs.head, balance="classes")),
                           object(), everything)
    (args, kwargs), = calls
    assert kwargs["sample_weight"] is None and set(args[5]) == {0, 1, 2}  # class weights, as before


@pytest.mark.parametrize("augmentation", ["mirror", "none"])
def test_fold_scores_each_photo_on_the_mean_over_its_classifier_views(augmentation):
    from training.train import fit_head, probabilities

    inputs = _synthetic_inputs()
    inputs = dataclasses.replace(inputs, head=dataclasses.replace(inputs.head, view_averaging=augmentation))
    train, test = group_splits(inputs.labels, inputs.groups, 3, 0)[0]
    row = crossval.run_fold(inputs, 0, train, test)
    fitted = fit_head(inputs.embeddings, inputs.labels, inputs.groups, train, 3, inputs.head, inputs.seed)
    own = probabilities(fitted.model, inputs.embeddings.plain[test], 3)
    mirrored = probabilities(fitted.model, inputs.embeddings.mirrored[test], 3)
    expected = (own + mirrored) / 2 if augmentation == "mirror" else own
    assert np.allclose(row["probabilities"], expected)
    assert not np.allclose(own, mirrored)


def _small_real_sources(root: Path) -> list[str]:
    """Three small real sources (one without mpox), 8 photos a class; skips without shared data."""
    shared = SHARED_DATA.parent
    needed = [shared / "msld-v1", shared / "dermnet-lookalikes", SHARED_WEIGHTS.parent / "mobilenet_7_5_192_tf_no_top.h5"]
    if not SHARED_DATA.is_dir() or not SHARED_WEIGHTS.is_file() or not all(p.exists() for p in needed):
        pytest.skip("shared photos or weights are not present")
    picks = {"web": {"mpox": SHARED_DATA / "mpox", "normal": SHARED_DATA / "normal"},
             "msld": {"mpox": shared / "msld-v1" / "mpox", "others": shared / "msld-v1" / "others"},
             "looks": {"Herpes_simplex": shared / "dermnet-lookalikes" / "Herpes_simplex",
                       "Acne_vulgaris": shared / "dermnet-lookalikes" / "Acne_vulgaris"}}
    for source, classes in picks.items():
        for name, folder in classes.items():
            (root / source / name).mkdir(parents=True)
            for path in sorted(folder.iterdir())[:8]:  # msld: M01_01..04 are one patient
                (root / source / name / path.name).write_bytes(path.read_bytes())
    return [str(root / source) for source in picks]


@pytest.fixture(scope="module")
def sources_run(tmp_path_factory):
    """A quick study of three small real sources (one without mpox) and two backbones."""
    from training.cv import main

    root = tmp_path_factory.mktemp("sources")
    sources = _small_real_sources(root)
    out = root / "run"
    code = main(["--data", *sources, "--out", str(out),
                 "--weights-dir", str(SHARED_WEIGHTS.parent), "--backbones", "mobilenet_v2_035,mobilenet_v1_075",
                 "--ensembles", "mobilenet_v2_035+mobilenet_v1_075", "--quick", "--no-served-check", "--seed", "0"])
    assert code == 0
    return out


def test_sources_run_holds_each_source_out_and_takes_its_threshold_from_there(sources_run):
    summary = json.loads((sources_run / "summary.json").read_text())
    assert summary["run"]["class_names"] == ["mpox", "not_mpox"] and summary["run"]["sources"] == ["web", "msld", "looks"]
    for backbone in ("mobilenet_v2_035", "mobilenet_v1_075"):
        cross = summary["leave_source_out"][backbone]
        figures = {f["source"]: f for f in cross["at_fold_threshold"]}
        assert {s: (f["sensitivity"]["total"], f["specificity"]["total"]) for s, f in figures.items()} == {
            "web": (8, 8), "msld": (8, 8), "looks": (0, 16)}
        assert figures["looks"]["auc"] is None and set(figures["looks"]["called_mpox_by_class"]) == {
            "Herpes_simplex", "Acne_vulgaris"}
        point = summary["operating_points"][backbone]
        assert point["positive_threshold"] == pytest.approx(cross["threshold"])
        assert "leave-one-source-out" in point["threshold_basis"] and "in_source" in point
    from model import load_bundle

    manifest = load_bundle(sources_run / "bundle").manifest
    assert manifest.thresholds.positive == pytest.approx(summary["operating_points"]["mobilenet_v2_035"]["positive_threshold"])
    assert {"held_out_web", "held_out_msld", "held_out_looks"} <= set(manifest.metrics)
    # the card leads with each source as a new source (issue 11), before what the model is
    card = (sources_run / "bundle" / "MODEL_CARD.md").read_text()
    lead = card.index("## What to expect on photos from a source it never saw")
    assert card.index("not a diagnosis") < lead < card.index("## Model") < card.index("## Leave one source out, in full")
    expectation = card[lead:card.index("## Model")]
    exported = summary["leave_source_out"]["mobilenet_v2_035"]
    held_out = {f["source"]: f for f in exported["at_other_sources_threshold"]}
    msld = held_out["msld"]["sensitivity"]
    assert f"({msld['hits']}/{msld['total']})" in expectation and "| looks | n/a (one class) |" in expectation
    looks = held_out["looks"]["not_mpox_called_mpox"]
    assert f"looks (no mpox photo): {looks['hits']} of 16 called mpox" in expectation
    assert f"P(mpox) >= {manifest.thresholds.positive:.4f}" in expectation
    by_source = {f["source"]: f for f in summary["in_source_by_source"]["mobilenet_v2_035"]}
    assert by_source["looks"]["not_mpox_called_mpox"]["total"] == 16 and by_source["web"]["sensitivity"]["total"] == 8
    groups = [set(g) for g in summary["audit"]["duplicate_groups"]]
    assert any({"msld/mpox/M01_01.jpg", "msld/mpox/M01_04.jpg"} <= g for g in groups)  # one patient, one group
    compared = {row["backbone"]: row for row in summary["comparison"]}
    ensemble = "mobilenet_v2_035 + mobilenet_v1_075"
    assert set(compared) == {"mobilenet_v2_035", "mobilenet_v1_075", ensemble}
    assert all(0.1 < row["int8_size_mb"] < 5 and row["int8_latency_ms"] > 0 for row in compared.values())
    assert compared["mobilenet_v1_075"]["int8_size_mb"] > compared["mobilenet_v2_035"]["int8_size_mb"]
    # the ensemble: measured on the same held-out sources, serving both models
    assert compared[ensemble]["int8_size_mb"] == pytest.approx(
        compared["mobilenet_v2_035"]["int8_size_mb"] + compared["mobilenet_v1_075"]["int8_size_mb"])
    assert 0 <= compared[ensemble]["cross_source_auc"] <= 1 and ensemble in summary["cv"]
    figures = {f["source"]: f for f in summary["leave_source_out"][ensemble]["at_fold_threshold"]}
    assert figures["looks"]["specificity"]["total"] == 16 and figures["msld"]["sensitivity"]["total"] == 8
    text = (sources_run / "summary.md").read_text()
    assert "## Leave one source out" in text and "## Backbones compared" in text and f"### {ensemble}" in text
    assert (sources_run / "comparison.png").stat().st_size > 0


def test_a_study_of_conditions_serves_p_mpox_and_holds_each_source_out(tmp_path):
    """--labels conditions --balance sources: the head learns each source's own classes, weighted
    so that mpox and the rest weigh the same; the bundle serves P(mpox) at the leave-one-source-out
    threshold, and the held-out figures count the same photos as a screening study's."""
    from model import load_bundle
    from training.cv import main

    sources = _small_real_sources(tmp_path)
    out = tmp_path / "run"
    code = main(["--data", *sources, "--out", str(out), "--weights-dir", str(SHARED_WEIGHTS.parent),
                 "--backbones", "mobilenet_v2_035", "--labels", "conditions", "--balance", "sources",
                 "--quick", "--no-served-check", "--seed", "0"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["class_names"] == ["acne_vulgaris", "herpes_simplex", "mpox", "normal", "others"]
    assert summary["run"]["head"]["balance"] == "sources"
    cross = summary["leave_source_out"]["mobilenet_v2_035"]
    figures = {f["source"]: f for f in cross["at_fold_threshold"]}
    assert {s: (f["sensitivity"]["total"], f["specificity"]["total"]) for s, f in figures.items()} == {
        "web": (8, 8), "msld": (8, 8), "looks": (0, 16)}
    manifest = load_bundle(out / "bundle").manifest
    assert manifest.positive_class == "mpox" and manifest.class_names == tuple(summary["run"]["class_names"])
    assert manifest.thresholds.positive == pytest.approx(cross["threshold"])
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == "conditions" and config["balance"] == "sources"
