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
from fer_core.privacy.rows import public_private_split
from fer_core.training.config import TrainConfig


def select_train_rows(cfg: TrainConfig, ds: FERDataset, which: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The training rows a run uses: all of ``cfg.train_split``, or its public or private share.

    ``which`` is ``"all"``, ``"public"`` (two-stage stage 1) or ``"private"`` (two-stage stage 2,
    the rest); None takes ``cfg.train_rows``. The public and private shares use :func:`fer_core.privacy.rows.public_private_split` with ``public_fraction`` and
    ``public_seed``, so the two shares are disjoint. ``limit_train`` then keeps the first N rows.

    Returns:
        ``(images uint8 (n, 48, 48), targets, rows)``; ``targets`` are ``int64 (n,)`` class ids, or
        ``float32 (n, K)`` label distributions with ``target="distribution"``; ``rows`` describes the
        choice for the model card (``train_rows``, ``public_fraction``, ``public_seed``, ``description``).

    Raises:
        ValueError: an unknown ``train_rows`` or ``target``, or fewer rows than one batch.
        fer_core.data.datasets.DatasetError: ``target="distribution"`` on data without label distributions.
    """

    images, labels = ds.split(cfg.train_split)
    if cfg.target == "distribution":
        labels = ds.soft_split(cfg.train_split)
    elif cfg.target != "majority":
        raise ValueError(f"unknown target {cfg.target!r}; choose 'majority' or 'distribution'")
    which = which or cfg.train_rows
    if which not in ("all", "public", "private"):
        raise ValueError(f"unknown train_rows {which!r}; choose 'all' or 'public'")
    rows = {"train_rows": which}
    desc = f"{Path(ds.source).name} {cfg.train_split}"
    if which == "all":
        rows["description"] = f"{desc}, all {len(labels):,} rows"
    else:
        public, private = public_private_split(len(labels), cfg.public_fraction, cfg.public_seed)
        idx = public if which == "public" else private
        images, labels = images[idx], labels[idx]
        rows.update(public_fraction=cfg.public_fraction, public_seed=cfg.public_seed, public_rows=len(public),
                    private_rows=len(private),
                    description=f"{desc}, {'the public' if which == 'public' else 'all but the public'} share "
                    f"({cfg.public_fraction:.0%} of rows, seed {cfg.public_seed}): {len(idx):,} rows")
    if cfg.limit_train:
        images, labels = images[: cfg.limit_train], labels[: cfg.limit_train]
        rows["description"] += f", first {len(labels):,} used"
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
