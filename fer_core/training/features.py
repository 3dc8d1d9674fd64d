"""Frozen-prefix features computed once and kept on disk (``runs/features/``).

A private run that trains only a head over a frozen public backbone (:class:`fer_core.models.facex.FaceXNet`,
``--trainable head``) needs the backbone's features of every face; at 200x200 px they cost ~25 min of one
CPU thread for FER2013's 35,887 faces, so they are stored and reused by later runs. The file name is keyed by
what determines the features and nothing else: the prefix's identity (the sha256 of the backbone's weights,
the taps and the pooling; :meth:`fer_core.models.facex.FaceXFeatures.cache_identity`), the data file's sha256
and the sha256 of the exact ``uint8`` faces. Features of training rows never leave this cache: only the DP
head trained on them does.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fer_core.data.preprocess import to_model_input

FEATURE_CACHE_DIR = Path("runs/features")


def feature_cache_path(identity: dict, images: np.ndarray, data_sha256: str,
                       cache_dir: str | os.PathLike = FEATURE_CACHE_DIR) -> Path:
    """Where the features of ``images`` under a prefix of ``identity`` are stored (``.npy``)."""
    prefix_key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    images_key = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
    return Path(cache_dir) / prefix_key / f"data-{data_sha256[:12]}_faces-{images_key}_n{len(images)}.npy"


@torch.inference_mode()
def compute_features(prefix: nn.Module, images: np.ndarray, batch_size: int = 64,
                     progress: bool = True) -> torch.Tensor:
    """``prefix`` on ``uint8 (N, 48, 48)`` faces in batches (eval mode, channels-last) -> ``float32 (N, D)``."""
    prefix.eval()
    prefix = prefix.to(memory_format=torch.channels_last)
    parts, start = [], time.perf_counter()
    for i in range(0, len(images), batch_size):
        parts.append(prefix(to_model_input(images[i: i + batch_size])).float())
        done = i + len(parts[-1])
        if progress and (i // batch_size) % 50 == 0:
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(f"features: {done:,}/{len(images):,} faces, {rate:.0f}/s", file=sys.stderr, flush=True)
    return torch.cat(parts).contiguous()


def cached_features(prefix: nn.Module, images: np.ndarray, data_sha256: str,
                    cache_dir: str | os.PathLike = FEATURE_CACHE_DIR, progress: bool = True) -> torch.Tensor:
    """The prefix's features of ``images``, from the disk cache or computed and stored there (atomically).

    Args:
        prefix: a frozen prefix with ``cache_identity() -> dict`` (e.g.
            :class:`fer_core.models.facex.FaceXFeatures`).
        images: ``uint8 (N, 48, 48)``. data_sha256: the data file's sha256 (recorded in the key).

    Returns:
        ``float32 (N, D)``.
    """
    identity = prefix.cache_identity()
    path = feature_cache_path(identity, images, data_sha256, cache_dir)
    if path.is_file():
        return torch.from_numpy(np.load(path))
    feats = compute_features(prefix, images, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats.numpy())
    os.replace(tmp, path)
    (path.parent / "identity.json").write_text(json.dumps(identity, indent=2) + "\n")
    return feats
