"""The study: audit the data, cross-validate backbones, pick the operating point, export a bundle.

    python -m training.cv evaluate-bundle --bundle DIR --data DIR [DIR ...] [--out DIR]

    python -m training.cv --data DIR [DIR ...] --out DIR [--backbones mobilenet_v2_035,...]
        [--weights imagenet|none|FILE] [--weights-dir DIR] [--folds 10] [--positive-class mpox]
        [--target-sensitivity 0.95] [--quantization int8] [--export-backbone NAME]
        [--fine-tune-layers N] [--ensembles NAME+NAME,...] [--quick] [--seed 0]

Several --data folders are several sources (see training.data.load_sources): the study then
also leaves each source out in turn (training.study_report). Everything lands in --out:
results.csv, summary.md, summary.json, config.json (the StudyConfig), run.json, PNG plots, the
per-fold files that let an interrupted run resume, and bundle/ (the serving bundle).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from model.runtime import import_tensorflow
from training.audit import (
    EMBEDDING_MIN_COSINE,
    PHASH_MAX_DISTANCE,
    AuditReport,
    audit_markdown,
    run_audit,
)
from training.backbones import (
    BACKBONES,
    EMBEDDING_NORMS,
    BackboneSpec,
    get_backbone,
    resolve_weights,
)
from training.config import StudyConfig
from training.data import LABELS, DataError, Dataset, load_pixels, load_sources, read_image
from training.ensemble import parse_ensembles
from training.features import Embeddings, cache_key, compute_embeddings
from training.train import BALANCES, group_splits

log = logging.getLogger("training.cv")


def parse_config(argv: list[str] | None = None) -> StudyConfig:
    parser = argparse.ArgumentParser(prog="python -m training.cv", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, nargs="+",
                        help="folder-per-class or MCSI folder; several: one per source, classed mpox / not_mpox")
    parser.add_argument("--out", required=True, type=Path, help="run folder for every output")
    parser.add_argument("--backbones", default="mobilenet_v2_035", help=f"comma-separated: {', '.join(BACKBONES)}")
    parser.add_argument("--weights", default="imagenet", help="imagenet, none, or a weights file")
    parser.add_argument("--weights-dir", type=Path, help="folder of Keras weight files (offline)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="input side in px (default: the backbone's native size); smaller is faster to serve")
    parser.add_argument("--embedding-norm", default="none", choices=EMBEDDING_NORMS,
                        help="rms: divide the pooled embedding by its root mean square, in the model, so the head "
                             "reads its direction, not its size (held out it ranks unseen sources better)")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--positive-class", default="mpox")
    parser.add_argument("--target-sensitivity", type=float, default=0.95)
    parser.add_argument("--threshold-rule", default="conformal", choices=("conformal", "empirical"),
                        help="conformal: a threshold that new positives clear with the target sensitivity "
                             "(split conformal); empirical: the highest one reaching it on the predictions")
    parser.add_argument("--inconclusive-sensitivity", type=float, default=0.99,
                        help="the inconclusive band starts where this sensitivity is reached...")
    parser.add_argument("--inconclusive-min-specificity", type=float, default=0.85,
                        help="...but never below the point where specificity falls under this")
    parser.add_argument("--quantization", default="int8", choices=("fp32", "dynamic", "fp16", "int8"))
    parser.add_argument("--float-embeddings", action="store_true",
                        help="fit and score heads on the float body's embedding instead of the served "
                             "(--quantization) body's; the figures then describe a model that is not served")
    parser.add_argument("--no-served-check", dest="served_check", action="store_false",
                        help="skip converting each fold's model as served (one conversion a fold); thresholds "
                             "then come from the study model's predictions, on the served body's embedding")
    parser.add_argument("--export-backbone", help="backbone of the exported bundle (default: first)")
    parser.add_argument("--ensembles", default="",
                        help="comma-separated ensembles of --backbones, members joined by +: each is measured "
                             "(mean of its members' probabilities, same folds) beside them, not exported")
    parser.add_argument("--view-averaging", default="mirror", choices=("mirror", "none"),
                        help="test-time augmentation: average each photo's probabilities over it and its mirror image (as served)")
    parser.add_argument("--head-selection", default="sources", choices=("sources", "groups"),
                        help="inner folds that choose the head's L2 strength and each fold's threshold: one "
                             "training source held out at a time (when they are several), or group-aware folds")
    parser.add_argument("--labels", default="screening", choices=LABELS,
                        help="several sources: the head learns the screening question (mpox or not), or each "
                             "source's own conditions (mpox merged; P(mpox) is what the bundle serves)")
    parser.add_argument("--balance", default="classes", choices=BALANCES,
                        help="the head's weights: each class the same, or sources too: mpox and the rest the same, "
                             "each condition the same within the rest, each source the same within a class; "
                             "sources-first (with --labels conditions): mpox and the rest the same, the rest shared "
                             "by the sources alike, then by each source's conditions")
    parser.add_argument("--augmented-copies", type=int, default=4, help="augmented copies per training photo")
    parser.add_argument("--fine-tune-layers", type=int, default=0, help="unfreeze the top N layers")
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--model-id", default="mpox-screen")
    parser.add_argument("--model-version", default="0.1.0")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 folds, 1 copy, no fine-tuning")
    parser.add_argument("--seed", type=int, default=0)
    argv = sys.argv[1:] if argv is None else argv
    options = vars(parser.parse_args(argv))
    options.update(data=tuple(options["data"]), command=shlex.join(["python", "-m", "training.cv", *argv]),
                backbones=tuple(n.strip() for n in options["backbones"].split(",") if n.strip()),
                ensembles=parse_ensembles(options["ensembles"]))
    if options["quick"]:
        options.update(folds=min(options["folds"], 3), augmented_copies=min(options["augmented_copies"], 1), fine_tune_layers=0)
    return StudyConfig(**options)


@dataclass(frozen=True)
class Prepared:
    """One backbone's inputs: weights resolved, photos resized, embeddings computed."""

    spec: BackboneSpec
    weights: str | None
    pixels: np.ndarray
    augmented: np.ndarray
    embeddings: Embeddings  # what heads are fitted on: the served body's unless --float-embeddings
    # The float body's embedding of each photo at the backbone's native input size: the audit's
    # cosine threshold was set on it, and it is the reference baseline's float embedding.
    float_plain: np.ndarray


def decode_all(records) -> tuple[list, list, list[tuple[str, str]]]:
    """Readable records with their decoded photos, and (name, reason) for each unreadable one."""
    from model.errors import ImageRejected

    kept, images, unreadable = [], [], []
    for record in tqdm(records, desc="decoding photos", unit="photo", leave=False, disable=len(records) < 100):
        try:
            images.append(read_image(record.path))
            kept.append(record)
        except ImageRejected as rejected:
            unreadable.append((f"{record.path.parent.name}/{record.path.name}", rejected.detail))
    return kept, images, unreadable


def prepare_backbone(name: str, config: StudyConfig, records, images, cache_dir: Path) -> Prepared:
    """Raises ValueError/FileNotFoundError with a clear message when the backbone cannot be used."""
    native = spec = get_backbone(name)
    if config.input_size:
        # The ImageNet weights are convolutional: they load at any input size.
        spec = dataclasses.replace(spec, input_size=config.input_size)
    spec = dataclasses.replace(spec, embedding_norm=config.embedding_norm)
    weights = resolve_weights(spec, config.weights, config.weights_dir)
    pixels, augmented = load_pixels(images, (spec.input_size, spec.input_size), config.augmented_copies, config.seed)
    quantization = None if config.float_embeddings else config.quantization
    paths = [r.path for r in records]
    key = cache_key(spec, weights, paths, config.augmented_copies, config.seed, quantization)
    try:
        embeddings = compute_embeddings(
            spec, weights, pixels, augmented, cache_dir / f"{name}-{key}.npz", config.seed, quantization)
        float_plain = embeddings.plain
        if quantization is not None or native.input_size != spec.input_size:
            # The audit's similarity threshold was set on the float body at its native size, so
            # near-duplicates are found the same way whatever size is served.
            native_pixels = pixels
            if native.input_size != spec.input_size:
                native_pixels, _ = load_pixels(images, (native.input_size, native.input_size), 0, config.seed)
            float_key = cache_key(native, weights, paths, 0, config.seed)
            float_plain = compute_embeddings(
                native, weights, native_pixels, native_pixels[:, np.newaxis][:, :0],
                cache_dir / f"{name}-{float_key}.npz", config.seed).plain
    except Exception as exc:  # Keras raises plain Exception when a download fails
        raise FileNotFoundError(
            f"{name}: could not load weights {weights!r} ({exc}); pass --weights-dir with Keras' "
            f"'{spec.weights_file}' or --weights none"
        ) from exc
    return Prepared(spec, weights, pixels, augmented, embeddings, float_plain)


def prepare_all(config: StudyConfig, records, images, cache_dir: Path) -> tuple[dict[str, Prepared], list[str]]:
    """Every requested backbone that can run; notes for the ones skipped."""
    names = config.backbones
    prepared, notes = {}, []
    for name in tqdm(names, desc="backbones: embeddings", unit="backbone", disable=len(names) < 2):
        try:
            prepared[name] = prepare_backbone(name, config, records, images, cache_dir)
        except (ValueError, FileNotFoundError) as exc:
            if len(names) == 1:
                raise
            notes.append(f"skipped {name}: {exc}")
            log.warning("backbone skipped name=%s reason=%s", name, exc)
    if not prepared:
        raise FileNotFoundError("no requested backbone could be loaded:\n" + "\n".join(notes))
    return prepared, notes


@dataclass(frozen=True)
class StudyData:
    """What the study runs on: the readable photos, their classes and groups, each backbone's inputs."""

    dataset: Dataset
    records: list
    images: list
    labels: np.ndarray
    audit: AuditReport
    splits: list[tuple[np.ndarray, np.ndarray]]
    prepared: dict[str, Prepared]
    notes: list[str]
    run_facts: dict  # run.json: what was found while running (classes, folds used, versions)

    @property
    def sources(self) -> np.ndarray:
        """The source of each readable photo."""
        return np.array([r.source for r in self.records])


def write_run_files(config: StudyConfig, facts: dict) -> dict:
    """config.json (the StudyConfig itself) and run.json (what this run found, and the code that ran)."""
    from training.run_info import git_sha, package_versions

    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "config.json").write_text(json.dumps(config.as_json(), indent=2) + "\n")
    facts = {**facts, "code_version": git_sha(), "packages": package_versions()}
    (config.out / "run.json").write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate-bundle"]:
        from training.bundle_eval import main as evaluate_bundle_main

        return evaluate_bundle_main(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = parse_config(argv)
        import_tensorflow()  # first, so that its start-up notes are dropped (model.runtime)
        return run(config)
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def prepare_study(config: StudyConfig) -> StudyData:
    """Read the sources, decode the photos, compute each backbone's embeddings, audit, split."""
    dataset = load_sources(config.data, config.labels)
    if config.positive_class not in dataset.class_names:
        raise DataError(f"positive class {config.positive_class!r} is not one of {list(dataset.class_names)}")
    records, images, unreadable = decode_all(dataset.records)
    prepared, notes = prepare_all(config, records, images, config.out / "cache")
    audit_backbone = next(iter(prepared))
    audit = run_audit(records, images, prepared[audit_backbone].float_plain, unreadable, dataset.missing)
    (config.out / "audit.md").write_text(audit_markdown(audit))
    labels = np.array([dataset.class_names.index(r.label) for r in records], dtype=np.int64)
    splits = group_splits(labels, audit.groups, config.folds, config.seed)
    facts = write_run_files(config, {
        "class_names": list(dataset.class_names), "layout": dataset.layout, "sources": list(dataset.sources),
        "folds_used": len(splits), "audit_backbone": audit_backbone, "head": asdict(config.head),
        "audit_thresholds": {"phash_max_distance": PHASH_MAX_DISTANCE, "embedding_min_cosine": EMBEDDING_MIN_COSINE},
    })
    return StudyData(dataset, records, images, labels, audit, splits, prepared, notes, facts)


def run(config: StudyConfig) -> int:
    from training.study_report import write_study

    config.out.mkdir(parents=True, exist_ok=True)
    write_study(config, prepare_study(config))
    print(f"study written to {config.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
