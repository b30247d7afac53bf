"""Per-stage latency of the screening core over the shared photos, per quantization mode.

Usage:
    .venv/bin/python -m benchmarks.screen [--bundle DIR] [--data DIR] [--repeats N] [--modes int8,fp32,...]
        [--refusals-only] [--compare-methods]

For each mode it converts the bundle's float model (model.keras) to TFLite in that mode (int8
calibrated on the photos themselves), screens every photo `repeats` times after a warm-up, and
prints p50/p95 per stage (decode, quality gate, inference, heatmap, JPEG render) and in total.
It also reports the quality gate's false-reject rate on those real photos.

Typicality check (issue 10), for the bundle as shipped: its cost (the scoring alone, and the
LiteRT call with and without the embedding output), and what the whole screen refuses and calls
positive on every photo set in the data folder's parent (the one the bundle was trained on is
marked) and on the non-skin pictures (`training.nonskin`), with counts. `--compare-methods`
also measures the alternative methods (`training.typicality.compare_methods`), each with its own
threshold from the training photos' out-of-fold scores (`--data` must be the training set).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

STAGES = ("decode_ms", "quality_ms", "inference_ms", "heatmap_ms", "render_ms", "total_ms")


def _bundle_in_mode(source: Path, mode: str, photos: list[bytes], scratch: Path) -> Path:
    """A copy of the bundle whose model.tflite is converted in `mode`."""
    import dataclasses

    import keras

    from model.bundle import load_bundle
    from model.imaging import decode_image
    from model.preprocess import normalise, prepare_pixels
    from training.export import export_bundle

    bundle = load_bundle(source)
    if bundle.manifest.quantization == mode:
        return source
    # The typicality statistics describe the shipped mode's embedding; other modes go without.
    manifest = dataclasses.replace(bundle.manifest, quantization=mode, typicality=None)
    model = keras.saving.load_model(bundle.keras_path, compile=False)
    size, norm = manifest.input_size, manifest.normalisation

    def representative():
        for data in photos[:32]:
            yield normalise(prepare_pixels(decode_image(data), size), norm)[None]

    target = scratch / mode
    shutil.rmtree(target, ignore_errors=True)
    return export_bundle(target, model, manifest, representative_batches=representative).path


def _measure(bundle_path: Path, photos: list[bytes], repeats: int, threads: int) -> dict[str, list[float]]:
    from model.screening import load_screener

    screener = load_screener(bundle_path, litert_threads=threads)
    for data in photos[:5]:
        screener.screen(data)  # warm caches beyond the built-in warm-up
    figures: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for _ in range(repeats):
        for data in photos:
            result = screener.screen(data)
            if result.is_refusal:
                continue
            for stage, value in result.timings.as_dict().items():
                figures[stage].append(value)
    return figures


def _one_batch(image, size: tuple[int, int], normalisation) -> np.ndarray:
    """One photo as the classifier's 1xHxWx3 input: the two steps serving takes."""
    from model.preprocess import normalise, prepare_pixels

    return normalise(prepare_pixels(image, size), normalisation)[np.newaxis, ...]


def _invoke_only(bundle_path: Path, photos: list[bytes], threads: tuple[int, ...] = (1, 2)) -> str:
    """p50/p95 of the LiteRT call alone (one prepared photo, 300 calls), per thread count."""
    from model.bundle import load_bundle
    from model.imaging import decode_image
    from model.inference import Classifier
    from model.preprocess import classifier_views
    from training.quantize import litert_call_times_ms

    manifest = load_bundle(bundle_path).manifest
    views = len(classifier_views(np.zeros((1, 1, 3)), manifest.view_averaging))
    batch = _one_batch(decode_image(photos[0]), manifest.input_size, manifest.normalisation)
    parts = []
    for count in threads:
        classifier = Classifier(bundle_path / "model.tflite", num_threads=count)
        times = litert_call_times_ms(classifier, batch, runs=300, warm_up=20)
        parts.append(f"{count} thread(s) p50 {np.percentile(times, 50):.2f} / p95 {np.percentile(times, 95):.2f} ms")
    return (f"  LiteRT call alone (one view; a screen makes {views}, averaged): " + "; ".join(parts))


def _typicality_cost(bundle_path: Path, photos: list[bytes]) -> None:
    """Scoring time alone, and one LiteRT call with the embedding output against one without."""
    import keras

    from model.bundle import load_bundle
    from model.imaging import decode_image
    from model.inference import Classifier
    from model.preprocess import classifier_views, normalise, prepare_pixels
    from model.screening import Screener
    from training.export import convert_to_tflite
    from training.quantize import litert_call_times_ms

    bundle = load_bundle(bundle_path)
    screener = Screener(bundle, heatmap_method=None)
    if screener.typicality is None:
        print("typicality check: the bundle carries none")
        return
    manifest = bundle.manifest
    views = [normalise(classifier_views(prepare_pixels(decode_image(d), manifest.input_size), manifest.view_averaging),
                       manifest.normalisation) for d in photos[:50]]
    embeddings = [screener.classifier.predict_views_with_embedding(v)[1] for v in views]
    times = []
    for _ in range(20):
        for embedding in embeddings:
            start = time.perf_counter()
            screener.typicality.score(embedding)
            times.append((time.perf_counter() - start) * 1000)
    rows = "" if screener.typicality.model.reference is None else f", {len(screener.typicality.model.reference)} reference photos"
    print(f"typicality check ({manifest.typicality.method.value}{rows}): scoring p50 {np.percentile(times, 50):.3f} / p95 {np.percentile(times, 95):.3f} ms per screen ({len(times)} calls)")
    size, norm = manifest.input_size, manifest.normalisation
    keras_model = keras.saving.load_model(bundle.keras_path, compile=False)
    one_output = convert_to_tflite(keras_model, manifest.quantization,
                                   lambda: (_one_batch(decode_image(d), size, norm) for d in photos[:32]))
    batch = _one_batch(decode_image(photos[0]), size, norm)
    # The study's timing loop calls `.predict`; the served call also reads the embedding output.
    served_call = SimpleNamespace(predict=screener.classifier.predict_with_embedding)
    for label, classifier in (("with embedding output (served)", served_call),
                              ("class output only", Classifier(model_content=one_output))):
        call = litert_call_times_ms(classifier, batch, runs=300, warm_up=20)
        print(f"  LiteRT call {label}: p50 {np.percentile(call, 50):.3f} / p95 {np.percentile(call, 95):.3f} ms")


def training_sources(training_data: dict) -> set[str]:
    """The photo sets a bundle was trained on: a study of several sources names them joined
    with "+" (training.config.StudyConfig.data_name)."""
    return {name for name in str(training_data.get("source", "")).split("+") if name}


def _refusals(bundle_path: Path, data: Path) -> None:
    """Item 4 of issue 10: refused and positive shares on every photo set and the non-skin sets."""
    from model.bundle import load_bundle
    from training.typicality import evaluate_bundle, photo_files

    trained_on = training_sources(load_bundle(bundle_path).manifest.training_data)
    sets = {}
    for folder in sorted(p for p in data.parent.iterdir() if p.is_dir()):
        try:
            files = photo_files(folder)
        except ValueError:
            continue
        sets[f"{folder.name} ({'trained on' if folder.name in trained_on else 'not trained on'})"] = files
    print("\nwhole screen as served (quality gate, then typicality check, then verdict):")
    for result in evaluate_bundle(bundle_path, sets):
        print(f"  {result.line()}")
        if result.non_skin and result.positive_names:
            print(f"    positive: {', '.join(result.positive_names)}")


def _compare_methods(bundle_path: Path, data: Path) -> None:
    """Each alternative with its own out-of-fold threshold, on the same served embeddings."""
    from model.bundle import load_bundle
    from model.errors import ImageRejected
    from model.imaging import decode_image
    from model.preprocess import prepare_pixels
    from model.quality import assess
    from model.screening import Screener
    from training.nonskin import evaluation_sets
    from training.typicality import compare_methods, photo_files, served_view_embeddings

    bundle = load_bundle(bundle_path)
    manifest = bundle.manifest
    classifier = Screener(bundle, heatmap_method=None).classifier

    def embed(named: list[tuple[str, bytes]]) -> tuple[list[str], np.ndarray]:
        kept = []
        for n, d in named:
            try:
                image = decode_image(d)
            except ImageRejected:
                continue
            if assess(image).reason is None:  # the check sees these only
                kept.append((n, image))
        pixels = np.stack([prepare_pixels(image, manifest.input_size) for _, image in kept])
        return [n for n, _ in kept], served_view_embeddings(classifier, pixels, manifest.normalisation, manifest.view_averaging)

    train_files = photo_files(data)
    names = [f"{p.parent.name}/{p.name}" for p in train_files]
    train_names, train = embed([(n, p.read_bytes()) for n, p in zip(names, train_files, strict=True)])
    group_of = {name: k for k, members in enumerate(manifest.training_data["audit"]["duplicate_groups"]) for name in members}
    groups = np.array([group_of.get(n, 1000 + i) for i, n in enumerate(train_names)])
    labels = np.array([manifest.class_names.index(n.split("/")[0]) if n.split("/")[0] in manifest.class_names else 0
                       for n in train_names])
    others = {}
    for folder in sorted(p for p in data.parent.iterdir() if p.is_dir() and p.resolve() != data.resolve()):
        try:
            others[folder.name] = embed([(p.name, p.read_bytes()) for p in photo_files(folder)])[1]
        except ValueError:
            continue
    for name, pictures in evaluation_sets().items():
        others[name] = embed([(p.name, p.data) for p in pictures])[1]
    print(f"\ntypicality methods compared (refused / pictures that passed the quality gate; thresholds from "
          f"{len(train)} training photos' out-of-fold scores, group-aware, for <= 2 % refused):")
    for row in compare_methods(train, groups, labels, others):
        cells = [f"{k} {v[0]}/{v[1]}" for k, v in row.items() if isinstance(v, tuple)]
        print(f"  {row['method']:<36} threshold {row['threshold']:.4f}: " + "; ".join(cells))


def _print_table(mode: str, figures: dict[str, list[float]], size_bytes: int) -> None:
    print(f"\n{mode}: model.tflite {size_bytes / 1024:.0f} KiB, {len(figures['total_ms'])} screens")
    print(f"  {'stage':<14}{'p50 ms':>9}{'p95 ms':>9}   (inference = resize + normalise + LiteRT per view)")
    for stage in STAGES:
        values = np.array(figures[stage])
        print(f"  {stage:<14}{np.percentile(values, 50):9.2f}{np.percentile(values, 95):9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "demo")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mpox-web-2022")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="int8,dynamic,fp16,fp32")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads")
    parser.add_argument("--refusals-only", action="store_true",
                        help="only the typicality figures (cost, refusals), no per-mode timing tables")
    parser.add_argument("--compare-methods", action="store_true", help="also compare typicality methods")
    args = parser.parse_args()

    paths = sorted(p for p in args.data.rglob("*") if p.is_file())
    photos = [p.read_bytes() for p in paths]
    if not args.bundle.is_dir():
        sys.exit(f"no bundle at {args.bundle}; pass --bundle")

    from model.imaging import decode_image
    from model.quality import assess

    refused = [p for p in paths if assess(decode_image(p.read_bytes())).reason is not None]
    print(f"quality gate: {len(refused)}/{len(paths)} real photos refused "
          f"(false-reject rate {len(refused) / len(paths):.1%})")
    for path in refused:
        print(f"  refused: {path.relative_to(args.data)}")

    _typicality_cost(args.bundle, photos)
    _refusals(args.bundle, args.data)
    if args.compare_methods:
        _compare_methods(args.bundle, args.data)
    if args.refusals_only:
        return
    with tempfile.TemporaryDirectory() as scratch:
        for mode in args.modes.split(","):
            started = time.perf_counter()
            bundle_path = _bundle_in_mode(args.bundle, mode, photos, Path(scratch))
            figures = _measure(bundle_path, photos, args.repeats, args.threads)
            _print_table(mode, figures, (bundle_path / "model.tflite").stat().st_size)
            print(_invoke_only(bundle_path, photos))
            print(f"  (mode prepared and measured in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
