"""Shared fixtures: small synthetic FER-like data with a learnable signal, fixed seeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# One torch thread: tests run beside other processes on a 2-core machine (see NOTES).
torch.set_num_threads(1)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "fer2013.npz"

TINY_RESNET = {"widths": [8, 16], "blocks": [1, 1], "stem": 8}


def make_faces(n: int, seed: int = 0, classes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """``uint8 (n, 48, 48)`` noisy stripe images whose class (0..classes-1) sets the stripes' period.

    Periods 3 * 1.3**k pixels, random angle and phase: the signal survives the training
    augmentations (shift, flip, rotation) and suits models that end in global average pooling.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float64)
    angles = rng.uniform(0, np.pi, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    period = 3.0 * 1.3 ** labels
    proj = np.cos(angles)[:, None, None] * xx + np.sin(angles)[:, None, None] * yy
    images = 128 + 60 * np.sin(2 * np.pi * proj / period[:, None, None] + phase[:, None, None])
    images += rng.normal(0, 20, (n, 48, 48))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def write_npz(path: Path, n_train: int = 256, n_val: int = 64, n_test: int = 64, seed: int = 0) -> Path:
    """A FER2013-format .npz with Training/PublicTest/PrivateTest splits of synthetic faces."""
    n = n_train + n_val + n_test
    images, labels = make_faces(n, seed)
    usage = np.array(["Training"] * n_train + ["PublicTest"] * n_val + ["PrivateTest"] * n_test)
    np.savez(path, images=images, label=labels.astype(np.int8), usage=usage)
    return path


@pytest.fixture
def synthetic_npz(tmp_path: Path) -> Path:
    return write_npz(tmp_path / "synthetic.npz")


@pytest.fixture(scope="session")
def random_ckpt(tmp_path_factory):
    """A loaded checkpoint of an untrained tiny ResNet (7 FER2013 classes), fixed seed."""
    from fer_core import EMOTIONS
    from fer_core.models.architectures import build_model, model_arguments
    from fer_core.models.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ck") / "rand"
    args = model_arguments("resnet", **TINY_RESNET)
    save_checkpoint(d, build_model("resnet", **args), {"arch": "resnet", "model_args": args, "classes": list(EMOTIONS)})
    return load_checkpoint(d)


@pytest.fixture
def real_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
