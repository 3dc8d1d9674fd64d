"""Loading facial-expression datasets: FER2013 ``.npz``, Kaggle ``fer2013.csv`` and image folders.

Every loader returns a :class:`FERDataset`: ``uint8`` grayscale faces of shape ``(N, 48, 48)``,
FER2013 class ids ``0..6`` (see :data:`fer_core.EMOTIONS`) and the split of each row
(``Training`` / ``PublicTest`` / ``PrivateTest`` for FER2013).

Formats accepted by :func:`load_dataset`:

* ``.npz`` with ``images`` (uint8, ``N x H x W`` grayscale or ``N x H x W x 3`` RGB) and ``label``
  (int, FER2013 ids 0-6; rows with -1 are ignored), optionally ``usage`` (str, the split of each
  row) and ``ferplus_votes``. ``../shared/data/fer2013.npz`` is the full FER2013 in this format.
* Kaggle's ``fer2013.csv`` with columns ``emotion``, ``pixels`` (2304 space-separated grey levels)
  and optionally ``Usage``.
* The Kaggle image-folder layout: ``ROOT/train/<emotion>/*.jpg`` and ``ROOT/test/<emotion>/*.jpg``
  (``val``/``validation``/``PublicTest``/``PrivateTest`` folders are recognised too).

The data itself never enters the repository: it is read from ``--data``, ``$FER_DATA`` or
``../shared/data/fer2013.npz``.

Source: Goodfellow et al. 2013, "Challenges in Representation Learning: A report on three machine
learning contests" (FER2013); Barsoum et al. 2016 (FER+ votes).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fer_core import EMOTIONS
from fer_core.data.images import face_to_48, rgb_to_gray
from fer_core.data.preprocess import IMAGE_SIZE

SPLITS = ("Training", "PublicTest", "PrivateTest")
DATA_ENV = "FER_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Folder names of the Kaggle image-folder copy (and common variants) -> FER2013 class id.
_FOLDER_LABELS = {
    "angry": 0, "anger": 0,
    "disgust": 1, "disgusted": 1,
    "fear": 2, "fearful": 2,
    "happy": 3, "happiness": 3,
    "sad": 4, "sadness": 4,
    "surprise": 5, "surprised": 5,
    "neutral": 6,
}
_FOLDER_SPLITS = {
    "train": "Training", "training": "Training",
    "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest", "publictest": "PublicTest",
    "test": "Test", "privatetest": "PrivateTest",
}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm"}


class DatasetError(ValueError):
    """A dataset is missing or malformed; the message says what was expected and where."""


@dataclass
class FERDataset:
    """A facial-expression dataset held in memory.

    Attributes:
        images: ``uint8`` array ``(N, 48, 48)``, grey levels 0-255.
        labels: ``int64`` array ``(N,)``, FER2013 class ids 0-6 (index into :data:`fer_core.EMOTIONS`).
        usage: ``str`` array ``(N,)``, the split of each row (e.g. ``Training``, ``PublicTest``,
            ``PrivateTest``; ``Test`` for an image folder's ``test/``; ``All`` when the file has none).
        source: where the data was read from.
        format: ``npz``, ``csv`` or ``folder``.
        sha256: hex digest of the file (for a folder: of its sorted relative paths and bytes).
        ferplus_votes: optional ``uint8`` array ``(N, 10)`` of FER+ votes.
        match_status: optional ``int8`` array ``(N,)`` (see ``shared/data/README.md``).
        label_set: which classes ``labels`` index: ``"fer2013"`` (:data:`fer_core.EMOTIONS`) or
            ``"ferplus"`` (:data:`fer_core.FERPLUS_EMOTIONS`, see :func:`fer_core.data.ferplus.ferplus_dataset`).
        soft_labels: optional ``float32 (N, K)`` label distributions (rows sum to 1), e.g. FER+ votes.
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    source: str
    format: str
    sha256: str
    ferplus_votes: np.ndarray | None = None
    match_status: np.ndarray | None = None
    label_set: str = "fer2013"
    soft_labels: np.ndarray | None = None
    _hashes: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def splits(self) -> list[str]:
        """Names of the splits present, in FER2013 order first, then any others."""
        present = list(dict.fromkeys(self.usage.tolist()))
        return [s for s in SPLITS if s in present] + [s for s in present if s not in SPLITS]

    def indices(self, split: str) -> np.ndarray:
        """Row indices (``int64``, ascending) of one split.

        Raises:
            DatasetError: if the split is not in the dataset.
        """
        if split not in self.splits:
            raise DatasetError(
                f"split {split!r} is not in {self.source} (it has: {', '.join(self.splits)})"
            )
        return np.flatnonzero(self.usage == split)

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images (n, 48, 48) uint8, labels (n,) int64)`` of one split (see :meth:`indices`)."""
        idx = self.indices(split)
        return self.images[idx], self.labels[idx]

    def soft_split(self, split: str) -> np.ndarray:
        """``float32 (n, K)`` label distributions of one split (see :meth:`indices`).

        Raises:
            DatasetError: the dataset has no label distributions (only FER+ provides them).
        """
        if self.soft_labels is None:
            raise DatasetError(
                f"{self.source} has no label distributions; train on FER+ votes (--label-set ferplus) "
                "or use --target majority"
            )
        return self.soft_labels[self.indices(split)]

    def image_hashes(self) -> np.ndarray:
        """One 16-byte BLAKE2b digest per image (``object`` array ``(N,)`` of bytes), cached."""
        if self._hashes is None:
            self._hashes = np.array(
                [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in self.images],
                dtype=object,
            )
        return self._hashes

    def dedup_mask(self, split: str, reference: str = "Training") -> np.ndarray:
        """Boolean mask ``(n,)`` over ``split``: True where the image does NOT also occur in ``reference``.

        FER2013 has 530 duplicate groups that put the same image in ``Training`` and a test split
        (see ``shared/data/README.md``); the deduplicated test figure keeps only the True rows.
        """
        hashes = self.image_hashes()
        seen = set(hashes[self.indices(reference)].tolist())
        return np.array([h not in seen for h in hashes[self.indices(split)]], dtype=bool)

    def with_validation(self, fraction: float, seed: int, name: str = "PublicTest") -> FERDataset:
        """Copy with a seeded ``fraction`` of ``Training`` rows relabelled as split ``name``.

        For datasets that ship no validation split (e.g. an image folder with only train/test).

        Raises:
            DatasetError: if ``fraction`` is not in (0, 0.5] or there is no ``Training`` split.
        """
        if not 0.0 < fraction <= 0.5:
            raise DatasetError(f"validation fraction must be in (0, 0.5], got {fraction}")
        train_idx = self.indices("Training")
        rng = np.random.default_rng(seed)
        chosen = rng.choice(train_idx, size=max(1, int(round(fraction * len(train_idx)))), replace=False)
        usage = self.usage.copy().astype(object)
        usage[chosen] = name
        return FERDataset(
            images=self.images, labels=self.labels, usage=usage.astype(str), source=self.source,
            format=self.format, sha256=self.sha256, ferplus_votes=self.ferplus_votes,
            match_status=self.match_status, label_set=self.label_set, soft_labels=self.soft_labels,
        )


def default_data_path() -> Path:
    """The dataset used when none is given: ``$FER_DATA``, else ``../shared/data/fer2013.npz``.

    ``../shared`` is looked up beside the repository root and beside the working directory.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    candidates = [
        REPO_ROOT.parent / "shared" / "data" / "fer2013.npz",
        Path.cwd().parent / "shared" / "data" / "fer2013.npz",
    ]
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, or of a folder's sorted relative paths and file bytes."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(str(f.relative_to(p)).encode())
            h.update(f.read_bytes())
    else:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_dataset(path: str | os.PathLike | None = None) -> FERDataset:
    """Load a facial-expression dataset from a ``.npz``, a ``.csv`` or an image folder.

    Args:
        path: file or folder; ``None`` uses :func:`default_data_path`.

    Returns:
        A :class:`FERDataset` with images resized to 48x48 grayscale where needed and rows labelled
        -1 dropped.

    Raises:
        DatasetError: the path does not exist, the file is empty, or its content is not one of the formats
            above (the message names the path, what was found and what was expected).
    """
    p = Path(path).expanduser() if path is not None else default_data_path()
    if not p.exists():
        hint = (
            "pass --data PATH or set FER_DATA to a FER2013 .npz, a Kaggle fer2013.csv or a "
            "folder with train/<emotion>/*.jpg and test/<emotion>/*.jpg"
        )
        raise DatasetError(f"dataset not found at {p}: {hint}")
    if p.is_dir():
        return _load_folder(p)
    if p.is_file() and p.stat().st_size == 0:
        raise DatasetError(f"{p}: the file is empty")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p)
    if suffix == ".csv":
        return _load_csv(p)
    raise DatasetError(
        f"{p}: unsupported dataset file type {suffix or '(none)'}; expected a .npz, a .csv "
        "(Kaggle fer2013.csv) or a folder of images"
    )


def _to_gray48(images: np.ndarray, where: str) -> np.ndarray:
    """Validate and convert an image stack to ``uint8 (N, 48, 48)``."""
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number) or images.size and (
            images.min() < 0 or images.max() > 255
        ):
            raise DatasetError(
                f"{where}: 'images' has dtype {images.dtype} with values outside 0..255; expected uint8"
            )
        images = np.rint(images).astype(np.uint8)
    if images.ndim == 4 and images.shape[-1] in (3, 4):
        images = rgb_to_gray(images)
    elif images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise DatasetError(
            f"{where}: 'images' has shape {images.shape}; expected (N, H, W) grayscale "
            "or (N, H, W, 3) RGB"
        )
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        images = np.stack([face_to_48(im) for im in images]) if len(images) else np.zeros(
            (0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return np.ascontiguousarray(images)


def _check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"{where}: 'label' has dtype {labels.dtype} and shape {labels.shape}; "
            "expected a 1-D integer array of FER2013 ids 0-6 (-1 = ignore)"
        )
    labels = labels.astype(np.int64)
    bad = (labels < -1) | (labels >= len(EMOTIONS))
    if bad.any():
        raise DatasetError(
            f"{where}: {int(bad.sum())} labels outside -1..6 (e.g. {int(labels[bad][0])}); "
            f"expected FER2013 ids 0-6 ({', '.join(EMOTIONS)}) or -1 to ignore a row"
        )
    return labels


def _finish(images, labels, usage, source, fmt, sha, votes=None, status=None) -> FERDataset:
    keep = labels >= 0
    if not keep.any():
        raise DatasetError(f"{source}: no labelled rows (every label is -1)")
    ds = FERDataset(
        images=images[keep], labels=labels[keep], usage=np.asarray(usage)[keep].astype(str),
        source=str(source), format=fmt, sha256=sha,
        ferplus_votes=None if votes is None else votes[keep],
        match_status=None if status is None else status[keep],
    )
    return ds


def _load_npz(p: Path) -> FERDataset:
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            label_key = "label" if "label" in keys else "labels" if "labels" in keys else None
            if "images" not in keys or label_key is None:
                raise DatasetError(
                    f"{p}: .npz has keys {sorted(keys)}; expected 'images' (uint8 N x 48 x 48) and "
                    "'label' (FER2013 ids 0-6, -1 = ignore), optionally 'usage'"
                )
            images = _to_gray48(z["images"], str(p))
            labels = _check_labels(z[label_key], str(p))
            usage = z["usage"].astype(str) if "usage" in keys else np.full(len(labels), "All")
            votes = z["ferplus_votes"] if "ferplus_votes" in keys else None
            status = z["match_status"] if "match_status" in keys else None
    except DatasetError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled arrays), OSError...
        raise DatasetError(f"{p}: cannot read as .npz ({type(exc).__name__}: {exc})") from exc
    if not len(images) == len(labels) == len(usage):
        raise DatasetError(
            f"{p}: 'images' has {len(images)} rows, 'label' {len(labels)}, 'usage' {len(usage)}; "
            "they must have the same number of rows"
        )
    return _finish(images, labels, usage, p, "npz", file_sha256(p), votes, status)


def _load_csv(p: Path) -> FERDataset:

    try:
        df = pd.read_csv(p, dtype={"pixels": str})
    except Exception as exc:
        raise DatasetError(f"{p}: cannot read as CSV ({type(exc).__name__}: {exc})") from exc
    cols = {c.strip().lower(): c for c in df.columns}
    if "emotion" not in cols or "pixels" not in cols:
        raise DatasetError(
            f"{p}: CSV has columns {list(df.columns)}; expected Kaggle's fer2013.csv columns "
            "'emotion', 'pixels' (2304 space-separated grey levels) and optionally 'Usage'"
        )
    try:
        flat = [np.asarray(s.split(), dtype=np.int64) for s in df[cols["pixels"]].astype(str)]
    except ValueError as exc:
        raise DatasetError(f"{p}: a 'pixels' cell is not space-separated integers ({exc})") from exc
    sizes = {len(f) for f in flat}
    side = int(round(np.sqrt(next(iter(sizes))))) if len(sizes) == 1 else -1
    if len(sizes) != 1 or side * side != next(iter(sizes)):
        raise DatasetError(
            f"{p}: 'pixels' rows hold {sorted(sizes)[:5]} values; expected {IMAGE_SIZE * IMAGE_SIZE} "
            "(a square grayscale image) in every row"
        )
    images = np.stack(flat).reshape(-1, side, side)
    if images.min() < 0 or images.max() > 255:
        raise DatasetError(f"{p}: 'pixels' values outside 0..255")
    images = _to_gray48(images.astype(np.uint8), str(p))
    labels = _check_labels(df[cols["emotion"]].to_numpy(), str(p))
    usage = (
        df[cols["usage"]].astype(str).str.strip().to_numpy()
        if "usage" in cols else np.full(len(df), "All")
    )
    return _finish(images, labels, usage, p, "csv", file_sha256(p))


def _load_folder(root: Path) -> FERDataset:

    images, labels, usage = [], [], []
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in _FOLDER_SPLITS]
    if not split_dirs:
        raise DatasetError(
            f"{root}: no split folders found; expected ROOT/train/<emotion>/*.jpg and "
            "ROOT/test/<emotion>/*.jpg (emotion one of: " + ", ".join(EMOTIONS) + ")"
        )
    unreadable: list[str] = []
    for split_dir in split_dirs:
        split = _FOLDER_SPLITS[split_dir.name.lower()]
        for cls_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            label = _FOLDER_LABELS.get(cls_dir.name.lower())
            if label is None:
                raise DatasetError(
                    f"{cls_dir}: unknown emotion folder {cls_dir.name!r}; expected one of "
                    + ", ".join(EMOTIONS)
                )
            for f in sorted(cls_dir.iterdir()):
                if f.suffix.lower() not in _IMAGE_SUFFIXES:
                    continue
                img = cv2.imdecode(np.fromfile(f, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    unreadable.append(str(f))
                    continue
                images.append(face_to_48(img))
                labels.append(label)
                usage.append(split)
    if unreadable:
        raise DatasetError(
            f"{root}: {len(unreadable)} image files cannot be decoded (e.g. {unreadable[0]}); "
            "remove or replace them"
        )
    if not images:
        raise DatasetError(f"{root}: no images found under {', '.join(d.name for d in split_dirs)}")
    return _finish(
        np.stack(images), np.asarray(labels, np.int64), np.asarray(usage), root, "folder",
        file_sha256(root),
    )
