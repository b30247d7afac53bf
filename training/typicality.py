"""Fit the typicality check ("is this like the photos I was trained on?") and report it.

Plain arrays in, plain figures out, so any study layout can call it:

    fit = fit_typicality(embeddings, groups, labels, sources=sources)
    fit.spec, fit.model            # into the bundle (training.export.export_bundle(typicality=fit))
    typicality_summary(fit, sets)  # Markdown for the study report

`embeddings` (N, D) are the SERVED model's pooled embeddings of the training photos, averaged over
the classifier's views as the service averages them (`served_view_embeddings`); `groups` the
audit's near-duplicate groups. The threshold comes from real photos only: each photo is scored
out of fold (group-aware folds: a photo is never scored against a copy of itself) and the
threshold is the split-conformal (1 - rate) quantile of those scores, so a new real photo
exchangeable with them is refused with probability at most `target_refusal_rate`. No non-skin
picture is ever used to fit or tune it; they only measure it (`training.nonskin`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from model.typicality import TypicalityMethod, TypicalityModel, TypicalitySpec, unit_rows

TARGET_REFUSAL_RATE = 0.02
# Chosen by `compare_methods` on the demo (docs/STUDY.md, "Typicality check"): uncentred cosine
# k-NN refused every non-skin picture that passed the quality gate, where centring, PCA and
# Mahalanobis let most through; among k = 1, 3, 5, 10 (equal there), k = 10 refused the fewest
# real photos of the three sources the demo never saw.
DEFAULT_METHOD = TypicalityMethod.KNN_COSINE
DEFAULT_NEIGHBOURS = 10
DEFAULT_COMPONENTS = None  # knn: the full embedding (a PCA projection hides what lies off it)
DEFAULT_CENTRE = False
MAHALANOBIS_COMPONENTS = 32  # a Gaussian in 1280 dimensions from ~100 photos needs a projection
DEFAULT_FOLDS = 10


def fit_model(
    embeddings: np.ndarray,
    method: TypicalityMethod | str = DEFAULT_METHOD,
    neighbours: int = DEFAULT_NEIGHBOURS,
    components: int | None = DEFAULT_COMPONENTS,
    seed: int = 0,
    centre: bool = DEFAULT_CENTRE,
) -> TypicalityModel:
    """The check's statistics from the training photos' embeddings (N, D). `centre`: subtract the
    training mean before cosine similarities (always done for mahalanobis and with PCA).

    Uncentred is the default for a reason: pooled ReLU features are all positive, and a picture
    that barely excites the features skin photos excite points, once centred, the same way as a
    training photo with below-average activations; uncentred, it points elsewhere."""
    method = TypicalityMethod(method)
    embeddings = np.asarray(embeddings, np.float32)
    uncentred = not centre and method is TypicalityMethod.KNN_COSINE and not components
    center = np.zeros(embeddings.shape[1], np.float32) if uncentred else embeddings.mean(axis=0)
    projection = None
    if components and components < min(embeddings.shape) - 1:
        projection = PCA(components, random_state=seed).fit(embeddings - center).components_.T.astype(np.float32)
    model = TypicalityModel(method, center, projection, neighbours=neighbours)
    features = model.transform(embeddings)
    if method is TypicalityMethod.KNN_COSINE:
        return TypicalityModel(method, center, projection, reference=unit_rows(features), neighbours=neighbours)
    # The features are centred already (on the training mean), so the Gaussian's mean is 0.
    precision = LedoitWolf(assume_centered=True).fit(features).precision_.astype(np.float32)
    return TypicalityModel(method, center, projection, precision=precision)


def group_folds(groups: np.ndarray, labels: np.ndarray | None, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group-aware folds (stratified by label when labels are given); fewer when groups are few."""
    groups = np.asarray(groups)
    folds = max(2, min(folds, len(np.unique(groups))))
    placeholder = np.zeros(len(groups))
    if labels is None:
        return list(GroupKFold(n_splits=folds).split(placeholder, groups=groups))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        return list(splitter.split(placeholder, labels, groups))


def out_of_fold_scores(
    embeddings: np.ndarray,
    splits: Iterable[tuple[np.ndarray, np.ndarray]],
    method: TypicalityMethod | str = DEFAULT_METHOD,
    neighbours: int = DEFAULT_NEIGHBOURS,
    components: int | None = DEFAULT_COMPONENTS,
    seed: int = 0,
    centre: bool = DEFAULT_CENTRE,
) -> np.ndarray:
    """Each photo's score from statistics fitted on the other folds only."""
    scores = np.full(len(embeddings), np.nan)
    for train, test in splits:
        model = fit_model(embeddings[train], method, neighbours, components, seed, centre)
        scores[test] = model.scores(embeddings[test])
    return scores


def conformal_threshold(scores: np.ndarray, rate: float) -> float:
    """The ceil((n + 1)(1 - rate))-th lowest score: a new photo exchangeable with these scores
    above it with probability at most `rate`. With too few photos to promise that, the highest."""
    ordered = np.sort(np.asarray(scores, float))
    k = math.ceil((len(ordered) + 1) * (1 - rate) - 1e-9)
    return float(ordered[min(k, len(ordered)) - 1])


@dataclass(frozen=True)
class TypicalityFit:
    """What the study hands the bundle and the report."""

    spec: TypicalitySpec
    model: TypicalityModel
    out_of_fold_scores: np.ndarray
    sources: tuple[str, ...] | None = None  # source of each photo, when there are several

    @property
    def out_of_fold_refused(self) -> np.ndarray:
        return self.out_of_fold_scores > self.spec.threshold

    def refused_by_source(self) -> dict[str, tuple[int, int]]:
        """(refused, photos) out of fold for each source (one entry without sources)."""
        every = np.full(len(self.out_of_fold_scores), "the training photos")
        names = np.array(self.sources) if self.sources is not None else every
        return {name: (int(self.out_of_fold_refused[names == name].sum()), int((names == name).sum()))
                for name in dict.fromkeys(names.tolist())}


def fit_typicality(
    embeddings: np.ndarray,
    groups: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    sources: Iterable[str] | None = None,
    method: TypicalityMethod | str = DEFAULT_METHOD,
    neighbours: int = DEFAULT_NEIGHBOURS,
    components: int | None = DEFAULT_COMPONENTS,
    target_refusal_rate: float = TARGET_REFUSAL_RATE,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    centre: bool = DEFAULT_CENTRE,
) -> TypicalityFit:
    """Statistics from every photo, threshold from their out-of-fold scores.

    embeddings (N, D): served embeddings, view-averaged; groups (N,): near-duplicate groups;
    labels (N,): class indices to stratify folds by (optional); sources (N,): data-set name of
    each photo, for per-source figures (optional)."""
    method = TypicalityMethod(method)
    if method is TypicalityMethod.MAHALANOBIS and components is None:
        components = MAHALANOBIS_COMPONENTS
    splits = group_folds(groups, labels, folds, seed)
    scores = out_of_fold_scores(embeddings, splits, method, neighbours, components, seed, centre)
    threshold = conformal_threshold(scores, target_refusal_rate)
    spec = TypicalitySpec(
        method=method, threshold=threshold, target_refusal_rate=target_refusal_rate,
        out_of_fold_refusal_rate=float((scores > threshold).mean()), photos=len(scores), folds=len(splits),
        neighbours=neighbours if method is TypicalityMethod.KNN_COSINE else 0,
    )
    model = fit_model(embeddings, method, neighbours, components, seed, centre)
    return TypicalityFit(spec, model, scores, None if sources is None else tuple(sources))


def leave_source_out_refusals(
    embeddings: np.ndarray, groups: np.ndarray, sources: Iterable[str], labels: np.ndarray | None = None, **options
) -> dict[str, tuple[int, int]]:
    """For each source: (refused, photos) of its photos by a check fitted, threshold included, on
    the other sources only: how the check treats real photos from a source it never saw."""
    sources = np.array(list(sources))
    result = {}
    for name in dict.fromkeys(sources.tolist()):
        kept = sources != name
        fit = fit_typicality(embeddings[kept], groups[kept], None if labels is None else labels[kept], **options)
        refused = fit.model.scores(embeddings[~kept]) > fit.spec.threshold
        result[name] = (int(refused.sum()), int(len(refused)))
    return result


# The alternatives `compare_methods` measures by default: (label, fit_typicality options).
COMPARED_METHODS: tuple[tuple[str, dict], ...] = (
    *((f"knn_cosine k={k}", {"method": "knn_cosine", "neighbours": k}) for k in (1, 3, 5, 10)),
    ("knn_cosine k=10, centred", {"method": "knn_cosine", "neighbours": 10, "centre": True}),
    ("knn_cosine k=10, centred, PCA 32", {"method": "knn_cosine", "neighbours": 10, "components": 32}),
    ("mahalanobis (Ledoit-Wolf), PCA 16", {"method": "mahalanobis", "components": 16}),
    ("mahalanobis (Ledoit-Wolf), PCA 32", {"method": "mahalanobis", "components": 32}),
    ("mahalanobis (Ledoit-Wolf), full", {"method": "mahalanobis", "components": 0}),
)


def compare_methods(
    embeddings: np.ndarray, groups: np.ndarray, labels: np.ndarray | None, others: Mapping[str, np.ndarray],
    methods: Iterable[tuple[str, dict]] = COMPARED_METHODS, seed: int = 0,
) -> list[dict]:
    """For each method: its threshold from the training photos' out-of-fold scores, and the
    (refused, total) of those photos and of each other set of embeddings (name -> (n, D))."""
    rows = []
    for label, options in methods:
        fit = fit_typicality(embeddings, groups, labels, seed=seed, **options)
        row = {"method": label, "threshold": fit.spec.threshold,
               "out of fold": (int(fit.out_of_fold_refused.sum()), len(embeddings))}
        for name, other in others.items():
            refused = fit.model.scores(other) > fit.spec.threshold if len(other) else np.zeros(0, bool)
            row[name] = (int(refused.sum()), int(len(refused)))
        rows.append(row)
    return rows


def served_view_embeddings(classifier, pixels: np.ndarray, normalisation, averaging) -> np.ndarray:
    """(N, D) embeddings of uint8 pixels (N,H,W,3) by a served two-output `model.inference.Classifier`,
    averaged over the classifier's views exactly as the service averages them."""
    from model.preprocess import classifier_views, normalise

    rows = [classifier.predict_views_with_embedding(normalise(classifier_views(p, averaging), normalisation))[1]
            for p in pixels]
    return np.stack(rows).astype(np.float32)


@dataclass(frozen=True)
class ScreenedSet:
    """How a set of pictures fared through the whole screen (gate, check, verdict)."""

    name: str
    pictures: int
    refused_by_gate: int  # refused before the classifier ran (quality gate, or not decodable)
    refused_by_check: int  # refused by the typicality check
    positive: int
    inconclusive: int
    negative: int
    refused_names: tuple[str, ...] = ()
    positive_names: tuple[str, ...] = ()
    non_skin: bool = False  # a set of pictures that are not close photos of skin

    @property
    def refused(self) -> int:
        return self.refused_by_gate + self.refused_by_check

    def line(self) -> str:
        def share(count: int) -> str:
            return f"{count}/{self.pictures} ({count / self.pictures:.1%})" if self.pictures else "0/0"

        return (f"{self.name}: refused {share(self.refused)} (gate {self.refused_by_gate}, check "
                f"{self.refused_by_check}); positive {share(self.positive)}; inconclusive {self.inconclusive}; "
                f"negative {self.negative}")


def screen_set(screener, name: str, pictures: Iterable[tuple[str, bytes]], non_skin: bool = False) -> ScreenedSet:
    """Screen every (name, bytes) with a `model.screening.Screener` (no heatmaps) and count."""
    from model.types import Reason, Verdict

    counts = {"gate": 0, "check": 0, Verdict.POSITIVE: 0, Verdict.INCONCLUSIVE: 0, Verdict.NEGATIVE: 0}
    refused, positive, total = [], [], 0
    for picture, data in pictures:
        total += 1
        result = screener.screen(data, with_heatmap=False)
        if result.is_refusal:
            # The check runs after inference; every earlier refusal has no inference time.
            by_check = result.reason is Reason.NOT_A_CLOSE_SKIN_PHOTO and result.timings.inference_ms > 0
            counts["check" if by_check else "gate"] += 1
            refused.append(picture)
            continue
        counts[result.verdict] += 1
        if result.verdict is Verdict.POSITIVE:
            positive.append(picture)
    return ScreenedSet(name, total, counts["gate"], counts["check"], counts[Verdict.POSITIVE],
                       counts[Verdict.INCONCLUSIVE], counts[Verdict.NEGATIVE], tuple(refused), tuple(positive),
                       non_skin)


def typicality_summary(fit: TypicalityFit, screened: Mapping[str, ScreenedSet] | Iterable[ScreenedSet] = (),
                       leave_source_out: Mapping[str, tuple[int, int]] | None = None, heading: bool = True) -> str:
    """The study report's section on the check (the model card's without `heading`): method,
    threshold, and what it refused with the counts behind each figure."""
    spec = fit.spec
    method = spec.method.value + (f", k = {spec.neighbours}" if spec.neighbours else "")
    lines = ["## Typicality check (is this like the training photos?)", ""] if heading else []
    lines += [
        f"- Method: {method}, on the served model's pooled embedding (mean over its views). Threshold "
        f"{spec.threshold:.4f}: the split-conformal quantile of {spec.photos} real photos' out-of-fold scores "
        f"({spec.folds} group-aware folds) for at most {spec.target_refusal_rate:.0%} of real photos refused; "
        "chosen on real photos only, never on the non-skin pictures below.",
    ]
    for source, (refused, photos) in fit.refused_by_source().items():
        lines.append(f"- Out of fold, {source}: {refused}/{photos} refused by the check ({refused / photos:.1%}).")
    for source, (refused, photos) in (leave_source_out or {}).items():
        lines.append(f"- Fitted without {source} (threshold included): {refused}/{photos} of its photos refused "
                     f"({refused / photos:.1%}).")
    sets = screened.values() if isinstance(screened, Mapping) else screened
    for result in sets:
        lines.append(f"- Screened as served, {result.line()}.")
        if result.non_skin and result.positive_names:
            lines.append(f"  Positive: {', '.join(result.positive_names)}.")
    return "\n".join(lines) + "\n"


def fit_served(tflite: bytes, pixels: np.ndarray, normalisation, averaging, groups: np.ndarray,
               labels: np.ndarray | None = None, **options) -> TypicalityFit:
    """`fit_typicality` on the embeddings that the served flatbuffer `tflite` (with its embedding
    output, `training.export.with_embedding_output`) computes for the training photos' uint8
    pixels (N,H,W,3): the statistics then describe exactly what the service will score."""
    from model.inference import Classifier

    served = Classifier(model_content=tflite, num_threads=1)
    if served.embedding_size is None:
        raise ValueError("the served model has no embedding output to fit the typicality check on")
    embeddings = served_view_embeddings(served, pixels, normalisation, averaging)
    return fit_typicality(embeddings, groups, labels, **options)


def photo_files(folder) -> list:
    """The photo files of a study data set folder (either layout), in data-set order."""
    from training.data import load_dataset

    return [record.path for record in load_dataset(folder).records]


def evaluate_bundle(bundle_path, real_sets: Mapping[str, Iterable] | None = None) -> list[ScreenedSet]:
    """Screen real photo sets (name -> photo paths) and every non-skin set with a bundle, as served."""
    from model.screening import load_screener
    from training.nonskin import evaluation_sets

    screener = load_screener(bundle_path, heatmap_method=None)
    results = [screen_set(screener, name, ((p.name, p.read_bytes()) for p in paths))
               for name, paths in (real_sets or {}).items()]
    results += [screen_set(screener, name, ((pic.name, pic.data) for pic in pictures), non_skin=True)
                for name, pictures in evaluation_sets().items()]
    return results
