"""Wall time of the frozen-phase 10-fold study of one backbone, and its projection to 400 photos.

    .venv/bin/python -m benchmarks.study [--data DIR] [--weights-dir DIR] [--backbone mobilenet_v2_035]

Stages timed on the real photos: decode, resize + augmented copies, embeddings (by the int8 body,
converted and calibrated as served), audit, the 10 folds (head fitting with inner model
selection, thresholds, metrics), and the per-fold check of the converted (served) model. The projection to MCSI's
400 photos scales the per-photo stages linearly and *measures* the folds again on 400 photos
resampled from the real embeddings (plus noise), since head fitting is not linear in N.
Target: <= 5 minutes for one backbone on 400 photos on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mpox-web-2022"
DEFAULT_WEIGHTS = REPO.parent / "shared" / "weights"
TARGET_PHOTOS = 400
TARGET_SECONDS = 300


def timed(label: str, timings: dict, call):
    start = time.perf_counter()
    result = call()
    timings[label] = time.perf_counter() - start
    return result


def folds_seconds(spec, embeddings, labels, groups, folds: int, copies: int) -> float:
    from training.crossval import StudyInputs, run_folds
    from training.train import HeadConfig, group_splits

    empty = np.zeros((len(labels), 1, 1, 3), np.uint8)
    inputs = StudyInputs(spec, None, tuple(f"c{i}" for i in range(labels.max() + 1)), "c0", labels, groups,
                         embeddings, empty, empty[:, None], HeadConfig(), 0.95)
    splits = group_splits(labels, groups, folds, 0)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        run_folds(inputs, splits, Path(scratch), "benchmark")
        return time.perf_counter() - start


def served_check_seconds(spec, weights, pixels, augmented, args) -> float:
    """One fold's served-model check: build, convert (calibrated), run its ~1/10 test photos."""
    from training.backbones import build_classifier
    from training.quantize import calibration_batches, served_probabilities
    from training.train import HeadConfig

    start = time.perf_counter()
    model = build_classifier(spec, 4, weights=weights)
    calibration = calibration_batches(pixels, augmented, spec.normalisation)
    served_probabilities(model, args.quantization, calibration, pixels[: len(pixels) // args.folds], spec.normalisation,
                         HeadConfig().view_averaging)
    return time.perf_counter() - start


def resampled(embeddings, labels, groups, count: int, seed: int = 0):
    """`count` photos drawn from the real ones (with noise), keeping class and group structure."""
    from training.features import Embeddings

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(labels), count, replace=True)
    noise = lambda a: a + rng.normal(scale=0.05 * a.std(), size=a.shape).astype(np.float32)  # noqa: E731
    plain, augmented, mirrored = (noise(a[pick]) for a in (embeddings.plain, embeddings.augmented, embeddings.mirrored))
    return Embeddings(plain, augmented, mirrored), labels[pick], groups[pick] * 10_000 + np.arange(count) // 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--backbone", default="mobilenet_v2_035")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--quantization", default="int8")
    args = parser.parse_args()

    from training.audit import run_audit
    from training.backbones import get_backbone, resolve_weights
    from training.cv import decode_all
    from training.data import load_dataset, load_pixels
    from training.features import compute_embeddings

    spec = get_backbone(args.backbone)
    weights = resolve_weights(spec, "imagenet", args.weights_dir)
    t: dict[str, float] = {}
    dataset = load_dataset(args.data)
    records, images, _ = timed("decode", t, lambda: decode_all(dataset.records))
    size = (spec.input_size, spec.input_size)
    pixels, augmented = timed("resize+augment", t, lambda: load_pixels(images, size, args.copies, 0))
    embeddings = timed("embeddings", t, lambda: compute_embeddings(
        spec, weights, pixels, augmented, quantization=args.quantization))
    audit = timed("audit", t, lambda: run_audit(records, images, embeddings.plain))
    labels = np.array([dataset.class_names.index(r.label) for r in records])
    t["folds"] = folds_seconds(spec, embeddings, labels, audit.groups, args.folds, args.copies)
    t["served check"] = served_check_seconds(spec, weights, pixels, augmented, args) * args.folds
    n = len(records)
    total = sum(t.values())
    print(f"backbone={spec.name} photos={n} folds={args.folds} augmented_copies={args.copies}")
    for stage, seconds in t.items():
        print(f"  {stage:15s} {seconds:7.1f} s")
    print(f"  {'total':15s} {total:7.1f} s")

    scale = TARGET_PHOTOS / n
    big = resampled(embeddings, labels, audit.groups, TARGET_PHOTOS)
    folds_400 = folds_seconds(spec, *big, args.folds, args.copies)
    linear = (t["decode"] + t["resize+augment"] + t["embeddings"]) * scale
    audit_400 = t["audit"] * scale**2  # pairwise comparisons
    projected = linear + audit_400 + folds_400
    print(f"projection to {TARGET_PHOTOS} photos: per-photo stages {linear:.1f} s (linear), audit "
          f"{audit_400:.1f} s (quadratic), folds {folds_400:.1f} s (measured on {TARGET_PHOTOS} resampled)")
    verdict = "meets" if projected <= TARGET_SECONDS else "MISSES"
    print(f"projected frozen phase {projected:.1f} s = {projected / 60:.1f} min; {verdict} the "
          f"{TARGET_SECONDS / 60:.0f}-minute target")
    # calibration is capped (CALIBRATION_LIMIT), so each fold's conversion barely grows with N
    with_check = projected + t["served check"]
    print(f"with the per-fold served-model check (+{t['served check']:.0f} s, about constant): "
          f"{with_check:.1f} s = {with_check / 60:.1f} min")


if __name__ == "__main__":
    main()
