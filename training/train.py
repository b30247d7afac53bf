"""Train the classification head on cached frozen features, and optionally fine-tune the top.

The frozen phase is a multinomial logistic regression (a softmax layer) on the pooled backbone
embedding, with class weights, trained on each training photo plus its augmented copies. Its
regularisation strength is chosen on inner out-of-fold predictions of the training photos only,
and the same predictions give the fold's decision threshold. With photos from several sources
the inner folds hold one source out at a time (`HeadConfig.selection = "sources"`): a user's
photo comes from a source the model never saw, so the strength and the threshold are judged on
sources held out, not on photos like the training ones. With one source they are group-aware
k folds. A photo's probabilities are the mean over its test-time views (the photo and its
mirror image, as served: `model.preprocess.classifier_views`), in the inner predictions as in
the scored ones. The fitted weights are exactly a Keras `Dense(softmax)` layer, so they drop
into the flat model's `predictions` layer for export, heatmaps and optional fine-tuning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from training.features import Embeddings

BALANCES = ("classes", "sources", "sources-first")  # HeadConfig.balance: see balance_weights
MISSING_CLASS_BIAS = -30.0  # a class absent from the training photos gets ~0 probability


@dataclass(frozen=True)
class HeadConfig:
    regularisation: tuple[float, ...] = (0.3, 3.0, 30.0)  # inverse L2 strengths (C) to try in one source
    # Across sources much stronger priors win: in-source folds chose C 0.3 on four sources, held-out
    # sources C 0.0003-0.003, and held out the model ranked better (docs/STUDY.md, frozen v1 1.0).
    cross_source_regularisation: tuple[float, ...] = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 3.0)
    selection: str = "groups"  # inner folds: "groups" (k group-aware folds) or "sources" (one held out at a time)
    inner_folds: int = 4
    class_weight: str | None = "balanced"
    max_iter: int = 3000
    view_averaging: str = "mirror"  # views averaged per photo: "mirror" or "none"
    # "classes": each class weighs the same; "sources": each class weighs the same and, within
    # a class, each source does (a 978-photo atlas no longer outweighs a 105-photo source).
    balance: str = "classes"


@dataclass(frozen=True)
class FittedHead:
    model: LogisticRegression
    regularisation: float
    inner_probabilities: np.ndarray  # inner out-of-fold probabilities of the training photos
    inner_log_loss: float


def training_rows(embeddings: Embeddings, labels: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the photos at `index` plus all their augmented copies."""
    copies = embeddings.augmented.shape[1]
    features = [embeddings.plain[index], embeddings.augmented[index].reshape(-1, embeddings.plain.shape[1])]
    return np.concatenate(features), np.concatenate([labels[index], np.repeat(labels[index], copies)])


def balance_weights(labels: np.ndarray, sources: np.ndarray | None, index: np.ndarray, copies: int,
                    balance: str, positive: int | None = None) -> np.ndarray | None:
    """Sample weights of the training rows of the photos at `index` (as `training_rows` orders
    them), or None to let the class weights of `HeadConfig.class_weight` balance the classes.

    With balance "sources", each class weighs the same (or, with `positive` given, that class
    half and the other classes sharing the other half: the screening question balanced while
    the head learns finer conditions), and within each class each source weighs the same.

    With "sources-first" and `positive` given, the positive class weighs half, each source the
    same within it, and the other half is shared by the sources alike, then by each source's own
    conditions: a source of fifteen conditions (an atlas) then weighs as much as a source of one,
    where with "sources" it would take fifteen shares of the rest."""
    if balance == "classes" or sources is None:
        return None
    if balance not in BALANCES:
        raise ValueError(f"unknown balance {balance!r}: {' or '.join(BALANCES)}")
    here, where = labels[index], sources[index]
    present = np.unique(here)
    if balance == "sources-first" and positive is not None and positive in present and len(present) > 2:
        share = _sources_first_shares(here, where, positive)
    else:
        share = _class_then_source_shares(here, where, positive)
    cells = np.char.add(here.astype(str), np.char.add("/", where.astype(str)))
    _, cell_of, cell_count = np.unique(cells, return_inverse=True, return_counts=True)
    per_photo = np.array([share[label, source] for label, source in zip(here, where, strict=True)])
    per_photo = per_photo / cell_count[cell_of]
    per_photo *= len(index) / per_photo.sum()
    return np.concatenate([per_photo, np.repeat(per_photo, copies)])


def _class_then_source_shares(labels: np.ndarray, sources: np.ndarray, positive) -> dict[tuple, float]:
    """(label, source) -> its share of the total weight under balance "sources"."""
    present = np.unique(labels)
    share = {label: 1.0 / len(present) for label in present}
    if positive is not None and positive in share and len(present) > 2:
        share = {label: 0.5 if label == positive else 0.5 / (len(present) - 1) for label in present}
    shares = {}
    for label in present:
        in_class = np.unique(sources[labels == label])
        for source in in_class:
            shares[label, source] = share[label] / len(in_class)
    return shares


def _sources_first_shares(labels: np.ndarray, sources: np.ndarray, positive) -> dict[tuple, float]:
    """(label, source) -> its share of the total weight under balance "sources-first"."""
    shares = {}
    with_positive = np.unique(sources[labels == positive])
    for source in with_positive:
        shares[positive, source] = 0.5 / len(with_positive)
    rest = labels != positive
    with_rest = np.unique(sources[rest])
    for source in with_rest:
        own = np.unique(labels[rest & (sources == source)])
        for label in own:
            shares[label, source] = 0.5 / len(with_rest) / len(own)
    return shares


def probabilities(model: LogisticRegression, features: np.ndarray, num_classes: int) -> np.ndarray:
    """predict_proba with one column per class, including classes the model never saw."""
    out = np.zeros((len(features), num_classes))
    out[:, model.classes_] = model.predict_proba(features)
    return out


def view_probabilities(
    model: LogisticRegression, embeddings: Embeddings, index: np.ndarray, num_classes: int, averaging: str
) -> np.ndarray:
    """Probabilities of the photos at `index`, averaged over their test-time views."""
    views = embeddings.views(index, averaging)
    return np.mean([probabilities(model, view, num_classes) for view in views], axis=0)


def fit_logistic(features: np.ndarray, labels: np.ndarray, strength: float, config: HeadConfig, seed: int,
                 sample_weight: np.ndarray | None = None) -> LogisticRegression:
    """One logistic-regression head with L2 strength `strength` (C) and the config's class
    weights, or, when given, `sample_weight` (`balance_weights`) instead."""
    model = LogisticRegression(
        C=strength, class_weight=config.class_weight if sample_weight is None else None,
        max_iter=config.max_iter, random_state=seed,
    )
    # One BLAS thread: these matrices are small, and threads fighting over 2 busy cores made
    # each fit ~15x slower.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(features, labels, sample_weight=sample_weight)


def group_splits(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, group-aware folds (indices into `labels`); fewer folds when groups are few."""
    folds = max(2, min(folds, len(np.unique(groups))))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        return list(splitter.split(np.zeros(len(labels)), labels, groups))


def selects_by_source(config: HeadConfig, labels: np.ndarray, sources: np.ndarray | None, index: np.ndarray) -> bool:
    """Whether the inner folds of the photos at `index` hold one source out at a time: when they
    span several sources and every source left out leaves both classes to train on."""
    if config.selection != "sources" or sources is None or len(np.unique(sources[index])) < 2:
        return False
    return all(len(np.unique(labels[index][sources[index] != name])) > 1 for name in np.unique(sources[index]))


def inner_splits(
    labels: np.ndarray, groups: np.ndarray, sources: np.ndarray | None, index: np.ndarray, config: HeadConfig, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The inner folds of the photos at `index` (positions into `index`): one per source when
    selecting by source and they span several, else group-aware k folds."""
    if selects_by_source(config, labels, sources, index):
        return list(LeaveOneGroupOut().split(np.zeros(len(index)), labels[index], sources[index]))
    return group_splits(labels[index], groups[index], config.inner_folds, seed)


def inner_predictions(
    embeddings: Embeddings,
    labels: np.ndarray,
    groups: np.ndarray,
    index: np.ndarray,
    strength: float,
    config: HeadConfig,
    seed: int,
    sources: np.ndarray | None = None,
    positive: int | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities for the photos at `index`, from folds inside `index` only."""
    num_classes = int(labels.max()) + 1
    result = np.zeros((len(index), num_classes))
    for inner_train, inner_test in inner_splits(labels, groups, sources, index, config, seed):
        features, targets = training_rows(embeddings, labels, index[inner_train])
        weights = balance_weights(labels, sources, index[inner_train], embeddings.augmented.shape[1], config.balance,
                                  positive)
        model = fit_logistic(features, targets, strength, config, seed, weights)
        result[inner_test] = view_probabilities(
            model, embeddings, index[inner_test], num_classes, config.view_averaging)
    return result


def fit_head(
    embeddings: Embeddings,
    labels: np.ndarray,
    groups: np.ndarray,
    index: np.ndarray,
    num_classes: int,
    config: HeadConfig,
    seed: int = 0,
    sources: np.ndarray | None = None,
    positive: int | None = None,
) -> FittedHead:
    """Choose C on inner folds of the photos at `index`, then fit on all of them (+ augmented).

    `sources` (each photo's data set) lets `config.selection = "sources"` hold one out at a time.
    `positive` (the mpox class of a head that learns finer conditions) makes the choice, across
    sources, judge the screening question: a held-out source's own conditions are classes the
    inner head never saw, and only P(mpox) is served."""
    by_source = selects_by_source(config, labels, sources, index)
    strengths = config.cross_source_regularisation if by_source else config.regularisation
    screening = by_source and positive is not None and num_classes > 2
    scored = (labels == positive).astype(int) if screening else labels
    # Held-out sources differ in their class mix (a look-alike atlas has no mpox at all), so
    # across sources the loss weighs the classes (and with balance "sources", the sources) as the fit does.
    weights = None
    if by_source:
        weights = (balance_weights(scored, sources, index, 0, config.balance) if config.balance == "sources"
                   else compute_sample_weight("balanced", scored[index]))
    best = None
    for strength in strengths:
        inner = inner_predictions(embeddings, labels, groups, index, strength, config, seed, sources, positive)
        if screening:
            loss = log_loss(scored[index], np.clip(inner[:, positive], 1e-7, 1 - 1e-7), labels=[0, 1],
                            sample_weight=weights)
        else:
            clipped = np.clip(inner, 1e-7, 1)
            loss = log_loss(labels[index], clipped / clipped.sum(1, keepdims=True), labels=list(range(num_classes)),
                            sample_weight=weights)
        if best is None or loss < best[0]:
            best = (loss, strength, inner)
    loss, strength, inner = best
    features, targets = training_rows(embeddings, labels, index)
    model = fit_logistic(features, targets, strength, config, seed,
                         balance_weights(labels, sources, index, embeddings.augmented.shape[1], config.balance,
                                         positive))
    return FittedHead(model, strength, inner, float(loss))


def head_weights(model: LogisticRegression, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel D x classes, bias) of the Dense softmax layer equal to `model`."""
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2 and coef.shape[0] == 1:  # sklearn's binary form: sigmoid(w.x + b)
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    kernel = np.zeros((coef.shape[1], num_classes), np.float32)
    bias = np.full(num_classes, MISSING_CLASS_BIAS, np.float32)
    kernel[:, model.classes_] = coef.T
    bias[model.classes_] = intercept
    return kernel, bias


def install_head(classifier, model: LogisticRegression, num_classes: int) -> None:
    """Put the fitted head into the flat Keras classifier's `predictions` layer."""
    classifier.get_layer("predictions").set_weights(list(head_weights(model, num_classes)))


def fine_tune(
    classifier,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    layers: int,
    epochs: int,
    class_weight: dict[int, float] | None = None,
    learning_rate: float = 1e-4,
    sample_weight: np.ndarray | None = None,
) -> dict:
    """Fine-tune the last `layers` backbone layers (BatchNorm stays frozen) and the head.

    `train` and `validation` are (normalised pixels, labels); training stops early when the
    validation loss stops improving, and the best weights are restored. `sample_weight` (one per
    training row) replaces `class_weight` where the head was fitted with sample weights.
    """
    import keras

    trainable = [layer for layer in classifier.layers if layer.weights]
    backbone = [layer for layer in trainable if layer.name not in ("predictions",)]
    for layer in classifier.layers:
        layer.trainable = False
    for layer in backbone[-layers:] + [classifier.get_layer("predictions")]:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    history = classifier.fit(
        train[0], train[1], validation_data=validation, epochs=epochs, batch_size=16,
        class_weight=class_weight, sample_weight=sample_weight, callbacks=[stop], verbose=0,
    )
    return {"epochs_run": len(history.history["loss"]), "best_val_loss": float(min(history.history["val_loss"]))}


def balanced_class_weight(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * c)) for i, c in enumerate(counts) if c > 0}


def baseline_accuracies(features: np.ndarray, labels: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Per-fold accuracy of the reference: sklearn's default LogisticRegression on the frozen
    embedding of each photo, `features` (no augmentation, no class weights, no model selection,
    no test-time views)."""
    accuracies = []
    for train, test in splits:
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(max_iter=3000).fit(features[train], labels[train])
        accuracies.append(float((model.predict(features[test]) == labels[test]).mean()))
    return accuracies
