"""The fast runtime (ONNX Runtime) against the torch reference path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_core.inference.runtime import PROBABILITY_TOLERANCE, OnnxModule, fast
from fer_core.models.checkpoint import Checkpoint, load_checkpoint
from fer_core.models.predict import classify_faces, face_probabilities


def test_fast_path_gives_torch_probabilities_at_any_batch_size(random_ckpt):
    f = fast(random_ckpt)
    assert isinstance(f.model, OnnxModule) and f.card is random_ckpt.card and f.path == random_ckpt.path
    assert not isinstance(random_ckpt.model, OnnxModule), "the cached checkpoint is never modified"
    faces = np.random.default_rng(0).integers(0, 256, (67, 48, 48), dtype=np.uint8)
    for n in (1, 5, 67):
        want, got = face_probabilities(random_ckpt, faces[:n]), face_probabilities(f, faces[:n])
        assert np.abs(want - got).max() < PROBABILITY_TOLERANCE
    assert [r["label"] for r in classify_faces(f, faces)] == [r["label"] for r in classify_faces(random_ckpt, faces)]
    assert fast(f) is f and fast(random_ckpt, runtime="torch") is random_ckpt
    with pytest.raises(ValueError, match="runtime"):
        fast(random_ckpt, runtime="tensorrt")


class _NoExport(torch.nn.Module):
    """A classifier that refuses to be traced (stands for a network ONNX cannot express)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(48 * 48, 7)

    def forward(self, x):
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            raise RuntimeError("no export for this one")
        return self.fc(x.flatten(1))


def test_a_network_that_does_not_export_keeps_the_torch_path(random_ckpt):
    ck = Checkpoint(model=_NoExport().eval(), card=random_ckpt.card, path=random_ckpt.path)
    with pytest.warns(UserWarning, match="using torch"):
        assert fast(ck) is ck


def test_a_mirror_views_classifier_runs_on_onnx_at_any_batch_size(random_ckpt):
    from fer_core.models.architectures import build_model

    model = build_model("facex", backbone=None, features=["conv1", "block_1_project"], mirror_views=True).eval()
    ck = Checkpoint(model=model, card=random_ckpt.card, path=random_ckpt.path)
    f = fast(ck)
    assert isinstance(f.model, OnnxModule)  # the mean over both views is not traced at the probe's batch size
    faces = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    for n in (1, 5):
        gap = np.abs(face_probabilities(ck, faces[:n]) - face_probabilities(f, faces[:n])).max()
        assert gap < PROBABILITY_TOLERANCE


@pytest.mark.realdata
def test_shipped_model_on_the_fast_path_agrees_with_torch_on_privatetest(real_data):
    data = np.load(real_data)
    faces = data["images"][data["usage"] == "PrivateTest"]
    ck = load_checkpoint()
    want, got = face_probabilities(ck, faces), face_probabilities(fast(ck), faces)
    # Same network, float32 on both sides; only the kernels' summation order differs.
    assert (want.argmax(1) == got.argmax(1)).mean() >= 0.999
    assert np.abs(want - got).max() < PROBABILITY_TOLERANCE
