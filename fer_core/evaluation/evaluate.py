"""Evaluating a model on a dataset split, following FER2013's protocol.

Train on ``Training``, choose on ``PublicTest``, report ``PrivateTest`` once. Besides the official
figure, :func:`evaluate_split` reports accuracy on the deduplicated test set (test rows whose image
also occurs in ``Training`` removed) and, beside the plain figure, test-time flip averaging.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fer_core import EMOTIONS
from fer_core.data.datasets import DatasetError, FERDataset
from fer_core.data.ferplus import relabel_by_name, with_label_set
from fer_core.data.preprocess import MEAN, STD
from fer_core.evaluation.metrics import classification_report
from fer_core.models.predict import predict_proba


def evaluate_split(
    model: torch.nn.Module,
    dataset: FERDataset,
    split: str,
    class_names: list[str] | tuple[str, ...] = EMOTIONS,
    mean: float = MEAN,
    std: float = STD,
    dedup: bool = True,
    flip_tta: bool = True,
    batch_size: int = 256,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict:
    """Full metrics of ``model`` on one split of ``dataset``.

    Only the classes present in the split are evaluated (a generic ``.npz`` may hold a subset).

    Returns:
        :func:`fer_core.evaluation.metrics.classification_report`'s dict, plus ``split``, and where asked
        ``accuracy_dedup``/``n_dedup`` (rows whose image is not in ``Training``; only when the
        dataset has a ``Training`` split and ``split`` is another one) and ``accuracy_flip_tta``.

    ``predict`` (``uint8 (N, 48, 48)`` faces -> ``float32 (N, K)`` probabilities) replaces
    :func:`~fer_core.models.predict.predict_proba` of ``model``, e.g. a head over cached frozen features
    (:func:`fer_core.training.validation.evaluate_chosen`); it must compute the same function.

    Raises:
        fer_core.data.datasets.DatasetError: the split does not exist.
    """
    faces, labels = dataset.split(split)
    if predict is None:
        def predict(f: np.ndarray) -> np.ndarray:
            return predict_proba(model, f, batch_size, mean, std)
    probs = predict(faces)
    present = sorted(set(labels.tolist()))
    report = classification_report(labels, probs, class_names, classes=present)
    report = {"split": split, **report}
    if dedup and split != "Training" and "Training" in dataset.splits:
        keep = dataset.dedup_mask(split)
        sub = classification_report(labels[keep], probs[keep], class_names, classes=present)
        report["accuracy_dedup"] = sub["accuracy"]
        report["macro_f1_dedup"] = sub["macro_f1"]
        report["n_dedup"] = int(keep.sum())
    if flip_tta:  # the mirrored faces only; the plain probabilities are already there
        mirrored = predict(np.ascontiguousarray(faces[:, :, ::-1]))
        tta = classification_report(labels, 0.5 * (probs + mirrored), class_names, classes=present)
        report["accuracy_flip_tta"] = tta["accuracy"]
        report["macro_f1_flip_tta"] = tta["macro_f1"]
    return report


def dataset_for_model(ds: FERDataset, label_set: str) -> tuple[FERDataset, str | None]:
    """``ds`` labelled for a model of ``label_set``, and a note when its labels were matched by class name.

    The model's own annotations are used where the file has them (:func:`~fer_core.data.ferplus.with_label_set`,
    e.g. FER+ votes); a file without them (a generic file labelled with FER2013 ids, scored by an 8-class FER+
    model) is scored on its own labels matched to the model's classes by name
    (:func:`~fer_core.data.ferplus.relabel_by_name`; contempt is then simply absent).

    Raises:
        fer_core.data.datasets.DatasetError: neither works (a label the model's classes do not name).
    """
    try:
        return with_label_set(ds, label_set), None
    except DatasetError:
        relabelled = relabel_by_name(ds, label_set)
    return relabelled, (f"{ds.source} has no {label_set} annotations: its {ds.label_set} labels are scored against "
                        "the model's classes by name")
