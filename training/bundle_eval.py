"""A serving bundle on sources of photos: the figures a user whose photos look like each source gets.

    python -m training.cv evaluate-bundle --bundle models/demo --data DIR [DIR ...] [--out DIR]

Every photo is screened as the service screens it (quality gate, typicality check, verdict). The
model's own figures (AUC; sensitivity and specificity at the bundle's positive threshold) use
P(mpox) of every readable photo, refused ones included, so a refusal neither hides a miss nor
flatters specificity; what the screen said as served (refused, called mpox) is counted beside
them. A source's classes are mapped to the screening question by `training.data.is_mpox_class`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from training.data import DataError, load_dataset
from training.sources import Rate, SourceFigures, figures_table, lookalike_table, source_figures


@dataclass(frozen=True)
class BundleOnSource:
    """One bundle on one source: the model's figures and what the screen said as served."""

    figures: SourceFigures
    unreadable: int
    refused: Rate  # photos refused (gate or typicality check), of all readable photos
    served_caught: Rate  # mpox photos given a positive verdict, of all mpox photos
    served_called_mpox: Rate  # other photos given a positive verdict, of all other photos

    def as_dict(self) -> dict:
        return {**self.figures.as_dict(), "unreadable": self.unreadable, "refused": self.refused.as_dict(),
                "served_mpox_caught": self.served_caught.as_dict(),
                "served_not_mpox_called_mpox": self.served_called_mpox.as_dict()}


def model_probability(screener, image) -> float:
    """P(mpox) of a decoded photo by the bundle's model, as the service computes it (views averaged)."""
    from model.preprocess import classifier_views, normalise, prepare_pixels

    manifest = screener.manifest
    pixels = prepare_pixels(image, manifest.input_size)
    views = normalise(classifier_views(pixels, manifest.view_averaging), manifest.normalisation)
    return float(screener.classifier.predict_views(views)[manifest.positive_index])


def evaluate_on_source(screener, folder: Path) -> BundleOnSource:
    """Screen every photo of one source folder (either layout) and count."""
    from model.errors import ImageRejected
    from model.types import Verdict
    from training.data import is_mpox_class, read_image

    dataset = load_dataset(folder, min_classes=1)
    is_mpox, probability, classes, verdicts, unreadable = [], [], [], [], 0
    for record in tqdm(dataset.records, desc=folder.name, unit="photo"):
        result = screener.screen(record.path.read_bytes(), with_heatmap=False)
        p = result.positive_probability
        if p is None:  # refused before a verdict: the model's answer still counts in its figures
            try:
                p = model_probability(screener, read_image(record.path))
            except ImageRejected:
                unreadable += 1
                continue
        is_mpox.append(is_mpox_class(record.label))
        probability.append(p)
        classes.append(record.source_label)
        verdicts.append(result.verdict)
    is_mpox_array = np.array(is_mpox, bool)
    positive = np.array([v is Verdict.POSITIVE for v in verdicts], bool)
    refused = np.array([v in (Verdict.RETAKE, Verdict.ERROR) for v in verdicts], bool)
    figures = source_figures(folder.name, is_mpox_array, np.array(probability),
                             screener.manifest.thresholds.positive, classes)
    return BundleOnSource(
        figures=figures, unreadable=unreadable, refused=Rate(int(refused.sum()), len(verdicts)),
        served_caught=Rate(int(positive[is_mpox_array].sum()), int(is_mpox_array.sum())),
        served_called_mpox=Rate(int(positive[~is_mpox_array].sum()), int((~is_mpox_array).sum())),
    )


def report_markdown(bundle_name: str, threshold: float, results: list[BundleOnSource]) -> str:
    """The model's figures per source, what the screen said as served, and the look-alikes by condition."""
    lines = [
        f"Bundle `{bundle_name}`, threshold P(mpox) >= {threshold:.3f}; 95 % Wilson intervals; counts in brackets. "
        "Model figures use every readable photo, refused ones included.", "",
        figures_table([r.figures for r in results]), "",
        "| source | refused (gate or check) | as served: mpox photos called mpox | as served: other photos called mpox |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.figures.source} | {r.refused.text()} | {r.served_caught.text()} | {r.served_called_mpox.text()} |"
              for r in results]
    for result in results:
        if result.figures.sensitivity.total == 0 and result.figures.called_mpox_by_class:
            lines += ["", lookalike_table(result.figures)]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.cv evaluate-bundle", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", required=True, type=Path, help="a serving bundle folder, e.g. models/demo")
    parser.add_argument("--data", required=True, type=Path, nargs="+", help="one folder per source")
    parser.add_argument("--out", type=Path, help="folder for bundle_eval.md and bundle_eval.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from model.screening import load_screener

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        screener = load_screener(args.bundle, heatmap_method=None)
        results = [evaluate_on_source(screener, folder) for folder in args.data]
    except (DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = report_markdown(screener.model_id, screener.manifest.thresholds.positive, results)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bundle_eval.md").write_text(text)
        (args.out / "bundle_eval.json").write_text(json.dumps(
            {"bundle": str(args.bundle), "model_id": screener.model_id, "sources": [r.as_dict() for r in results]},
            indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
