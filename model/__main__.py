"""Screen photos from the command line, or show a model bundle's card.

Usage:
    python -m model screen [--bundle DIR] [--heatmap-dir DIR] [--json] PHOTO...
    python -m model info [--bundle DIR]

A file that cannot be screened gets verdict `error` (or `retake`) with a reason; the other
photos are still screened. Exit status: 0 when every photo was screened or refused cleanly,
2 when the bundle cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from model.errors import BundleError
from model.settings import ModelSettings
from model.types import Reason, ScreeningResult, Verdict, likeliest_classes

_ADVICE = {
    Verdict.POSITIVE: "features resembling mpox: seek care and testing",
    Verdict.INCONCLUSIVE: "the screen cannot rule mpox out: have a clinician look at it",
    Verdict.NEGATIVE: "mpox unlikely for this photo; see a doctor if symptoms persist",
    Verdict.RETAKE: "retake the photo closer, in daylight, holding steady",
    Verdict.ERROR: "this file could not be screened",
}
DISCLAIMER = "This is a screen, not a diagnosis."


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    screen = commands.add_parser("screen", help="screen photo files")
    screen.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    screen.add_argument("--bundle", type=Path, help="model bundle folder (default: MODEL_BUNDLE)")
    screen.add_argument("--heatmap-dir", type=Path, help="write each heatmap picture (JPEG) here")
    screen.add_argument("--json", action="store_true", help="one JSON object per photo per line")
    info = commands.add_parser("info", help="print the bundle's model card")
    info.add_argument("--bundle", type=Path)
    return parser.parse_args(argv)


def _read(path: Path) -> bytes | ScreeningResult:
    try:
        return path.read_bytes()
    except OSError as exc:
        detail = "file not found" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
        return ScreeningResult(
            verdict=Verdict.ERROR, model_id="", reason=Reason.NOT_AN_IMAGE, detail=detail
        )


def _write_heatmap(result: ScreeningResult, photo: Path, folder: Path | None, index: int) -> str | None:
    if folder is None or result.heatmap_jpeg is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{index:03d}-{photo.stem}.heatmap.jpg"
    target.write_bytes(result.heatmap_jpeg)
    return str(target)


def _print_result(photo: Path, result: ScreeningResult, heatmap: str | None, as_json: bool) -> None:
    if as_json:
        data = result.to_json_dict()
        record = {
            "file": str(photo),
            "verdict": data["verdict"],
            "probabilities": data["probabilities"],
            "predicted_class": data["predicted_class"],
            "reason": data["reason"],
            "model_id": data["model_id"],
            "timings_ms": data["timings_ms"],
            "heatmap": heatmap,
        }
        if result.detail and result.is_refusal:
            record["detail"] = result.detail
        print(json.dumps(record), flush=True)
        return
    line = f"{photo}: {result.verdict.value.upper()}: {_ADVICE[result.verdict]}"
    if result.is_refusal:
        line += f" ({result.detail or result.reason})"
    else:
        line += f" [{likeliest_classes(result.probabilities)}; {result.timings.total_ms:.0f} ms]"
    if heatmap:
        line += f" heatmap: {heatmap}"
    print(line, flush=True)


def _screen(args: argparse.Namespace, settings: ModelSettings) -> int:
    from model.screening import load_screener

    screener = load_screener(
        args.bundle or settings.model_bundle,
        heatmap_method=settings.heatmap_method,
        max_photo_bytes=settings.max_photo_bytes,
        litert_threads=settings.litert_threads,
        warm_up=True,  # so each photo's timings are its own, not the one-off graph tracing
    )
    for index, photo in enumerate(args.photos):
        data = _read(photo)
        if isinstance(data, ScreeningResult):
            result = ScreeningResult(**{**data.__dict__, "model_id": screener.model_id})
        else:
            result = screener.screen(data, with_heatmap=args.heatmap_dir is not None)
        _print_result(photo, result, _write_heatmap(result, photo, args.heatmap_dir, index), args.json)
    if not args.json:
        print(DISCLAIMER)
    return 0


def _info(args: argparse.Namespace, settings: ModelSettings) -> int:
    from model.bundle import load_bundle

    bundle = load_bundle(args.bundle or settings.model_bundle)
    print(bundle.card_path.read_text(encoding="utf-8"))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    args = _parse_args(argv)
    settings = ModelSettings()
    try:
        return _screen(args, settings) if args.command == "screen" else _info(args, settings)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
