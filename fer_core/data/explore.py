"""Dataset exploration: class balance, sample faces, FER2013-vs-FER+ agreement, duplicates, image statistics.

The figures behind the "Dataset explorer" page; every function takes a :class:`fer_core.data.datasets.FERDataset`
(FER2013 labels) and returns plain numpy/pandas values, so the page only lays them out.

FER2013's known defects (``shared/data/README.md``): exact duplicate images, some across the
train/test boundary (leakage) and some with conflicting labels. FER+ (Barsoum et al. 2016)
relabelled every image with 10 annotators; :func:`agreement` shows how often the two label sets agree.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from fer_core import EMOTIONS, FERPLUS_EMOTIONS
from fer_core.data.datasets import FERDataset
from fer_core.data.ferplus import agreement_matrix, ferplus_labels


def class_distribution(ds: FERDataset) -> pd.DataFrame:
    """Rows per class and split, for FER2013's labels and (if the data has votes) FER+'s.

    Returns:
        Long table with columns ``label_set`` (``FER2013`` / ``FER+``), ``split``, ``emotion``,
        ``count`` (int) and ``share`` (of the split's labelled rows, 0-1).
    """
    frames = [_distribution("FER2013", ds.usage, ds.labels, EMOTIONS)]
    if ds.ferplus_votes is not None:
        fp = ferplus_labels(ds.ferplus_votes, ds.match_status)
        frames.append(_distribution("FER+", ds.usage[fp.keep], fp.labels[fp.keep], FERPLUS_EMOTIONS))
    return pd.concat(frames, ignore_index=True)


def _distribution(name: str, usage: np.ndarray, labels: np.ndarray, classes) -> pd.DataFrame:
    rows = []
    for split in dict.fromkeys(usage.tolist()):
        counts = np.bincount(labels[usage == split], minlength=len(classes))
        total = max(int(counts.sum()), 1)
        rows += [{"label_set": name, "split": split, "emotion": c, "count": int(k), "share": k / total}
                 for c, k in zip(classes, counts, strict=True)]
    return pd.DataFrame(rows)


def sample_faces(ds: FERDataset, per_class: int = 8, split: str | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """A seeded sample of faces per FER2013 class.

    Returns:
        ``{emotion: uint8 (k, 48, 48)}`` with ``k <= per_class`` (fewer if the class is rarer).
    """
    rng = np.random.default_rng(seed)
    rows = ds.indices(split) if split else np.arange(len(ds))
    out = {}
    for k, name in enumerate(EMOTIONS):
        idx = rows[ds.labels[rows] == k]
        if len(idx):
            out[name] = ds.images[np.sort(rng.choice(idx, min(per_class, len(idx)), replace=False))]
    return out


def montage(faces: np.ndarray, columns: int = 8, pad: int = 2) -> np.ndarray:
    """Tile ``uint8 (k, 48, 48)`` faces into one ``uint8`` image, ``columns`` per row, white padding."""
    k = len(faces)
    if k == 0:
        return np.full((48, 48), 255, np.uint8)
    cols = min(columns, k)
    rows = -(-k // cols)
    h, w = faces.shape[1:3]
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), 255, np.uint8)
    for i, f in enumerate(faces):
        r, c = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = f
    return grid


def agreement(ds: FERDataset) -> dict:
    """How FER2013's labels compare with FER+'s plurality labels on the rows that have both.

    Returns:
        ``{"matrix": int64 (7, 8) counts (rows FER2013 classes, columns FER+ classes),
        "row_share": float (7, 8) (each row sums to 1), "agreement": {emotion: share of the FER2013
        class that FER+ labels the same, 0-1; None for a class without rows}, "overall": share of rows
        whose two labels agree, "n": rows compared}``.

    Raises:
        ValueError: the dataset has no FER+ votes.
    """
    if ds.ferplus_votes is None:
        raise ValueError(f"{ds.source} has no FER+ votes ('ferplus_votes'); use ../shared/data/fer2013.npz")
    fp = ferplus_labels(ds.ferplus_votes, ds.match_status)
    m = agreement_matrix(ds.labels, fp.labels)
    totals = m.sum(axis=1, keepdims=True)
    share = np.divide(m, totals, out=np.zeros(m.shape), where=totals > 0)
    same = {e: (float(share[i, FERPLUS_EMOTIONS.index(e)]) if totals[i, 0] else None) for i, e in enumerate(EMOTIONS)}
    agree = sum(m[i, FERPLUS_EMOTIONS.index(e)] for i, e in enumerate(EMOTIONS))
    n = int(m.sum())
    return {"matrix": m, "row_share": share, "agreement": same, "overall": agree / n if n else None, "n": n}


def duplicates(ds: FERDataset, max_examples: int = 6) -> dict:
    """Exact duplicate images (byte-identical 48x48 faces) and train/test leakage.

    Returns:
        ``{"groups": groups of 2+ identical images, "rows": rows in them, "leaking_groups": groups
        with a ``Training`` row and a row of another split, "leaking_test_rows": non-Training rows
        whose image is also in Training, "conflicting_groups": groups whose rows carry different
        labels, "by_split": {split: rows of that split in a leaking group}, "blank_rows": images of a
        single grey level (no face at all), "examples": up to
        ``max_examples`` leaking or conflicting groups as ``[{"rows", "splits", "labels"}]``}``.
    """
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, h in enumerate(ds.image_hashes()):
        groups[h].append(i)
    multi = [np.asarray(g) for g in groups.values() if len(g) > 1]
    leaking, conflicting, examples = 0, 0, []
    by_split: dict[str, int] = defaultdict(int)
    for g in multi:
        splits = ds.usage[g]
        leak = "Training" in splits and (splits != "Training").any()
        conflict = len(set(ds.labels[g].tolist())) > 1
        leaking += int(leak)
        conflicting += int(conflict)
        if leak:
            for s in splits[splits != "Training"]:
                by_split[str(s)] += 1
        if (leak or conflict) and len(examples) < max_examples:
            examples.append({"rows": g.tolist(), "splits": splits.tolist(),
                             "labels": [EMOTIONS[k] for k in ds.labels[g]]})
    return {
        "groups": len(multi), "rows": int(sum(len(g) for g in multi)), "leaking_groups": leaking,
        "leaking_test_rows": int(sum(by_split.values())), "conflicting_groups": conflicting,
        "by_split": dict(by_split), "blank_rows": int((ds.images.reshape(len(ds), -1).std(axis=1) == 0).sum()),
        "examples": examples,
    }


def image_statistics(ds: FERDataset) -> pd.DataFrame:
    """Per-image brightness and contrast.

    Returns:
        Table with ``split``, ``emotion``, ``brightness`` (mean grey level, 0-255) and ``contrast``
        (standard deviation of grey levels, 0-127.5), one row per image.
    """
    x = ds.images.reshape(len(ds), -1).astype(np.float32)
    return pd.DataFrame({
        "split": ds.usage, "emotion": np.asarray(EMOTIONS)[ds.labels],
        "brightness": x.mean(axis=1), "contrast": x.std(axis=1),
    })
