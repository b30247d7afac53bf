"""A fast probe of ideas before a full study: frozen float features, leave one source out.

    python -m training.probe --data DIR DIR [DIR ...] --weights-dir DIR [--backbones mobilenet_v1,...]
        [--input-size 224] [--colour none,grey-world,shades-of-grey] [--crops 1.0,0.7,5x0.7]
        [--strengths 0.0003,0.001,...] [--ensembles mobilenet_v1+mobilenet_v1_075,...]
        [--features pooled,levels] [--embedding-norm none,rms] [--balance classes,sources,sources-first] [--labels screening,conditions] [--out FILE.md]

For each backbone and each way of preparing the photos (colour constancy, a centre crop, or the
whole photo and five crops, their embeddings averaged) it embeds every photo and its mirror image
once with the float body, then holds each source out in turn: the study's head
(`training.train.fit_head`, class-balanced logistic regression) is fitted on the other sources
and scores the held-out one, its answer averaged over the photo and its mirror. The head's L2
strength is chosen as the study chooses it across sources, on the training sources held out one
at a time (class-balanced log loss), or fixed when one strength is given. An ensemble averages
its members' held-out probabilities (each member with its own head), as serving two models side
by side would. A row gives, per held-out source, AUC and sensitivity at specificity >= 0.80 (a
point of that source's ROC curve), and how many photos of a source without mpox (look-alikes)
score above the threshold that catches 90 % of all held-out mpox photos. Minutes, not the hour
of a full study: no int8 conversion, no augmentation, no bundle. Use it to choose what a full
study should try.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import LeaveOneGroupOut

from model.preprocess import prepare_pixels
from model.runtime import import_tensorflow
from training.audit import connected_groups, patient_links
from training.backbones import EMBEDDING_NORMS, build_classifier, get_backbone, resolve_weights
from training.data import LABELS, NOT_MPOX, is_mpox_class, load_sources, read_image, study_class
from training.ensemble import ensemble_name, parse_ensembles
from training.features import Embeddings, embed, feature_model, mirror_images
from training.train import BALANCES, HeadConfig, fit_head, view_probabilities

HEAD = HeadConfig(selection="sources")  # the study's head, chosen across sources as the study does
COLOUR_POWERS = {"none": None, "grey-world": 1.0, "shades-of-grey": 6.0}  # Minkowski norm of the illuminant


def colour_constancy(pixels: np.ndarray, power: float | None) -> np.ndarray:
    """Shades-of-grey colour constancy of uint8 (N,H,W,3) pixels: each photo's illuminant, the
    `power`-norm mean of each channel, is scaled to neutral grey (power 1: grey world)."""
    if power is None:
        return pixels
    x = pixels.astype(np.float32) / 255.0
    illuminant = np.power(np.power(x, power).reshape(len(x), -1, 3).mean(1), 1.0 / power) + 1e-6
    illuminant /= np.linalg.norm(illuminant, axis=1, keepdims=True) / np.sqrt(3.0)
    return np.clip(x / illuminant[:, None, None, :] * 255.0, 0, 255).astype(np.uint8)


def centre_crop(pixels: np.ndarray, scale: float, anchor: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """The central `scale` of each uint8 (N,H,W,3) photo, resized back to H x W (a closer view);
    `anchor` (0..1 from the top, from the left) places the crop elsewhere: (0, 0) is top left."""
    if scale >= 1.0:
        return pixels
    height, width = pixels.shape[1:3]
    crop_h, crop_w = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = round((height - crop_h) * anchor[0]), round((width - crop_w) * anchor[1])
    return np.stack([prepare_pixels(Image.fromarray(p[top:top + crop_h, left:left + crop_w]), (width, height))
                     for p in pixels])


FIVE_CROPS = ((0.5, 0.5), (0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))  # centre, then the corners


def crop_views(pixels: np.ndarray, spec: str) -> list[np.ndarray]:
    """The views whose embeddings are averaged for one --crops entry: "0.7" is the central 70 %
    alone; "5x0.7" is the whole photo and five 70 % crops (centre and corners), several views of
    a lesion that may not sit in the middle."""
    if spec.startswith("5x"):
        scale = float(spec[2:])
        return [pixels, *(centre_crop(pixels, scale, anchor) for anchor in FIVE_CROPS)]
    return [centre_crop(pixels, float(spec))]


def level_layers(classifier, input_size: int, strides: tuple[int, ...] = (8, 16, 32)) -> list:
    """The backbone's last layer output at each of `strides` (28, 14 and 7 wide at 224 px):
    mid-level texture and colour as well as the top layer's object-like features."""
    last: dict[int, object] = {}
    for layer in classifier.layers:
        shape = layer.output.shape if len(layer.output.shape) == 4 else None
        if shape and shape[1] and input_size % int(shape[1]) == 0:
            last[input_size // int(shape[1])] = layer
    return [last[s] for s in strides if s in last]


def probe_extractor(classifier, input_size: int, features: str):
    """The embedding the head is fitted on: "pooled" is the served `features` layer; "levels"
    concatenates the global average of the last activation at strides 8, 16 and 32."""
    if features == "pooled":
        return feature_model(classifier)
    import keras

    pooled = [keras.layers.GlobalAveragePooling2D()(layer.output) for layer in level_layers(classifier, input_size)]
    return keras.Model(classifier.input, keras.layers.Concatenate()(pooled))


def held_out_probabilities(embeddings: Embeddings, is_mpox: np.ndarray, sources: np.ndarray, groups: np.ndarray,
                           head: HeadConfig, conditions: np.ndarray | None = None
                           ) -> tuple[np.ndarray, dict[str, float]]:
    """P(mpox) of every photo from a head that never saw its source, and the strength each used.

    Each head is the study's own (`fit_head`): its strength chosen on the training sources held
    out one at a time (group folds where that cannot judge), the photo's views averaged. With
    `conditions` (each photo's own class name) the head learns those finer classes, mpox photos
    being one class whatever their source calls it, and P(mpox) is what is scored."""
    names = ([study_class(c, "conditions") for c in conditions] if conditions is not None
             else np.where(is_mpox, "mpox", NOT_MPOX))
    classes, labels = np.unique(names, return_inverse=True)
    positive = int(np.flatnonzero(classes == "mpox")[0])
    result, chosen = np.zeros(len(labels)), {}
    for train, test in LeaveOneGroupOut().split(labels, labels, sources):
        fitted = fit_head(embeddings, labels, groups, train, len(classes), head, 0, sources, positive)
        chosen[str(sources[test[0]])] = fitted.regularisation
        result[test] = view_probabilities(fitted.model, embeddings, test, len(classes), head.view_averaging)[:, positive]
    return result, chosen


def probe_row(label: str, probabilities: np.ndarray, is_mpox: np.ndarray, sources: np.ndarray,
              order: tuple[str, ...]) -> str:
    """One markdown row: each held-out source's AUC and sensitivity at specificity >= 0.80, then
    the photos of sources without mpox above the threshold that catches 90 % of held-out mpox."""
    cells = [label]
    threshold = np.quantile(probabilities[is_mpox], 0.10)
    for name in order:
        here = sources == name
        if not is_mpox[here].any():
            cells.append(f"{int((probabilities[here] >= threshold).sum())}/{int(here.sum())}")
        elif is_mpox[here].all():
            cells.append("n/a")
        else:
            fpr, tpr, _ = roc_curve(is_mpox[here], probabilities[here])
            caught = int(round(tpr[fpr <= 0.2].max() * is_mpox[here].sum()))
            cells.append(f"{roc_auc_score(is_mpox[here], probabilities[here]):.3f}, {caught}/{int(is_mpox[here].sum())}")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.probe", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, nargs="+", help="two or more source folders")
    parser.add_argument("--weights-dir", type=Path, help="folder of Keras weight files (offline)")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--backbones", default="mobilenet_v1")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--colour", default="none", help=f"comma-separated: {', '.join(COLOUR_POWERS)}")
    parser.add_argument("--crops", default="1.0",
                        help="comma-separated: a centre-crop scale (0.7), or 5xSCALE: the whole photo and five "
                             "crops (centre, corners) at SCALE, their embeddings averaged")
    parser.add_argument("--strengths", default=",".join(str(c) for c in HEAD.cross_source_regularisation),
                        help="L2 strengths (C) to choose from across sources; one value: fixed")
    parser.add_argument("--ensembles", default="",
                        help="comma-separated ensembles of --backbones, members joined by +: mean held-out P(mpox)")
    parser.add_argument("--features", default="pooled",
                        help="comma-separated: pooled (the served embedding), levels (pooled activations at "
                             "strides 8, 16 and 32, concatenated)")
    parser.add_argument("--embedding-norm", default="none",
                        help="comma-separated: none, rms (the pooled embedding at unit root mean square)")
    parser.add_argument("--balance", default="classes",
                        help="comma-separated: classes (the study's class weights), sources (each class and, "
                             "within it, each source weighs the same), sources-first (mpox half, each source alike "
                             "within it; the other half shared by the sources alike, then by their conditions)")
    parser.add_argument("--labels", default="screening",
                        help="comma-separated: screening (mpox or not), conditions (each source's own classes, "
                             "mpox merged; the head learns them and P(mpox) is scored)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    import_tensorflow()  # first, so that its start-up notes are dropped (model.runtime)
    if len(args.data) < 2:
        parser.error("--data needs two or more sources to hold one out")
    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    for option, allowed in (("features", ("pooled", "levels")), ("embedding_norm", EMBEDDING_NORMS),
                            ("balance", BALANCES), ("labels", LABELS)):
        if unknown := set(getattr(args, option).split(",")) - set(allowed):
            parser.error(f"--{option.replace('_', '-')}: unknown {', '.join(sorted(unknown))}; choose from {', '.join(allowed)}")
    ensembles = parse_ensembles(args.ensembles)
    if unknown := {m for e in ensembles for m in e} - set(names):
        parser.error(f"--ensembles names backbones not in --backbones: {', '.join(sorted(unknown))}")
    dataset = load_sources(args.data)
    is_mpox = np.array([is_mpox_class(r.label) for r in dataset.records])
    sources = np.array([r.source for r in dataset.records])
    conditions = np.array([r.source_label for r in dataset.records])
    size = (args.input_size, args.input_size)
    photos = np.stack([prepare_pixels(read_image(r.path), size) for r in dataset.records])
    strengths = tuple(float(c) for c in args.strengths.split(","))
    lookalikes = [n for n in dataset.sources if not is_mpox[sources == n].any()]
    lines = [f"Held out: AUC, mpox caught at specificity >= 0.80 ({', '.join(n for n in dataset.sources if n not in lookalikes)})"
             + (f"; called mpox at the threshold catching 90 % of held-out mpox ({', '.join(lookalikes)})" if lookalikes else ""),
             "", "| backbone, embedding norm, colour, crop, features, balance, labels: strengths chosen | " + " | ".join(dataset.sources) + " |",
             "|---" * (len(dataset.sources) + 1) + "|"]
    print("\n".join(lines), flush=True)
    head = dataclasses.replace(HEAD, cross_source_regularisation=strengths)
    groups = connected_groups(len(dataset.records), [], patient_links([r.patient for r in dataset.records]))
    held_out: dict[tuple[str, ...], np.ndarray] = {}
    for name, norm in itertools.product(names, args.embedding_norm.split(",")):
        spec = dataclasses.replace(get_backbone(name), input_size=args.input_size, embedding_norm=norm)
        classifier = build_classifier(spec, 2, weights=resolve_weights(spec, args.weights, args.weights_dir))
        for colour, crop, features in itertools.product(args.colour.split(","), args.crops.split(","),
                                                        args.features.split(",")):
            extractor = probe_extractor(classifier, args.input_size, features)
            views = crop_views(colour_constancy(photos, COLOUR_POWERS[colour]), crop)
            plain = np.mean([embed(extractor, view, spec) for view in views], axis=0)
            mirrored = np.mean([embed(extractor, mirror_images(view), spec) for view in views], axis=0)
            embeddings = Embeddings(plain, np.zeros((len(plain), 0, plain.shape[1]), plain.dtype), mirrored)
            for balance, labels in itertools.product(args.balance.split(","), args.labels.split(",")):
                probabilities, chosen = held_out_probabilities(
                    embeddings, is_mpox, sources, groups, dataclasses.replace(head, balance=balance),
                    conditions if labels == "conditions" else None)
                held_out[name, norm, colour, crop, features, balance, labels] = probabilities
                label = (f"{name}, {norm}, {colour}, {crop}, {features}, {balance}, {labels}: "
                         f"C {'/'.join(f'{chosen[s]:g}' for s in dataset.sources)}")
                lines.append(probe_row(label, probabilities, is_mpox, sources, dataset.sources))
                print(lines[-1], flush=True)
    for members in ensembles:
        for variant in itertools.product(args.embedding_norm.split(","), args.colour.split(","), args.crops.split(","),
                                         args.features.split(","), args.balance.split(","), args.labels.split(",")):
            probabilities = np.mean([held_out[(m, *variant)] for m in members], axis=0)
            label = f"{ensemble_name(members)} (mean P), {', '.join(variant)}"
            lines.append(probe_row(label, probabilities, is_mpox, sources, dataset.sources))
            print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
