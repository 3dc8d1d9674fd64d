"""Which rows a run trains on, and on which labels.

The data is loaded once (:func:`load_data`: the label set applied, a validation split carved out if
the data has none); :func:`select_train_rows` takes all of the training split, or its declared public
share, or the private rest: the strategy says which, so the plain recipe knows nothing of DP.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_core import LABEL_SETS
from fer_core.data.datasets import FERDataset, load_dataset
from fer_core.data.ferplus import with_label_set
from fer_core.privacy.rows import public_private_split, random_halves
from fer_core.training.config import TrainConfig


def twin_membership(rows: int, twins: int, seed: int) -> np.ndarray:
    """``bool (twins, rows)``: which of a model's training rows each audit twin trains on.

    Every twin trains on its own seeded random half (:func:`fer_core.privacy.rows.random_halves`,
    Carlini et al. 2022), so each twin's non-members are the same distribution as its members, and
    with enough twins every row has IN and OUT shadows among the others.

    Raises:
        ValueError: fewer than 2 twins.
    """
    return random_halves(rows, twins, seed)


def train_row_indices(cfg: TrainConfig, ds: FERDataset, which: str | None = None) -> tuple[np.ndarray, dict]:
    """Dataset row indices of the rows a run trains on, and their description for the model card.

    ``which`` is ``"all"``, ``"public"`` (two-stage stage 1) or ``"private"`` (two-stage stage 2,
    the rest); None takes ``cfg.train_rows``. The public and private shares use
    :func:`fer_core.privacy.rows.public_private_split` with ``public_fraction`` and ``public_seed``,
    so the two shares are disjoint. ``limit_train`` then keeps the first N rows. An audit twin
    (``cfg.twin`` set) keeps its half of those rows (:func:`twin_membership`).

    Returns:
        ``(int64 (n,) indices into ds, rows)``; ``rows`` holds ``train_rows``, ``public_fraction``,
        ``public_seed``, ``public_rows``, ``private_rows``, ``twin`` and ``description`` as they apply.

    Raises:
        ValueError: an unknown ``train_rows``, or a twin index outside ``0..twins-1``.
    """
    idx = ds.indices(cfg.train_split)
    which = which or cfg.train_rows
    if which not in ("all", "public", "private"):
        raise ValueError(f"unknown train_rows {which!r}; choose 'all' or 'public'")
    rows: dict = {"train_rows": which}
    desc = f"{Path(ds.source).name} {cfg.train_split}"
    if which == "all":
        rows["description"] = f"{desc}, all {len(idx):,} rows"
    else:
        public, private = public_private_split(len(idx), cfg.public_fraction, cfg.public_seed)
        share = public if which == "public" else private
        rows.update(public_fraction=cfg.public_fraction, public_seed=cfg.public_seed, public_rows=len(public),
                    private_rows=len(private),
                    description=f"{desc}, {'the public' if which == 'public' else 'all but the public'} share "
                    f"({cfg.public_fraction:.0%} of rows, seed {cfg.public_seed}): {len(share):,} rows")
        idx = idx[share]
    if cfg.limit_train:
        idx = idx[: cfg.limit_train]
        rows["description"] += f", first {len(idx):,} used"
    if cfg.twin is not None:
        if not 0 <= cfg.twin < cfg.twins:
            raise ValueError(f"twin {cfg.twin} is not one of 0..{cfg.twins - 1} (--twins {cfg.twins})")
        idx = idx[twin_membership(len(idx), cfg.twins, cfg.twin_seed)[cfg.twin]]
        rows["twin"] = {"index": cfg.twin, "of": cfg.twins, "seed": cfg.twin_seed}
        rows["description"] += (f"; audit twin {cfg.twin} of {cfg.twins} (seed {cfg.twin_seed}): a random half, "
                                f"{len(idx):,} rows")
    return idx, rows


def select_train_rows(cfg: TrainConfig, ds: FERDataset, which: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The training rows a run uses (:func:`train_row_indices`) with their targets.

    Returns:
        ``(images uint8 (n, 48, 48), targets, rows)``; ``targets`` are ``int64 (n,)`` class ids, or
        ``float32 (n, K)`` label distributions with ``target="distribution"``; ``rows`` describes the
        choice for the model card.

    Raises:
        ValueError: an unknown ``train_rows`` or ``target``, or fewer rows than one batch.
        fer_core.data.datasets.DatasetError: ``target="distribution"`` on data without label distributions.
    """
    if cfg.target not in ("majority", "distribution"):
        raise ValueError(f"unknown target {cfg.target!r}; choose 'majority' or 'distribution'")
    if cfg.target == "distribution" and ds.soft_labels is None:
        ds.soft_split(cfg.train_split)  # raises the DatasetError that says what to do
    idx, rows = train_row_indices(cfg, ds, which)
    images = ds.images[idx]
    labels = ds.soft_labels[idx] if cfg.target == "distribution" else ds.labels[idx].astype(np.int64)
    if len(labels) < cfg.batch_size:
        raise ValueError(f"{len(labels)} training rows are fewer than one batch ({cfg.batch_size})")
    return images, labels, rows


def class_names(cfg: TrainConfig) -> tuple[str, ...]:
    """The classes a run trains (its label set's names; index = class id).

    Raises:
        ValueError: an unknown ``label_set``.
    """
    if cfg.label_set not in LABEL_SETS:
        raise ValueError(f"unknown label set {cfg.label_set!r}; choose one of {', '.join(LABEL_SETS)}")
    return LABEL_SETS[cfg.label_set]


def load_data(cfg: TrainConfig) -> FERDataset:
    """The run's dataset with its label set; a seeded validation split carved out when the data has none.

    Raises:
        fer_core.data.datasets.DatasetError: missing or malformed data, or no FER+ votes for ``ferplus``.
        ValueError: an unknown label set.
    """

    class_names(cfg)
    ds = with_label_set(load_dataset(cfg.data), cfg.label_set)
    if cfg.val_split not in ds.splits:
        ds = ds.with_validation(cfg.val_fraction, cfg.seed, name=cfg.val_split)
    return ds
