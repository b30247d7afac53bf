"""Small ensembles: several backbones' heads, their probabilities averaged, judged fold by fold.

An ensemble is measured from its members' fold rows, on the same folds, with nothing trained again:
each fold's test probabilities are the mean of its members' (the served models' where every member
has them), and its threshold is the bundle's rule applied to the mean of the members' inner
predictions of that fold's training photos, exactly as a single backbone's threshold is chosen on
its own. So an ensemble's leave-one-source-out figures are as honest as its members': nothing was
chosen on the held-out source. A bundle serves one model, so ensembles are measured, not exported.
"""

from __future__ import annotations

import numpy as np

from training.evaluate import fold_metrics, operating_threshold


def ensemble_name(members: tuple[str, ...]) -> str:
    return " + ".join(members)


def parse_ensembles(text: str) -> tuple[tuple[str, ...], ...]:
    """`--ensembles` of training.cv and training.probe: "a+b,a+b+c" -> (("a", "b"), ("a", "b", "c"))."""
    return tuple(tuple(m.strip() for m in e.split("+")) for e in text.split(",") if e.strip())


def ensemble_rows(member_rows: list[list[dict]], labels: np.ndarray, class_names: tuple[str, ...],
                  positive_class: str, rule: str, target: float, key: str = "probabilities") -> list[dict]:
    """One row per fold: the members' `key` probabilities averaged, the fold's threshold chosen by
    `rule` on their averaged inner P(mpox), and the fold's metrics (as `crossval.run_fold` gives)."""
    positive = class_names.index(positive_class)
    rows = []
    for fold, folds in enumerate(zip(*member_rows, strict=True)):
        test = np.array(folds[0]["test_index"], int)
        if any(row["test_index"] != folds[0]["test_index"] for row in folds):
            raise ValueError(f"the ensemble's members were not scored on the same folds (fold {fold})")
        if any("inner_positive_probabilities" not in row for row in folds):
            raise ValueError("a member's folds come from before ensembles were measured: rerun them "
                             "(delete that backbone's folds/ and leave_source_out/ folders in the run folder)")
        # Training photos are the others, in order: the order of the head's inner predictions.
        train = np.setdiff1d(np.arange(len(labels)), test)
        inner = np.mean([row["inner_positive_probabilities"] for row in folds], axis=0)
        threshold = operating_threshold(rule, labels[train] == positive, inner, target)
        probabilities = np.mean([row[key] for row in folds], axis=0)
        rows.append({"backbone": ensemble_name(tuple(row["backbone"] for row in folds)), "fold": fold,
                     "test_index": test.tolist(), "probabilities": probabilities.tolist(),
                     "inner_positive_probabilities": inner.tolist(),
                     **fold_metrics(labels[test], probabilities, class_names, positive_class, threshold)})
    return rows


def served_key(member_rows: list[list[dict]]) -> str:
    """The served models' probabilities when every fold of every member has them, else the study's."""
    every = all("served_probabilities" in row for rows in member_rows for row in rows)
    return "served_probabilities" if every else "probabilities"
