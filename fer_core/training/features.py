"""Frozen-prefix features computed once: kept on disk (``runs/features/``) for public backbones, in memory
for the others (ScatterNet's scattering, a two-stage trunk), and looked up for any subset of the faces.

A private run that trains only a head over a frozen public backbone (:class:`fer_core.models.facex.FaceXNet`,
``--trainable head``) needs the backbone's features of every face; at 200x200 px they cost ~25 min of one
CPU thread for FER2013's 35,887 faces, so they are stored and reused by later runs. The file name is keyed by
what determines the features and nothing else: the prefix's identity (the sha256 of the backbone's weights,
the taps and the pooling; :meth:`fer_core.models.facex_parts.FaceXFeatures.cache_identity`), the data file's sha256
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
from fer_core.inference.runtime import OnnxModule, RuntimeUnavailable, onnx_session

FEATURE_CACHE_DIR = Path("runs/features")


def feature_cache_path(identity: dict, images: np.ndarray, data_sha256: str,
                       cache_dir: str | os.PathLike = FEATURE_CACHE_DIR) -> Path:
    """Where the features of ``images`` under a prefix of ``identity`` are stored (``.npy``)."""
    prefix_key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    images_key = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
    return Path(cache_dir) / prefix_key / f"data-{data_sha256[:12]}_faces-{images_key}_n{len(images)}.npy"


#: Largest |difference| between a feature on ONNX Runtime and on torch, relative to the largest |feature|, that
#: :func:`compute_features` accepts before running the prefix on ONNX Runtime (measured ~3e-6 for SFace's trunk).
FEATURE_TOLERANCE = 1e-4


def _fastest(prefix: nn.Module, probe: torch.Tensor) -> tuple[object, str]:
    """``(callable, runtime)``: the prefix exported to ONNX Runtime (with torch's threads) when it exports and
    reproduces torch's features on ``probe`` within :data:`FEATURE_TOLERANCE` (2x faster for SFace's
    depthwise convolutions), else the torch module."""
    try:
        session = onnx_session(prefix, threads=torch.get_num_threads())
    except RuntimeUnavailable:
        return prefix, "torch"
    if len(session.get_inputs()) != 1:  # the traced graph does not read the faces (a python-side step)
        return prefix, "torch"
    run = OnnxModule(session)
    want = prefix(probe)
    try:
        got = run(probe)
    except Exception:  # onnxruntime raises its own error types; any means "stay on torch"
        return prefix, "torch"
    if got.shape != want.shape or \
            float((want - got).abs().max()) > FEATURE_TOLERANCE * max(float(want.abs().max()), 1.0):
        return prefix, "torch"
    return run, "onnx"


def compute_features(prefix: nn.Module, images: np.ndarray, batch_size: int = 64,
                     progress: bool = True) -> torch.Tensor:
    """``prefix`` on ``uint8 (N, 48, 48)`` faces in batches (eval mode; on ONNX Runtime where it reproduces
    torch, see :func:`_fastest`) -> ``float32 (N, D)``."""
    prefix.eval()
    # Outside inference mode: a prefix may share its model with a tail that trains (facex's tuned blocks), whose
    # weights must not become inference tensors.
    prefix = prefix.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        return _compute(prefix, images, batch_size, progress)


def _compute(prefix: nn.Module, images: np.ndarray, batch_size: int, progress: bool) -> torch.Tensor:
    run, runtime = _fastest(prefix, to_model_input(images[:8]))
    parts, start = [], time.perf_counter()
    for i in range(0, len(images), batch_size):
        parts.append(run(to_model_input(images[i: i + batch_size])).float())
        done = i + len(parts[-1])
        if progress and (i // batch_size) % 50 == 0:
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(f"features ({runtime}): {done:,}/{len(images):,} faces, {rate:.0f}/s", file=sys.stderr, flush=True)
    return torch.cat(parts).contiguous()


def face_keys(images: np.ndarray) -> list[bytes]:
    """One 16-byte digest (BLAKE2b) per face of ``uint8 (N, H, W)``: equal faces, equal keys."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def library_rows(library: np.ndarray, images: np.ndarray) -> np.ndarray | None:
    """``int64 (N,)`` rows of ``library`` holding each face of ``images`` (any one of equal faces), or None
    when some face is not in the library."""
    where = {k: i for i, k in enumerate(face_keys(library))}
    rows = [where.get(k) for k in face_keys(images)]
    return None if any(r is None for r in rows) else np.asarray(rows, np.int64)


def cached_features(prefix: nn.Module, images: np.ndarray, data_sha256: str,
                    cache_dir: str | os.PathLike = FEATURE_CACHE_DIR, progress: bool = True,
                    library: np.ndarray | None = None) -> torch.Tensor:
    """The prefix's features of ``images``, from the disk cache or computed and stored there (atomically).

    Args:
        prefix: a frozen prefix with ``cache_identity() -> dict`` (e.g.
            :class:`fer_core.models.facex_parts.FaceXFeatures`); one with ``parts()`` (two backbones) is cached per
            part and the parts' features concatenated; one with ``mirror_views`` (and ``one_view()``) gives
            each face's features and its mirror image's, the latter cached as the features of the mirrored faces.
        images: ``uint8 (N, 48, 48)``. data_sha256: the data file's sha256 (recorded in the key).
        library: ``uint8 (M, 48, 48)``, every face of the data file (``FERDataset.images``): its features
            are computed once and any subset of it is a lookup (audit twins train on random halves,
            which would otherwise each cost a pass through the backbone). Faces not in it: computed as is.

    Returns:
        ``float32 (N, D)``, or ``(N, 2, D)`` with ``mirror_views``: the prefix is deterministic in eval mode, so a
        face's features do not depend on which subset it was computed with.
    """
    if getattr(prefix, "mirror_views", False):  # (N, 2, D): a face and its mirror image, each cached as faces
        one = prefix.one_view()
        views = [(images, library), tuple(None if a is None else np.ascontiguousarray(a[:, :, ::-1])
                                          for a in (images, library))]
        return torch.stack([cached_features(one, im, data_sha256, cache_dir, progress, lib) for im, lib in views], 1)
    parts = prefix.parts() if hasattr(prefix, "parts") else [prefix]
    if len(parts) > 1:  # one cache per backbone: a backbone's features are computed once whatever joins them
        return torch.cat([cached_features(p, images, data_sha256, cache_dir, progress, library) for p in parts], 1)
    if library is not None and len(library) != len(images):
        rows = library_rows(library, images)
        if rows is not None:
            return cached_features(prefix, library, data_sha256, cache_dir, progress)[torch.from_numpy(rows)]
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
    return torch.from_numpy(feats.numpy())  # not an inference tensor (as read from the cache): a tail may save it


@torch.inference_mode()
def precompute(prefix: nn.Module, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """Outputs of a frozen prefix for every face.

    Args:
        prefix: a module from :func:`fer_core.models.architectures.split_for_finetune` (eval mode is set here).
        images: ``uint8 (N, 48, 48)`` faces.

    Returns:
        ``float32 (N, ...)``: the prefix's output for each face (e.g. ``(N, 81, 12, 12)`` scattering).
    """
    prefix.eval()
    parts = [prefix(to_model_input(images[i: i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(parts).contiguous()


#: The in-memory library of the last prefix without a disk cache: ``{key: float32 (M, ...)}`` (one at a
#: time: FER2013's scattering is about 1.7 GB).
_LIBRARY: dict[str, torch.Tensor] = {}


def prefix_features(prefix: nn.Module, images: np.ndarray, data_sha256: str, library: np.ndarray | None = None,
                    progress: bool = True) -> torch.Tensor:
    """A frozen prefix's outputs for ``uint8 (N, 48, 48)`` faces, computed once per prefix and data file.

    A prefix with ``cache_identity()`` (a public backbone) goes through the disk cache
    (:func:`cached_features`). A prefix with ``feature_identity()`` (ScatterNet's scattering, a two-stage
    trunk: what its outputs depend on, e.g. the sha256 of the trunk's weights) is run once over ``library``
    (every face of the data file) and kept in memory, keyed by that identity and the data's sha256; every
    later subset in this process (the twins of an audit, the models of a sweep) is a lookup. Otherwise,
    without a library, or for faces outside it, the prefix runs on ``images`` themselves.

    Returns:
        ``float32 (N, ...)``.
    """
    if hasattr(prefix, "cache_identity"):
        return cached_features(prefix, images, data_sha256, progress=progress, library=library)
    rows = None if library is None or not hasattr(prefix, "feature_identity") else library_rows(library, images)
    if rows is None:
        return precompute(prefix, images)
    key = json.dumps([prefix.feature_identity(), data_sha256, len(library)], sort_keys=True)
    if key not in _LIBRARY:
        _LIBRARY.clear()
        _LIBRARY[key] = precompute(prefix, library)
    return _LIBRARY[key][torch.from_numpy(rows)]
