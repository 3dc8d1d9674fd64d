"""Classification metrics for emotion models: accuracy, macro-F1, per-class P/R/F1, confusion
matrix, the negative-vs-other binary view and calibration (ECE).

All functions take ``y_true`` as ``int (N,)`` class ids and ``probs`` as ``float (N, K)`` rows that
sum to 1 (softmax outputs), numpy arrays. Nothing here depends on torch.

Sources: ECE with equal-width confidence bins, Guo et al. 2017, "On Calibration of Modern Neural
Networks"; macro-F1 is the unweighted mean of per-class F1 over the classes evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fer_core import EMOTIONS, NEGATIVE_EMOTIONS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``int64 (K, K)`` counts: row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return precision, recall, f1


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): sum over equal-width confidence bins of ``|accuracy - confidence| * share``.

    Returns a float in [0, 1].
    """
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += abs(correct[m].mean() - conf[m].mean()) * m.mean()
    return float(ece)


def classification_report(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str] = EMOTIONS,
    classes: Sequence[int] | None = None,
    negative: frozenset[str] = NEGATIVE_EMOTIONS,
) -> dict:
    """All metrics of one evaluation, as a JSON-ready dict.

    Args:
        y_true: ``int (N,)`` true class ids in ``0..K-1``.
        probs: ``float (N, K)`` predicted probabilities.
        class_names: ``K`` names (default FER2013's seven).
        classes: the class ids to evaluate on (default all ``K``). With a subset, predictions are
            restricted to those classes (argmax over their columns), as for a dataset that only has
            some of the emotions.
        negative: class names counted as negative for the binary view.

    Returns:
        ``{"n", "accuracy", "macro_f1", "per_class": {name: {precision, recall, f1, support}},
        "confusion_matrix": K'xK' list (rows true, columns predicted, over ``classes``), "classes",
        "negative_vs_other": {accuracy, precision, recall, f1, auc, support_negative}, "ece"}``.

    Raises:
        ValueError: shapes disagree or there are no rows.
    """
    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[0] != y_true.shape[0]:
        raise ValueError(f"probs {probs.shape} and y_true {y_true.shape} disagree")
    if len(y_true) == 0:
        raise ValueError("no rows to evaluate")
    k = probs.shape[1]
    cls = list(range(k)) if classes is None else sorted(int(c) for c in classes)
    sub = probs[:, cls]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    y_pred = np.asarray(cls)[sub.argmax(axis=1)]
    index = {c: i for i, c in enumerate(cls)}
    if not np.isin(y_true, cls).all():
        raise ValueError("y_true holds classes outside the evaluated set")
    cm = confusion_matrix([index[c] for c in y_true], [index[c] for c in y_pred], len(cls))
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    precision, recall, f1 = _prf(tp, fp, fn)
    per_class = {
        class_names[c]: {
            "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "support": int(cm[i].sum()),
        }
        for i, c in enumerate(cls)
    }
    present = cm.sum(axis=1) > 0
    neg_ids = [c for c in cls if class_names[c] in negative]
    neg_true = np.isin(y_true, neg_ids)
    neg_score = sub[:, [index[c] for c in neg_ids]].sum(axis=1) if neg_ids else np.zeros(len(y_true))
    neg_pred = np.isin(y_pred, neg_ids)
    btp = float((neg_true & neg_pred).sum())
    bp, br, bf = _prf(np.array([btp]), np.array([float((~neg_true & neg_pred).sum())]),
                      np.array([float((neg_true & ~neg_pred).sum())]))
    sub_true = sub[np.arange(len(y_true)), [index[c] for c in y_true]]
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "classes": [class_names[c] for c in cls],
        "confusion_matrix": cm.tolist(),
        "negative_vs_other": {
            "accuracy": float((neg_true == neg_pred).mean()),
            "precision": float(bp[0]), "recall": float(br[0]), "f1": float(bf[0]),
            "auc": roc_auc(neg_true, neg_score),
            "support_negative": int(neg_true.sum()),
        },
        "ece": expected_calibration_error(np.array([index[c] for c in y_true]), sub),
        "nll": float(-np.log(np.clip(sub_true, 1e-12, None)).mean()),
    }


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tie correction); None if one class is absent."""
    labels = np.asarray(labels, bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return None

    r = pd.Series(np.asarray(scores, np.float64)).rank(method="average").to_numpy()  # ties share ranks
    return float((r[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))
