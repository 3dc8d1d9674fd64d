"""Comparing two models (on a test split or a photo) and reading the privacy/accuracy sweep.

:func:`compare_on_split` scores two checkpoints on the same split and lists where they disagree;
:func:`compare_photo` detects a photo's faces once and classifies each face with both models.
For the privacy trade-off page, :func:`sweep_rows` reads ``sweep.csv``, :func:`expected_accuracy`
interpolates it and :func:`plan_budget` turns DP-SGD settings into (epsilon, noise multiplier).
Everything happens in memory; nothing here writes files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_core import LABEL_SETS
from fer_core.data.datasets import FERDataset
from fer_core.data.ferplus import with_label_set
from fer_core.data.images import ImageError, ImageSource, decode_image
from fer_core.evaluation.metrics import classification_report
from fer_core.inference.detect import FaceDetector
from fer_core.inference.overlay import annotate
from fer_core.inference.pipeline import DECODE_MAX_SIDE, detect_and_align, face_fields, rescale_records
from fer_core.models.checkpoint import Checkpoint
from fer_core.models.predict import classify_faces, face_probabilities


def _model_summary(report: dict) -> dict:
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "recall": {c: v["recall"] for c, v in report["per_class"].items()},
        "confusion_matrix": report["confusion_matrix"],
        "classes": report["classes"],
    }


def compare_on_split(
    ckpt_a: Checkpoint,
    ckpt_b: Checkpoint,
    dataset: FERDataset,
    split: str = "PrivateTest",
    max_examples: int = 24,
    batch_size: int = 256,
) -> dict:
    """Score two models on the same split and list where they disagree.

    Each model sees the faces with its own card's preprocessing (mean/std). As in
    :func:`fer_core.evaluation.evaluate.evaluate_split`, only the classes present in the split are evaluated
    and predictions are the argmax over those classes.

    Args:
        ckpt_a, ckpt_b: loaded checkpoints over the same label set (FER2013's 7 classes, or FER+'s 8:
            the dataset is then relabelled with :func:`fer_core.data.ferplus.with_label_set`).
        dataset: from :func:`fer_core.data.datasets.load_dataset`.
        split: the split to compare on.
        max_examples: at most this many disagreements are listed (the most confident ones).
        batch_size: faces per forward pass.

    Returns:
        ``{"split", "n", "a": {...}, "b": {...}, "agreement", "n_disagree", "disagreements"}`` where
        ``a``/``b`` hold ``accuracy`` and ``macro_f1`` (0-1), ``recall`` ({emotion: 0-1}),
        ``confusion_matrix`` (K'xK' counts, rows true) and ``classes`` (the K' evaluated names);
        ``agreement`` is the share of rows (0-1) where the two predicted labels are equal,
        ``n_disagree`` the number of rows where they differ, and ``disagreements`` up to
        ``max_examples`` dicts ``{index, true, label_a, label_b, confidence_a, confidence_b}``
        (``index`` = row within the split, labels are emotion names, confidences 0-1), ordered by
        the mean of the two confidences, highest first (ties: lower index first).

    Raises:
        fer_core.data.datasets.DatasetError: the split does not exist.
        ValueError: the two checkpoints predict different classes, or the split is empty.
    """

    names = list(ckpt_a.classes)
    if list(ckpt_b.classes) != names:
        raise ValueError(f"{ckpt_a.name} predicts {names} but {ckpt_b.name} predicts {list(ckpt_b.classes)}; "
                         "compare two models of the same label set")
    label_set = ckpt_a.card.label_set
    if names != list(LABEL_SETS.get(label_set, ())):
        raise ValueError(f"{ckpt_a.name}: its classes {names} are not those of its label set {label_set!r}")
    dataset = with_label_set(dataset, label_set)
    faces, labels = dataset.split(split)
    if len(labels) == 0:
        raise ValueError(f"split {split!r} has no rows")
    present = sorted(set(labels.tolist()))
    out: dict = {"split": split, "n": int(len(labels))}
    preds, confs = [], []
    for key, ck in (("a", ckpt_a), ("b", ckpt_b)):
        probs = face_probabilities(ck, faces, batch_size)
        out[key] = _model_summary(classification_report(labels, probs, names, classes=present))
        sub = probs[:, present]
        sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
        k = sub.argmax(axis=1)
        preds.append(np.asarray(present)[k])
        confs.append(sub[np.arange(len(k)), k])
    differ = np.flatnonzero(preds[0] != preds[1])
    out["agreement"] = float(1.0 - len(differ) / len(labels))
    out["n_disagree"] = int(len(differ))
    order = differ[np.argsort(-(confs[0][differ] + confs[1][differ]) / 2, kind="stable")][: max(0, max_examples)]
    out["disagreements"] = [
        {"index": int(i), "true": names[int(labels[i])], "label_a": names[int(preds[0][i])],
         "label_b": names[int(preds[1][i])], "confidence_a": float(confs[0][i]),
         "confidence_b": float(confs[1][i])}
        for i in order
    ]
    return out


def example_faces(dataset: FERDataset, split: str, indices: list[int] | np.ndarray, scale: int = 3) -> np.ndarray:
    """Faces of a split by row index, enlarged for display (nearest neighbour, so pixels stay sharp).

    Args:
        dataset: the dataset :func:`compare_on_split` ran on.
        split: its split. indices: rows within the split (e.g. ``[d["index"] for d in disagreements]``).
        scale: integer enlargement factor >= 1.

    Returns:
        ``uint8 (k, 48 * scale, 48 * scale)`` grayscale faces, 0-255.

    Raises:
        fer_core.data.datasets.DatasetError: the split does not exist. IndexError: an index is out of range.
        ValueError: ``scale`` < 1.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    faces, _ = dataset.split(split)
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) == 0:
        return np.zeros((0, 48 * scale, 48 * scale), np.uint8)
    picked = faces[idx]
    return np.ascontiguousarray(picked.repeat(scale, axis=1).repeat(scale, axis=2))


def _pair_records(faces, rec_a: list[dict], rec_b: list[dict]) -> list[dict]:
    out = []
    for i, (f, a, b) in enumerate(zip(faces, rec_a, rec_b, strict=True)):
        r = {"face": i + 1, **face_fields(f)}
        for key, rec in (("a", a), ("b", b)):
            r[f"label_{key}"] = rec["label"]
            r[f"confidence_{key}"] = rec["confidence"]
            r[f"probabilities_{key}"] = rec["probabilities"]
            r[f"negative_{key}"] = rec["negative"]
        r["agree"] = a["label"] == b["label"]
        out.append(r)
    return out


def _compare_rgb(rgb: np.ndarray, ckpt_a: Checkpoint, ckpt_b: Checkpoint, detector: FaceDetector,
                 max_faces: int) -> list[dict]:
    faces, crops = detect_and_align(rgb, detector, max_faces)
    if not faces:
        return []
    return _pair_records(faces, classify_faces(ckpt_a, crops), classify_faces(ckpt_b, crops))


def compare_photo(image: ImageSource | np.ndarray, ckpt_a: Checkpoint, ckpt_b: Checkpoint,
                  detector: FaceDetector, max_faces: int = 100, name: str | None = None) -> list[dict]:
    """Every face in a photo classified by two models (faces are detected and aligned once).

    Args:
        image: path, bytes, file object, PIL image or ``uint8 (H, W, 3)`` RGB array.
        ckpt_a, ckpt_b: the two emotion models.
        detector: a :class:`fer_core.inference.detect.FaceDetector`.
        max_faces: at most this many faces (the largest).
        name: how error messages name the image (default: the path or the file object's name).

    Returns:
        One dict per face, largest first: ``face`` (1-based), ``box`` ([x, y, w, h] in the original
        image's pixels), ``score``, ``landmarks``, and for ``k`` in ``a``/``b``: ``label_k`` (str),
        ``confidence_k`` (0-1), ``probabilities_k`` ({emotion: probability}), ``negative_k`` (bool);
        ``agree`` (bool: same label). Empty when no face is found.

    Raises:
        fer_core.data.images.ImageError: the image cannot be decoded or is too large.
    """
    rgb, scale = decode_image(image, max_side=DECODE_MAX_SIDE, name=name)
    return rescale_records(_compare_rgb(rgb, ckpt_a, ckpt_b, detector, max_faces), 1.0 / scale)


@dataclass
class PhotoComparison:
    """What the Compare page shows for one photo.

    Attributes:
        records: :func:`compare_photo`'s records (original-image pixels); empty if no face or on error.
        annotated_a, annotated_b: ``uint8 (H, W, 3)`` RGB images with model A's / B's labels drawn,
            or None on error.
        error: a one-line message when the image could not be read, else None.
    """

    records: list[dict] = field(default_factory=list)
    annotated_a: np.ndarray | None = None
    annotated_b: np.ndarray | None = None
    error: str | None = None


def compare_photo_annotated(data: ImageSource, ckpt_a: Checkpoint, ckpt_b: Checkpoint,
                            detector: FaceDetector, name: str | None = None) -> PhotoComparison:
    """:func:`compare_photo` plus both annotated images, in memory; never raises on a bad image.

    Args:
        name: the file's name, for messages (default: the path or the file object's name).

    Returns:
        :class:`PhotoComparison`; ``error`` names the file and says what was wrong with an unreadable image.
    """
    try:
        rgb, scale = decode_image(data, max_side=DECODE_MAX_SIDE, name=name)
    except ImageError as exc:
        return PhotoComparison(error=str(exc).replace("<", "").replace(">", ""))
    records = _compare_rgb(rgb, ckpt_a, ckpt_b, detector, max_faces=100)
    images = []
    for key in ("a", "b"):
        drawn = [{"box": r["box"], "label": r[f"label_{key}"], "confidence": r[f"confidence_{key}"],
                  "negative": r[f"negative_{key}"]} for r in records]
        images.append(annotate(rgb, drawn))  # drawn at the decoded size
    return PhotoComparison(records=rescale_records(records, 1.0 / scale), annotated_a=images[0],
                           annotated_b=images[1])


def photo_table(records: list[dict], name_a: str = "A", name_b: str = "B") -> list[dict]:
    """Flat rows (one per face) of :func:`compare_photo` records for a table: ``face``, each model's
    label and confidence (0-1, rounded to 3 places) under column names prefixed by ``name_a``/``name_b``,
    and ``agree``."""
    return [
        {"face": r["face"], f"{name_a} label": r["label_a"], f"{name_a} confidence": round(r["confidence_a"], 3),
         f"{name_b} label": r["label_b"], f"{name_b} confidence": round(r["confidence_b"], 3), "agree": r["agree"]}
        for r in records
    ]


# --- the privacy/accuracy sweep ---------------------------------------------------------------------------------










