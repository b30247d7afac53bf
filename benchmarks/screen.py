"""Per-stage latency of the screening core over the shared photos, per quantization mode.

Usage:
    .venv/bin/python -m benchmarks.screen [--bundle DIR] [--data DIR] [--repeats N] [--modes int8,fp32,...]

For each mode it converts the bundle's float model (model.keras) to TFLite in that mode (int8
calibrated on the photos themselves), screens every photo `repeats` times after a warm-up, and
prints p50/p95 per stage (decode, quality gate, inference, heatmap, PNG render) and in total.
It also reports the quality gate's false-reject rate on those real photos.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

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
    from model.preprocess import prepare_input
    from training.export import export_bundle

    bundle = load_bundle(source)
    if bundle.manifest.quantization == mode:
        return source
    manifest = dataclasses.replace(bundle.manifest, quantization=mode)
    model = keras.saving.load_model(bundle.keras_path, compile=False)
    size, norm = manifest.input_size, manifest.normalisation

    def representative():
        for data in photos[:32]:
            yield prepare_input(decode_image(data), size, norm)

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


def _invoke_only(bundle_path: Path, photos: list[bytes], threads: tuple[int, ...] = (1, 2)) -> str:
    """p50/p95 of the LiteRT call alone (one prepared photo, 300 calls), per thread count."""
    from model.bundle import load_bundle
    from model.imaging import decode_image
    from model.inference import Classifier
    from model.preprocess import classifier_views, prepare_input
    from training.quantize import litert_call_times_ms

    manifest = load_bundle(bundle_path).manifest
    views = len(classifier_views(np.zeros((1, 1, 3)), manifest.view_averaging))
    batch = prepare_input(decode_image(photos[0]), manifest.input_size, manifest.normalisation)
    parts = []
    for count in threads:
        classifier = Classifier(bundle_path / "model.tflite", num_threads=count)
        times = litert_call_times_ms(classifier, batch, runs=300, warm_up=20)
        parts.append(f"{count} thread(s) p50 {np.percentile(times, 50):.2f} / p95 {np.percentile(times, 95):.2f} ms")
    return (f"  LiteRT call alone (one view; a screen makes {views}, averaged): " + "; ".join(parts))


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
