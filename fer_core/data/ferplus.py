"""FER+ labels: FER2013's images relabelled by 10 crowd annotators each, 8 emotions incl. contempt.

Source: Barsoum, Zhang, Ferrer, Zhang 2016, "Training deep networks for facial expression
recognition with crowd-sourced label distribution" (ICMI), and the votes of
``microsoft/FERPlus`` ``fer2013new.csv`` (MIT), stored row-aligned in ``fer2013.npz`` as
``ferplus_votes`` (columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
unknown, NF = not a face).

Protocol (``shared/data/README.md``): keep rows whose votes belong to the image
(``match_status <= 1``), drop rows whose plurality vote is ``unknown`` or ``NF``; the label is the
plurality of the 8 emotion columns (:func:`ferplus_labels`), or train on the normalised 8-emotion
vote distribution (Barsoum et al.'s cross-entropy mode). Same splits as FER2013: train on
``Training``, choose on ``PublicTest``, report ``PrivateTest`` (the FER+ test set).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from fer_core import EMOTIONS, FERPLUS_EMOTIONS, LABEL_SETS
from fer_core.data.datasets import DatasetError, FERDataset

#: The 10 vote columns of ``ferplus_votes``.
VOTE_COLUMNS: tuple[str, ...] = (*FERPLUS_EMOTIONS, "unknown", "not_a_face")
N_EMOTIONS = len(FERPLUS_EMOTIONS)


@dataclass(frozen=True)
class FerPlusLabels:
    """FER+ labels of every row of a vote table.

    Attributes:
        labels: ``int64 (N,)`` plurality emotion id (index into :data:`fer_core.FERPLUS_EMOTIONS`),
            -1 for dropped rows.
        distribution: ``float32 (N, 8)`` normalised emotion votes (rows sum to 1; zeros for dropped rows).
        keep: ``bool (N,)`` rows that have a FER+ label.
        dropped: how many rows each rule dropped (``match_status``, ``unknown_or_not_a_face``); a row
            is counted under the first rule that drops it.
        ties: kept rows whose top emotion count is shared by two emotions or more (the label is then
            the first of them in column order, as ``numpy.argmax`` picks).
    """

    labels: np.ndarray
    distribution: np.ndarray
    keep: np.ndarray
    dropped: dict
    ties: int


def ferplus_labels(votes: np.ndarray, match_status: np.ndarray | None = None) -> FerPlusLabels:
    """Derive FER+ majority labels and vote distributions from the raw votes.

    Rules, in order: a row is dropped if ``match_status > 1`` (its votes do not belong to the image,
    or it is not a face); then if an ``unknown`` or ``NF`` column has at least as many votes as the
    most-voted emotion (the plurality is unknown / not a face, ties included; a row without votes
    falls here too). Otherwise the label is the most-voted emotion (ties: first in column order).

    Args:
        votes: ``int (N, 10)`` vote counts (usually 10 per row) in :data:`VOTE_COLUMNS` order.
        match_status: optional ``int (N,)``; rows with a value above 1 are dropped.

    Returns:
        :class:`FerPlusLabels`.

    Raises:
        DatasetError: ``votes`` is not ``(N, 10)`` non-negative counts, or ``match_status`` has
            another length.
    """
    v = np.asarray(votes)
    if v.ndim != 2 or v.shape[1] != len(VOTE_COLUMNS) or not np.issubdtype(v.dtype, np.number) or (v < 0).any():
        raise DatasetError(
            f"ferplus_votes has shape {v.shape} and dtype {v.dtype}; expected non-negative counts of shape "
            f"(N, {len(VOTE_COLUMNS)}) in the columns {', '.join(VOTE_COLUMNS)}"
        )
    v = v.astype(np.float64)
    status_ok = np.ones(len(v), bool)
    if match_status is not None:
        status = np.asarray(match_status)
        if status.shape != (len(v),):
            raise DatasetError(f"match_status has shape {status.shape}; expected ({len(v)},)")
        status_ok = status <= 1
    emo, other = v[:, :N_EMOTIONS], v[:, N_EMOTIONS:]
    top = emo.max(axis=1)
    plurality_emotion = other.max(axis=1) < top  # also False for a row without any vote
    keep = status_ok & plurality_emotion
    labels = np.where(keep, emo.argmax(axis=1), -1).astype(np.int64)
    dist = np.zeros_like(emo, dtype=np.float32)
    dist[keep] = (emo[keep] / emo[keep].sum(axis=1, keepdims=True)).astype(np.float32)
    ties = int(((emo == top[:, None]).sum(axis=1) > 1)[keep].sum())
    dropped = {
        "match_status": int((~status_ok).sum()),
        "unknown_or_not_a_face": int((status_ok & ~plurality_emotion).sum()),
    }
    return FerPlusLabels(labels=labels, distribution=dist, keep=keep, dropped=dropped, ties=ties)


def ferplus_dataset(ds: FERDataset) -> FERDataset:
    """The FER+ version of a FER2013 dataset: rows with a FER+ label, 8-class labels, vote distributions.

    Returns:
        A :class:`~fer_core.data.datasets.FERDataset` with ``label_set="ferplus"``, ``labels`` ``int64 (n,)``
        in 0-7 (:data:`fer_core.FERPLUS_EMOTIONS`) and ``soft_labels`` ``float32 (n, 8)``; same
        images, splits, source and sha256 as ``ds`` (rows without a FER+ label are left out).

    Raises:
        DatasetError: ``ds`` has no ``ferplus_votes`` (only ``fer2013.npz``-style files carry them).
    """
    if ds.label_set == "ferplus":
        return ds
    if ds.ferplus_votes is None:
        raise DatasetError(
            f"{ds.source} has no 'ferplus_votes'; FER+ needs a .npz with ferplus_votes (N, 10) such as "
            "../shared/data/fer2013.npz (pass it with --data or FER_DATA)"
        )
    fp = ferplus_labels(ds.ferplus_votes, ds.match_status)
    k = fp.keep
    return FERDataset(
        images=ds.images[k], labels=fp.labels[k], usage=ds.usage[k], source=ds.source, format=ds.format,
        sha256=ds.sha256, ferplus_votes=ds.ferplus_votes[k],
        match_status=None if ds.match_status is None else ds.match_status[k],
        label_set="ferplus", soft_labels=fp.distribution[k],
    )


def with_label_set(ds: FERDataset, label_set: str) -> FERDataset:
    """``ds`` labelled with ``label_set`` (``"fer2013"`` or ``"ferplus"``).

    Raises:
        DatasetError: an unknown label set, a FER+ dataset asked for FER2013 labels, or no FER+ votes.
    """
    if label_set not in LABEL_SETS:
        raise DatasetError(f"unknown label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}")
    if label_set == ds.label_set:
        return ds
    if label_set == "ferplus":
        return ferplus_dataset(ds)
    raise DatasetError(f"{ds.source} is labelled {ds.label_set!r}; cannot turn it back into {label_set!r}")


def relabel_by_name(ds: FERDataset, label_set: str) -> FERDataset:
    """``ds``'s own labels re-indexed into ``label_set``'s classes by name, for scoring a model of that label set
    on a file annotated with another one (an 8-class FER+ model on a file labelled with FER2013 ids: FER2013's
    seven names are all FER+ classes, contempt is simply absent). Unlike :func:`with_label_set` nothing is
    re-annotated: the labels are the file's, only their indices change.

    Returns:
        A :class:`~fer_core.data.datasets.FERDataset` with ``label_set=label_set`` and ``labels`` ``int64 (N,)``
        indexing :data:`fer_core.LABEL_SETS` ``[label_set]`` (rows without a label, -1, stay -1).

    Raises:
        DatasetError: an unknown label set, or a class of ``ds`` that ``label_set`` has no class of that name for.
    """
    if label_set not in LABEL_SETS:
        raise DatasetError(f"unknown label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}")
    if label_set == ds.label_set:
        return ds
    source, target = LABEL_SETS[ds.label_set], LABEL_SETS[label_set]
    missing = sorted({source[i] for i in np.unique(ds.labels) if i >= 0} - set(target))
    if missing:
        raise DatasetError(f"{ds.source} has labels {missing} that the {label_set!r} classes do not name")
    index = np.array([target.index(name) if name in target else -1 for name in source] + [-1], np.int64)
    labels = index[np.where(ds.labels >= 0, ds.labels, len(source))]  # -1 rows map to the trailing -1
    return dataclasses.replace(ds, labels=labels, label_set=label_set, soft_labels=None)


def agreement_matrix(fer2013: np.ndarray, ferplus: np.ndarray) -> np.ndarray:
    """Counts of FER2013 label vs FER+ label over the same rows.

    Args:
        fer2013: ``int (N,)`` FER2013 ids 0-6; ferplus: ``int (N,)`` FER+ ids 0-7 (-1 rows are skipped).

    Returns:
        ``int64 (7, 8)``: row = FER2013 class (:data:`fer_core.EMOTIONS`), column = FER+ class.
    """
    a, b = np.asarray(fer2013, np.int64), np.asarray(ferplus, np.int64)
    ok = (b >= 0) & (a >= 0)
    m = np.zeros((len(EMOTIONS), N_EMOTIONS), np.int64)
    np.add.at(m, (a[ok], b[ok]), 1)
    return m
