"""A study from its prepared data to its outputs: cross-validation per backbone (in-source, and
leave-one-source-out with several sources), the operating point, the final bundle and the reports.

`write_study(config, data)` takes the typed configuration and the prepared data (training.cv)."""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.bundle import BundleManifest, Thresholds
from model.preprocess import ViewAveraging, normalise
from training.audit import AuditReport, audit_markdown
from training.comparison import (
    BackboneComparison,
    ServedCost,
    comparison_markdown,
    plot_comparison,
    pooled_auc,
    served_cost,
)
from training.config import StudyConfig
from training.crosssource import (
    CrossSource,
    cross_source_figures,
    cross_source_markdown,
    expectation_markdown,
    source_splits,
)
from training.crossval import StudyInputs, fit_final, out_of_fold, run_folds
from training.ensemble import ensemble_name, ensemble_rows, served_key
from training.evaluate import mean_std, operating_threshold, rates_at, threshold_for_specificity
from training.export import convert_to_tflite, export_bundle, with_embedding_output
from training.quantize import (
    calibration_batches,
    keras_view_probabilities,
    quantization_markdown,
    quantization_study,
)
from training.report import plot_confusion, plot_folds, plot_roc, summary_table, write_results_csv
from training.run_info import git_sha, utc_now
from training.sources import SourceFigures, figures_table, source_figures
from training.train import baseline_accuracies, group_splits, view_probabilities
from training.typicality import (
    evaluate_bundle,
    fit_served,
    photo_files,
    typicality_summary,
)

if TYPE_CHECKING:
    from training.cv import StudyData

DISCLAIMER = (
    "A screening aid, not a diagnosis. Figures come from cross-validation on the data named "
    "below; they say nothing about photos unlike it."
)


def _inputs(config: StudyConfig, prepared, class_names, labels, groups, sources: np.ndarray) -> StudyInputs:
    return StudyInputs(
        spec=prepared.spec, weights=prepared.weights, class_names=class_names,
        positive_class=config.positive_class, labels=labels, groups=groups,
        embeddings=prepared.embeddings, pixels=prepared.pixels, augmented_pixels=prepared.augmented,
        head=config.head, target_sensitivity=config.target_sensitivity,
        fine_tune_layers=config.fine_tune_layers, fine_tune_epochs=config.fine_tune_epochs, seed=config.seed,
        serving_quantization=config.quantization if config.served_check else None, threshold_rule=config.threshold_rule,
        sources=sources,
    )


def _config_key(config: StudyConfig, backbone: str, splits) -> str:
    relevant = {k: getattr(config, k) for k in ("weights", "weights_dir", "augmented_copies", "fine_tune_layers",
                                                "fine_tune_epochs", "seed", "target_sensitivity", "positive_class",
                                                "quantization", "float_embeddings", "input_size", "threshold_rule",
                                                "served_check", "labels")}
    relevant["head"] = asdict(config.head)
    # 2: frozen-inner thresholds for fine-tuning, served-model check per fold; 3: test-time views
    relevant["protocol"] = 3
    relevant["backbone"] = backbone
    relevant["splits"] = [test.tolist() for _, test in splits]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def operating_point(config: StudyConfig, labels: np.ndarray, oof: np.ndarray, positive: int) -> dict:
    """Thresholds chosen on out-of-fold predictions of every photo, and what they give there."""
    is_positive, p = labels == positive, oof[:, positive]
    threshold = operating_threshold(config.threshold_rule, is_positive, p, config.target_sensitivity)
    # The band catches the last positives, but never so wide that it swallows most negatives.
    inconclusive = min(threshold, max(
        operating_threshold(config.threshold_rule, is_positive, p, config.inconclusive_sensitivity),
        threshold_for_specificity(is_positive, p, config.inconclusive_min_specificity),
    ))
    sensitivity, specificity = rates_at(is_positive, p, threshold)
    in_band = (p >= inconclusive) & (p < threshold)
    return {
        "positive_threshold": threshold, "inconclusive_threshold": inconclusive,
        "target_sensitivity": config.target_sensitivity, "rule": config.threshold_rule, "oof_sensitivity": sensitivity,
        "oof_specificity": specificity,
        "oof_sensitivity_incl_inconclusive": rates_at(is_positive, p, inconclusive)[0],
        "negatives_in_inconclusive_band": float(in_band[~is_positive].mean()),
    }


def served_check(labels: np.ndarray, rows: list[dict], served_oof: np.ndarray, point: dict, positive: int) -> dict:
    """The served (converted) fold models against the study's figures, on each fold's test photos:
    agreement, largest change in P(positive), and the operating point at the bundle's threshold."""
    agreeing, changes, called, is_positive = [], [], [], []
    for row in rows:
        if "served_probabilities" not in row:
            continue
        study, served = np.array(row["probabilities"]), np.array(row["served_probabilities"])
        agreeing.append(study.argmax(1) == served.argmax(1))
        changes.append(float(np.abs(study[:, positive] - served[:, positive]).max()))
        called.append(served[:, positive] >= row["threshold"])
        is_positive.append(labels[np.array(row["test_index"], int)] == positive)
    if not agreeing:
        return {}
    sensitivity, specificity = rates_at(labels == positive, served_oof[:, positive], point["positive_threshold"])
    study_oof = out_of_fold(rows, len(labels), served_oof.shape[1])
    return {
        "folds": len(agreeing), "agreement": float(np.concatenate(agreeing).mean()),
        "worst_fold_agreement": float(min(a.mean() for a in agreeing)), "max_probability_change": float(max(changes)),
        "accuracy": float((served_oof.argmax(1) == labels).mean()),
        "study_accuracy": float((study_oof.argmax(1) == labels).mean()),
        "sensitivity_at_threshold": sensitivity, "specificity_at_threshold": specificity,
        # each fold's own threshold (from inner folds of its training photos), never tuned on its test photos
        "pooled_sensitivity_at_fold_thresholds": float(np.concatenate(called)[np.concatenate(is_positive)].mean()),
        "pooled_specificity_at_fold_thresholds": float(
            (~np.concatenate(called)[~np.concatenate(is_positive)]).mean()),
    }


def inner_folds_text(config: StudyConfig) -> str:
    """How each fold's head strength and threshold were chosen, for reports."""
    if config.several_sources and config.head_selection == "sources":
        return "inner folds of each fold's training photos, one training source held out at a time"
    return "inner group-aware folds of each fold's training photos"


def _card_metrics(config: StudyConfig, stats: dict, point: dict, folds: int, photos: int) -> dict:
    pick = ("accuracy", "macro_f1", "positive_auc", "sensitivity_at_threshold", "specificity_at_threshold")
    metrics = {f"cv_{m}": f"{stats[m]['mean']:.3f} ± {stats[m]['std']:.3f}" for m in pick}
    metrics.update(
        protocol=f"{folds}-fold stratified group k-fold on {photos} photos (near-duplicates kept in one fold); "
        f"per-fold thresholds chosen on {inner_folds_text(config)}",
        threshold_from_out_of_fold=(f"{point['positive_threshold']:.4f} for sensitivity >= {point['target_sensitivity']} "
                                    f"({point['rule']} rule)"),
        out_of_fold_sensitivity=round(point["oof_sensitivity"], 3),
        out_of_fold_specificity=round(point["oof_specificity"], 3),
    )
    served = point.get("served")
    if served:
        metrics.update(
            served_model_out_of_fold_sensitivity=round(served["sensitivity_at_threshold"], 3),
            served_model_out_of_fold_specificity=round(served["specificity_at_threshold"], 3),
            served_model_agreement_with_study=round(served["agreement"], 3),
            # each fold's own threshold from its training photos, scored on its test photos
            served_model_nested_sensitivity=round(served["pooled_sensitivity_at_fold_thresholds"], 3),
            served_model_nested_specificity=round(served["pooled_specificity_at_fold_thresholds"], 3),
        )
    return metrics


def reference_baseline(inputs: StudyInputs, float_plain: np.ndarray, splits, seed: int) -> dict:
    """Plain logistic regression on the embedding the heads use and on the float body's, on our
    group-aware folds and on 5 ordinary stratified folds (which let near-duplicates straddle
    train and test, and so flatter it)."""
    from sklearn.model_selection import StratifiedKFold

    ordinary = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(inputs.labels, inputs.labels))

    def accuracy(features: np.ndarray, folds) -> dict:
        values = baseline_accuracies(features, inputs.labels, folds)
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}

    return {
        "group_folds_accuracy": accuracy(inputs.embeddings.plain, splits),
        "ordinary_5_fold_accuracy": accuracy(inputs.embeddings.plain, ordinary),
        "float_group_folds_accuracy": accuracy(float_plain, splits),
        "float_ordinary_5_fold_accuracy": accuracy(float_plain, ordinary),
    }


def card_sections(config: StudyConfig, audit: AuditReport, quant: list[dict], photos: int, folds: int) -> dict[str, str]:
    """Extra MODEL_CARD.md sections: how the model was made and what the study found."""
    served = next((row for row in quant if row["mode"] == config.quantization), None)
    lines = [
        f"Trained on {photos} photos from `{config.data_name}`, evaluated with {folds}-fold stratified group k-fold "
        f"cross-validation; the audit kept {len(audit.duplicate_groups())} groups of near-duplicate photos "
        "inside single folds. Reproduce with:", "", f"    {config.command}", "",
    ]
    if served is not None:
        basis = ("float-body" if config.float_embeddings else
                 f"{config.quantization}-body (the served body's embedding, so the figures describe the served model)")
        lines.append(
            f"Heads were fitted and per-fold thresholds chosen on {basis} predictions; the bundle's thresholds on the "
            f"out-of-fold output of each fold's model converted as served. On held-out photos the served "
            f"{config.quantization} model agreed with them on {served['study_agreement']:.1%} (P({config.positive_class}) "
            f"moved by up to {served['study_max_probability_change']:.3f}), and with the float Keras model "
            f"on {served['agreement']:.1%} (up to {served['max_probability_change']:.3f})."
        )
    return {"How this model was made": "\n".join(lines)}


def export_final(config: StudyConfig, inputs: StudyInputs, manifest_extra: dict, out: Path,
                 sections: dict[str, str], lead: dict[str, str] | None = None) -> tuple[Path, str]:
    """Fit on every photo and write the serving bundle (int8 calibrated on the training photos),
    with the typicality check fitted on the served model's own embeddings of those photos.
    Returns the bundle's folder and the typicality section of the report."""
    classifier, _ = fit_final(inputs)
    spec = inputs.spec
    manifest = BundleManifest(
        model_id=f"{config.model_id}-{spec.name.replace('_', '-')}", model_version=config.model_version,
        class_names=inputs.class_names, positive_class=inputs.positive_class,
        input_size=(spec.input_size, spec.input_size), normalisation=spec.normalisation,
        quantization=config.quantization, backbone=spec.name, heatmap_layer=spec.heatmap_layer,
        view_averaging=ViewAveraging(inputs.head.view_averaging), created_at=utc_now(), code_version=git_sha(), **manifest_extra,
    )
    # Typicality check (issue 10): one conversion with the embedding output serves both.
    served = convert_to_tflite(with_embedding_output(classifier), config.quantization, inputs.calibration)
    typicality = fit_served(served, inputs.pixels, spec.normalisation, inputs.head.view_averaging,
                            inputs.groups, inputs.labels, seed=config.seed)

    def write(folder: Path, card_sections: dict[str, str]):
        return export_bundle(folder, classifier, manifest, inputs.calibration, card_sections,
                             typicality=typicality, tflite=served, lead_card_sections=lead)

    # The model card states what the check refuses, so the bundle is screened before it is final.
    with tempfile.TemporaryDirectory() as scratch:
        screened = evaluate_bundle(write(Path(scratch) / "bundle", sections).path, _other_sets(config.data))
    card = typicality_summary(typicality, screened, heading=False)
    bundle = write(out / "bundle", {**sections, "Pictures that are not close photos of skin, measured": card})
    return bundle.path, typicality_summary(typicality, screened)


def _other_sets(data: tuple[Path, ...]) -> dict[str, list[Path]]:
    """Each --data folder (its gate figure is fair, its check figure in-sample) and the photo sets
    beside the first, never trained on: name -> photo files."""
    trained = {folder.resolve() for folder in data}
    sets = {f"{folder.name} (trained on; the check in-sample, see out of fold above)": photo_files(folder)
            for folder in data}
    sets.update({f"{folder.name} (not trained on)": photo_files(folder)
                 for folder in sorted(data[0].resolve().parent.iterdir())
                 if folder.is_dir() and folder.resolve() not in trained and _is_dataset(folder)})
    return sets


def _is_dataset(folder: Path) -> bool:
    try:
        return bool(photo_files(folder))
    except ValueError:  # training.data.DataError: not a photo set
        return False


def holdout_studies(config: StudyConfig, inputs: StudyInputs, images, out: Path) -> tuple[list[dict], int]:
    """Quantization table and heatmap gallery from a model that never saw one third of the photos."""
    from training.gallery import heatmap_gallery

    train, test = group_splits(inputs.labels, inputs.groups, 3, config.seed)[0]
    classifier, fitted = fit_final(inputs, train)
    modes = (config.quantization,) if config.quick else ("fp32", "dynamic", "fp16", "int8")
    averaging = inputs.head.view_averaging
    float_probs = keras_view_probabilities(classifier, inputs.pixels[test], inputs.spec.normalisation, averaging)
    study_probs = (float_probs if inputs.fine_tune_layers > 0 else
                   view_probabilities(fitted.model, inputs.embeddings, test, len(inputs.class_names), averaging))
    rows = quantization_study(classifier, inputs.spec.normalisation, inputs.calibration, inputs.pixels[test],
                              inputs.labels[test], study_probs, inputs.positive_index, out / "quantization", modes,
                              averaging)
    keras_path = out / "quantization" / "holdout_model.keras"
    classifier.save(keras_path)
    probs = float_probs
    heatmap_gallery(keras_path, inputs.spec.heatmap_layer, [images[i] for i in test], inputs.pixels[test],
                    inputs.labels[test], probs, inputs.class_names, inputs.spec.normalisation, out / "gallery.png")
    return rows, len(test)


def _summary_markdown(config: StudyConfig, dataset, audit: AuditReport, stats: dict, points: dict, quant: list[dict],
                      held_out: int, notes: list[str], export: str, folds: int, baseline: dict,
                      cross_text: str = "") -> str:
    point, grouped, ordinary = points[export], baseline["group_folds_accuracy"], baseline["ordinary_5_fold_accuracy"]
    lines = [
        f"# Study: {dataset.name} ({len(audit.names)} photos, {folds} group-aware folds)", "", DISCLAIMER, "",
        "## Cross-validation (mean ± std over folds)", "",
        "`sensitivity`/`specificity`: positive class by arg-max; `..._at_threshold`: P(positive) >= a "
        f"threshold chosen ({config.threshold_rule} rule) on {inner_folds_text(config)} (never on its "
        "test photos). Each photo's probabilities are "
        + ("the mean over it and its mirror image, as served." if config.view_averaging == "mirror" else "its own."),
        "",
        summary_table(stats),
        f"Reference ({export}): sklearn's default logistic regression on the frozen embedding the heads use reaches "
        f"accuracy {grouped['mean']:.3f} ± {grouped['std']:.3f} on the same group-aware folds, and "
        f"{ordinary['mean']:.3f} ± {ordinary['std']:.3f} on 5 ordinary stratified folds where near-duplicates "
        "straddle train and test (optimistic); on the float body's embedding at its native input size "
        f"{baseline['float_group_folds_accuracy']['mean']:.3f} ± {baseline['float_group_folds_accuracy']['std']:.3f} "
        f"and {baseline['float_ordinary_5_fold_accuracy']['mean']:.3f} ± "
        f"{baseline['float_ordinary_5_fold_accuracy']['std']:.3f}.", "",
        *(["## Leave one source out (trained on the other sources, tested on this one)", "", cross_text]
          if cross_text else []),
        "## Operating point (from "
        + ("leave-one-source-out" if cross_text else "out-of-fold") + " predictions of every photo)", "",
        f"- {export}: P({config.positive_class}) >= {point['positive_threshold']:.4f} reaches sensitivity "
        f"{point['oof_sensitivity']:.3f} (target {config.target_sensitivity}, {config.threshold_rule} rule) with specificity "
        f"{point['oof_specificity']:.3f}.",
        f"- Inconclusive from {point['inconclusive_threshold']:.4f} (sensitivity incl. inconclusive "
        f"{point['oof_sensitivity_incl_inconclusive']:.3f}; {point['negatives_in_inconclusive_band']:.1%} "
        "of negatives fall in the band).",
    ]
    served = point.get("served")
    if served:
        lines += [
            f"- Thresholds chosen on the out-of-fold predictions of the {point['threshold_basis']}.",
            f"- Served model ({config.quantization}, each fold's model converted as exported): at that threshold "
            f"out-of-fold sensitivity {served['sensitivity_at_threshold']:.3f}, specificity "
            f"{served['specificity_at_threshold']:.3f}; at each fold's own inner-chosen threshold (never tuned on "
            f"its test photos), pooled sensitivity {served['pooled_sensitivity_at_fold_thresholds']:.3f}, "
            f"specificity {served['pooled_specificity_at_fold_thresholds']:.3f}; accuracy {served['accuracy']:.3f} (study "
            f"{served['study_accuracy']:.3f}); it agreed with the study's predictions on {served['agreement']:.1%} "
            f"of test photos (worst fold {served['worst_fold_agreement']:.1%}), P({config.positive_class}) moving "
            f"by up to {served['max_probability_change']:.3f}.",
        ]
    lines += ["", quantization_markdown(
        quant, held_out, config.quantization, config.positive_class, config.float_embeddings), audit_markdown(audit)]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def leave_source_out(config: StudyConfig, inputs: StudyInputs, data: StudyData, in_source_threshold: float
                     ) -> tuple[CrossSource, list[dict], np.ndarray]:
    """Each source held out once (resumable folds like in-source CV's); its figures, fold rows, and
    every photo's probabilities from the fold that held its source out (served model's when present)."""
    order = data.dataset.sources
    splits = source_splits(data.sources, order)
    name, count, classes = inputs.spec.name, len(data.labels), len(inputs.class_names)
    rows = run_folds(inputs, splits, config.out / "leave_source_out" / name, _config_key(config, name, splits))
    served = out_of_fold(rows, count, classes, "served_probabilities")
    probabilities = served if not np.isnan(served).any() else out_of_fold(rows, count, classes)
    positive = inputs.positive_index
    figures = cross_source_figures(
        name, rows, order, data.labels == positive, probabilities[:, positive],
        [r.source_label for r in data.records], config.threshold_rule, config.target_sensitivity, in_source_threshold)
    return figures, rows, probabilities


def in_source_by_source(data: StudyData, out_of_fold_probabilities: np.ndarray, positive: int,
                        threshold: float) -> list[SourceFigures]:
    """In-source CV split by source, at the in-source threshold: what the model does on photos of
    sources it trained on (look-alikes included), to set beside leave-one-source-out."""
    classes = np.array([r.source_label for r in data.records])
    figures = []
    for name in data.dataset.sources:
        index = np.flatnonzero(data.sources == name)
        figures.append(source_figures(name, data.labels[index] == positive, out_of_fold_probabilities[index, positive],
                                      threshold, list(classes[index])))
    return figures


def _cross_source_metrics(result: CrossSource) -> dict:
    """The bundle's leave-one-source-out figures, one entry per held-out source."""
    metrics = {}
    for figures in result.at_other_sources_threshold:
        auc = "n/a" if math.isnan(figures.auc) else f"{figures.auc:.3f}"
        metrics[f"held_out_{figures.source}"] = (
            f"AUC {auc}; sensitivity {figures.sensitivity.text()}; specificity {figures.specificity.text()} "
            f"(trained on the other sources, threshold chosen on their held-out predictions)")
    return metrics


def _compare(config: StudyConfig, name: str, prep, num_classes: int, stats: dict, rows: list[dict],
             cross: CrossSource | None, is_mpox: np.ndarray, held_out_probabilities: np.ndarray | None,
             positive: int) -> BackboneComparison:
    """One backbone's row of the comparison (one conversion as served, for its size and speed)."""
    calibration = calibration_batches(prep.pixels, prep.augmented, prep.spec.normalisation, limit=64)
    sample = normalise(prep.pixels[:1], prep.spec.normalisation)
    cost = served_cost(prep.spec, prep.weights, num_classes, config.quantization, calibration, sample)
    auc = math.nan if held_out_probabilities is None else pooled_auc(is_mpox, held_out_probabilities[:, positive])
    seconds = float(np.mean([row.get("training_seconds", math.nan) for row in rows]))
    return BackboneComparison(name, stats, cross, auc, cost, seconds)


def measure_ensemble(config: StudyConfig, data: StudyData, members: tuple[str, ...],
                     fold_rows: dict[str, list[dict]], held_out_rows: dict[str, list[dict]],
                     compared: list[BackboneComparison]) -> BackboneComparison:
    """An ensemble's row of the comparison from its members' folds (training.ensemble): in-source
    figures, and with several sources its leave-one-source-out figures; serving it costs the sum
    of its members' int8 models and calls."""
    labels, class_names, positive_class = data.labels, data.dataset.class_names, config.positive_class
    rule, target, positive = config.threshold_rule, config.target_sensitivity, class_names.index(positive_class)
    in_source = [fold_rows[m] for m in members]
    rows = ensemble_rows(in_source, labels, class_names, positive_class, rule, target)
    cross, pooled = None, math.nan
    if config.several_sources:
        # the in-source threshold as a single backbone's: on the served out-of-fold predictions
        served_oof = np.mean([out_of_fold(r, len(labels), len(class_names), served_key(in_source)) for r in in_source],
                             axis=0)
        in_source_threshold = operating_point(config, labels, served_oof, positive)["positive_threshold"]
        member_rows = [held_out_rows[m] for m in members]
        held_out = ensemble_rows(member_rows, labels, class_names, positive_class, rule, target, served_key(member_rows))
        probability = out_of_fold(held_out, len(labels), len(class_names))[:, positive]
        cross = cross_source_figures(ensemble_name(members), held_out, data.dataset.sources, labels == positive,
                                     probability, [r.source_label for r in data.records], rule, target,
                                     in_source_threshold)
        pooled = pooled_auc(labels == positive, probability)
    costs = [next(c for c in compared if c.backbone == m) for m in members]
    cost = ServedCost(sum(c.cost.size_mb for c in costs), sum(c.cost.latency_ms for c in costs))
    return BackboneComparison(ensemble_name(members), mean_std(rows), cross, pooled, cost,
                              sum(c.training_seconds for c in costs))


def write_study(config: StudyConfig, data: StudyData) -> Path:
    """Run every stage after preparation and write the run folder; returns the bundle's folder."""
    out, dataset, labels, audit, prepared = config.out, data.dataset, data.labels, data.audit, data.prepared
    class_names, splits = dataset.class_names, data.splits
    positive = class_names.index(config.positive_class)
    all_rows, stats, points, oofs, cross, compared, by_source = [], {}, {}, {}, {}, [], {}
    fold_rows, held_out_rows = {}, {}  # each backbone's in-source and leave-one-source-out folds
    for name, prep in prepared.items():
        inputs = _inputs(config, prep, class_names, labels, audit.groups, data.sources)
        rows = fold_rows[name] = run_folds(inputs, splits, out / "folds" / name, _config_key(config, name, splits))
        all_rows += rows
        stats[name] = mean_std(rows)
        oofs[name] = out_of_fold(rows, len(labels), len(class_names))
        served_oof = out_of_fold(rows, len(labels), len(class_names), "served_probabilities")
        # The bundle's thresholds are applied to the served model's output, so they are chosen on
        # its out-of-fold predictions (every fold's model converted as exported) when present.
        served_complete = not np.isnan(served_oof).any()
        points[name] = operating_point(config, labels, served_oof if served_complete else oofs[name], positive)
        points[name]["threshold_basis"] = "served model" if served_complete else "study model"
        points[name]["served"] = served_check(labels, rows, served_oof, points[name], positive)
        held_out_probabilities = None
        if config.several_sources:
            # A user's photos come from a source the model never saw: the operating point must
            # hold there, so it is chosen on leave-one-source-out predictions.
            cross[name], held_out_rows[name], held_out_probabilities = leave_source_out(
                config, inputs, data, points[name]["positive_threshold"])
            in_source = points[name]
            by_source[name] = in_source_by_source(
                data, served_oof if served_complete else oofs[name], positive, in_source["positive_threshold"])
            points[name] = operating_point(config, labels, held_out_probabilities, positive)
            points[name].update(threshold_basis=f"{in_source['threshold_basis']}, leave-one-source-out",
                                served=in_source["served"], in_source=in_source)
        if len(prepared) > 1:
            compared.append(_compare(config, name, prep, len(class_names), stats[name], rows, cross.get(name),
                                     labels == positive, held_out_probabilities, positive))
    for members in config.ensembles:
        row = measure_ensemble(config, data, members, fold_rows, held_out_rows, compared)
        stats[row.backbone] = row.in_source
        if row.cross_source is not None:
            cross[row.backbone] = row.cross_source
        compared.append(row)
    export = config.export_backbone or next(iter(prepared))
    if export not in prepared:
        raise ValueError(f"--export-backbone {export} is not among the backbones that ran: {list(prepared)}")
    inputs = _inputs(config, prepared[export], class_names, labels, audit.groups, data.sources)
    quant, held_out = holdout_studies(config, inputs, data.images, out)
    baseline = reference_baseline(inputs, prepared[export].float_plain, splits, config.seed)
    point = points[export]
    metrics = _card_metrics(config, stats[export], point, len(splits), len(labels))
    if export in cross:
        metrics.update(_cross_source_metrics(cross[export]))
    manifest_extra = {
        "thresholds": Thresholds(positive=point["positive_threshold"], inconclusive=point["inconclusive_threshold"]),
        "metrics": metrics,
        "training_data": {"source": dataset.name, "layout": dataset.layout, "audit": audit.summary()},
    }
    sections, lead = card_sections(config, audit, quant, len(labels), len(splits)), {}
    if export in cross:
        lead = {"What to expect on photos from a source it never saw (read this first)":
                expectation_markdown(cross[export], config.target_sensitivity)}
        sections = {"Leave one source out, in full": cross_source_markdown(cross[export], config.target_sensitivity),
                    **sections}
    bundle_path, typicality_section = export_final(config, inputs, manifest_extra, out, sections, lead)
    write_results_csv(all_rows, out / "results.csv")
    plot_folds(all_rows, out / "folds.png")
    plot_confusion(labels, oofs[export], class_names, f"{export}, out-of-fold", out / "confusion_matrix.png")
    plot_roc(labels, oofs, positive, {n: (p["oof_sensitivity"], p["oof_specificity"]) for n, p in points.items()},
             out / "roc.png")
    summary = {"config": config.as_json(), "run": data.run_facts, "audit": audit.summary(), "cv": stats,
               "operating_points": points, "leave_source_out": {n: c.as_dict() for n, c in cross.items()},
               "quantization": quant, "quantization_held_out_photos": held_out, "reference_baseline": baseline,
               "notes": data.notes, "export_backbone": export, "bundle": str(bundle_path)}
    if compared:
        plot_comparison(compared, out / "comparison.png")
        summary["comparison"] = [row.as_dict() for row in compared]
    summary["in_source_by_source"] = {name: [f.as_dict() for f in figures] for name, figures in by_source.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    cross_text = "".join(cross_source_markdown(c, config.target_sensitivity) for c in cross.values())
    for name, figures in by_source.items():
        cross_text += (f"### {name}, in-source CV by source (every source in training; threshold "
                       f"{points[name]['in_source']['positive_threshold']:.4f} from in-source out-of-fold predictions)\n\n"
                       + figures_table(figures) + "\n")
    if compared:
        cross_text += ("## Backbones compared (comparison.png)\n\n" + comparison_markdown(compared)
                       + "\nIn-source: mean ± std over folds. Held-out source: the model trained on the other "
                       "sources, its AUC and its sensitivity at specificity >= 0.80 on that source (a point of the "
                       "source's ROC curve). Look-alikes: share of the source without mpox called mpox at the fold's "
                       "threshold. int8: the backbone with its head converted as served, one LiteRT call, one thread."
                       + (" An ensemble (a + b): its members' probabilities averaged on the same folds, each fold's "
                          "threshold chosen by the same rule on their averaged inner predictions; its int8 size, "
                          "call and training time are its members' summed. Ensembles are measured, not exported."
                          if config.ensembles else "") + "\n\n")
    (out / "summary.md").write_text(
        _summary_markdown(config, dataset, audit, stats, points, quant, held_out, data.notes, export, len(splits),
                          baseline, cross_text)
        + "\n" + typicality_section)
    return bundle_path


def _json_default(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)
