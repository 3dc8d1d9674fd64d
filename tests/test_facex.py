"""facex's public MobileNetV2 as a torch module: shapes, the shipped converted weights and their provenance,
dequantisation, and (with the optional packages) agreement with the wheel's own TFLite runtime."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json

import numpy as np
import pytest
import torch
from conftest import REPO, make_faces
from safetensors.torch import load_file

import fer_core.models.facex_tflite as conv
from fer_core.data.datasets import load_dataset
from fer_core.data.preprocess import to_model_input
from fer_core.models.architectures import build_model, split_for_finetune
from fer_core.models.checkpoint import list_checkpoints
from fer_core.models.facex import (
    FACEX_BACKBONE_DIR,
    PROVENANCE_FILE,
    FaceXBackbone,
    FaceXNet,
    tap_channels,
    tap_names,
)
from fer_core.models.facex_tflite import (
    MAX_DISJOINTNESS_AUC,
    TFLITE_COPY,
    _dequantise,
    facex_tflite_path,
    file_sha256,
    layer_check,
    quantise_like_tflite,
    read_facex_weights,
    runtime_check,
)

SHIPPED = REPO / "checkpoints" / FACEX_BACKBONE_DIR
# ai-edge-litert is in requirements.txt; the .tflite comes from the facex wheel or the copy shipped in SHIPPED.
needs_litert = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                                  reason="needs ai-edge-litert (pip install -r requirements.txt)")
# Re-converting needs the wheel itself (its version and licence are read from its metadata).
needs_wheel = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None
                                 or importlib.util.find_spec("facex") is None,
                                 reason="needs the optional facex wheel (pip install --no-deps -r "
                                 "requirements-public.txt)")


def test_random_backbone_taps_and_head_shapes():
    torch.manual_seed(0)
    model = FaceXNet(backbone=None).eval()
    x = to_model_input(make_faces(2)[0])  # (2, 1, 48, 48)
    with torch.no_grad():
        taps = model.backbone.forward_taps(torch.rand(2, 3, 200, 200), ("block_13_expand", "block_16_project",
                                                                          "logits"))
        logits, feats = model(x), model.extract(x)
    assert taps["block_13_expand"].shape == (2, 576, 12, 12) and taps["block_16_project"].shape == (2, 320, 6, 6)
    assert taps["logits"].shape == (2, 7) and logits.shape == (2, 7) and feats.shape == (2, 896)
    assert model.feature_dim == 896 == tap_channels("block_13_expand") + tap_channels("block_16_project")
    assert len(tap_names()) == 1 + 16 * 2 + 1 + 1  # conv1, 16 expanding blocks x2, block 0, conv_last
    with pytest.raises(ValueError, match="unknown facex feature"):
        FaceXNet(backbone=None, features=("block_99_expand",))


def test_split_for_finetune_gives_the_model_and_trains_only_the_head():
    torch.manual_seed(0)
    model = build_model("facex", backbone=None).eval()
    prefix, tail = split_for_finetune(model, "head")
    x = to_model_input(make_faces(2)[0])
    with torch.no_grad():
        torch.testing.assert_close(tail(prefix(x)), model(x))
    assert {id(p) for p in tail.parameters()} == {id(p) for p in model.head.parameters()}
    assert not list(tail[0].parameters())  # the standardiser has buffers only
    assert len(prefix.cache_identity()["backbone_sha256"]) == 64
    with pytest.raises(ValueError, match="trainable='head'"):
        split_for_finetune(model, "all")
    # The state dict stores the backbone once (the prefix is not a submodule).
    assert not any(k.startswith("prefix") for k in model.state_dict())


class _FakeInterpreter:
    def __init__(self, q):
        self.q = q

    def get_tensor(self, index):
        return self.q


def test_dequantise_int8_in_uint8_buffers_and_zero_points():
    q = np.array([[0, 1, 255, 128]], np.uint8)  # int8 values 0, 1, -1, -128 in a UINT8 buffer
    params = {"scales": np.array([0.5], np.float32), "zero_points": np.array([0]), "quantized_dimension": 0}
    out = _dequantise(_FakeInterpreter(q), {"index": 0, "quantization_parameters": params})
    np.testing.assert_allclose(out, [[0, 0.5, -0.5, -64]])
    params = {"scales": np.array([0.5], np.float32), "zero_points": np.array([128]), "quantized_dimension": 0}
    out = _dequantise(_FakeInterpreter(q), {"index": 0, "quantization_parameters": params})
    np.testing.assert_allclose(out, [[-64, -63.5, 63.5, 0]])  # a true uint8 tensor with zero point 128
    q2 = np.array([[1, 2], [3, 4]], np.int8)  # per output channel (axis 0)
    params = {"scales": np.array([1.0, 10.0], np.float32), "zero_points": np.array([0, 0]), "quantized_dimension": 0}
    np.testing.assert_allclose(_dequantise(_FakeInterpreter(q2), {"index": 0, "quantization_parameters": params}),
                               [[1, 2], [30, 40]])


def test_shipped_converted_weights_load_and_give_finite_outputs():
    """Runs without the optional packages: the converted weights in checkpoints/public/ are all it needs."""
    model = build_model("facex").eval()  # default backbone: checkpoints/public/facex_mobilenetv2
    faces, _ = make_faces(3)
    with torch.no_grad():
        logits = model(to_model_input(faces))
        own = model.backbone(torch.rand(3, 3, 200, 200))
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    assert own.shape == (3, 7) and torch.isfinite(own).all()
    assert sum(p.numel() for p in model.backbone.parameters()) > 2_000_000  # MobileNetV2 + facex's 46,080x7 head


def test_shipped_backbone_provenance_licence_and_disjointness():
    record = json.loads((SHIPPED / PROVENANCE_FILE).read_text())
    assert record["package"] == "facex" and record["version"] == "1.1.0"
    assert record["file_in_wheel"] == "facex/assets/model_optimized.tflite" and len(record["tflite_sha256"]) == 64
    assert record["license"] == "MIT" and "MIT License" in (SHIPPED / "LICENSE").read_text()
    assert "AffectNet" in record["trained_on"]
    d = record["disjointness"]
    assert d["auc"] <= MAX_DISJOINTNESS_AUC and d["n_members"] >= 500 and d["n_nonmembers"] >= 500
    assert d["auc_interval"][0] <= 0.5 + 0.05 and d["auc_interval"][0] < d["auc"] < d["auc_interval"][1]
    layers = record["runtime_check"]["layers"]  # the converter's layer-by-layer check against the wheel's runtime
    assert layers["layers"] == 53 and layers["max_abs_diff"] <= 1e-4 and layers["n"] >= 20
    # A backbone is not an emotion model: the app's model picker never lists it.
    assert all("public" not in p.parts for p in list_checkpoints(REPO / "checkpoints"))
    assert not (SHIPPED / "model.json").exists()


@needs_litert
def test_rebuilt_weights_match_the_shipped_file():
    record = json.loads((SHIPPED / PROVENANCE_FILE).read_text())
    assert file_sha256(facex_tflite_path()) == record["tflite_sha256"]
    shipped = load_file(str(SHIPPED / "model.safetensors"))
    for k, v in read_facex_weights(facex_tflite_path()).items():
        torch.testing.assert_close(v, shipped[k], rtol=0, atol=0, msg=k)


def test_shipped_tflite_copy_is_the_converted_file_and_a_changed_copy_is_refused(tmp_path, monkeypatch):
    record = json.loads((SHIPPED / PROVENANCE_FILE).read_text())
    assert file_sha256(SHIPPED / TFLITE_COPY) == record["tflite_sha256"] and record["tflite_copy"] == TFLITE_COPY

    def no_wheel(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(conv.importlib.metadata, "distribution", no_wheel)
    assert facex_tflite_path() == SHIPPED / TFLITE_COPY  # without the wheel: the shipped copy
    copy = tmp_path / FACEX_BACKBONE_DIR
    copy.mkdir(parents=True)
    (copy / PROVENANCE_FILE).write_text((SHIPPED / PROVENANCE_FILE).read_text())
    data = bytearray((SHIPPED / TFLITE_COPY).read_bytes())
    data[-100] ^= 1
    (copy / TFLITE_COPY).write_bytes(bytes(data))
    monkeypatch.setattr(conv, "checkpoint_dir", lambda: tmp_path)
    with pytest.raises(conv.PublicModelError, match="sha256 differs"):
        facex_tflite_path()
    (copy / TFLITE_COPY).unlink()
    with pytest.raises(conv.PublicModelError, match="requirements-public.txt"):
        facex_tflite_path()


def test_tflite_input_quantisation_is_symmetric_int8_per_tensor():
    x = np.array([[-2.0, 0.5], [1.0, 0.0]], np.float32)
    q = quantise_like_tflite(x)
    step = np.float32(2.0 / 127)
    np.testing.assert_allclose(q, np.array([[-127, 32], [64, 0]]) * step, rtol=1e-6)  # 0.5 / step = 31.75
    assert q.dtype == np.float32 and q.shape == x.shape
    # Ties round half away from zero (std::round), not to even: scale 1 when max |x| is 127.
    np.testing.assert_array_equal(quantise_like_tflite(np.array([127, 2.5, -2.5, 0.5], np.float32)), [127, 3, -3, 1])
    assert np.array_equal(quantise_like_tflite(np.zeros(3, np.float32)), np.zeros(3, np.float32))


@needs_litert
def test_every_converted_layer_equals_the_wheels_runtime_op(real_data):
    """The known-answer check of the conversion: each of the graph's 53 weight ops, fed the runtime's own input
    tensor, against the torch layer with the converted weights. The 34 ops on int8 kernels run TFLite's
    dynamic-range kernels, which quantise their input to int8 first (emulated by ``quantise_like_tflite``); the
    int8 products are exact, so what is left is float32 summation order: tolerance 1e-4 on outputs up to ~50
    (measured 1.1e-5). A layer converted wrongly (here: one kernel's output channels swapped) is named."""
    backbone = FaceXBackbone()
    backbone.load_state_dict(load_file(str(SHIPPED / "model.safetensors")))
    faces, _ = load_dataset(real_data).split("PrivateTest")
    check = layer_check(facex_tflite_path(), backbone, faces[:6])
    assert check["layers"] == 53 and check["hybrid_layers"] == 34 and check["n"] == 6
    assert check["max_abs_diff"] <= 1e-4 and check["max_abs_output"] > 10
    with torch.no_grad():
        w = backbone.blocks[5].project.weight
        w[[0, 1]] = w[[1, 0]].clone()
    broken = layer_check(facex_tflite_path(), backbone, faces[:2])
    assert broken["worst_layer"] == "block_5_project" and broken["max_abs_diff"] > 1e-2


@needs_litert
def test_torch_rebuild_agrees_with_the_wheels_tflite_runtime(real_data):
    """facex's own runtime vs the torch module end to end on 200 real FER2013 PrivateTest faces, same 200x200 input.

    End to end, exact equality is not expected even though every layer agrees (the test above): TFLite's
    dynamic-range kernels quantise each int8-kernel layer's activations to int8 on the fly (per face), the torch
    module keeps float32 activations, and the rounding compounds through 17 blocks and the 46,080-wide head.
    Tolerances, from 300 faces measured at 0.048 x the largest logit, 0.9986 and 0.967: max |delta logit| (pre-softmax)
    <= 0.1 x the largest |logit|, logit correlation >= 0.995, argmax agreement >= 0.93 (near-tied faces flip)."""
    backbone = FaceXBackbone()
    backbone.load_state_dict(load_file(str(SHIPPED / "model.safetensors")))
    faces, _ = load_dataset(real_data).split("PrivateTest")
    check = runtime_check(facex_tflite_path(), backbone, faces[:200], layer_faces=0)
    assert check["n"] == 200 and "layers" not in check
    assert check["max_abs_logit_diff"] <= 0.1 * check["max_abs_logit"]
    assert check["logit_correlation"] >= 0.995
    assert check["argmax_agreement"] >= 0.93
    assert min(check["feature_correlation"].values()) >= 0.99


@needs_wheel
def test_converter_refuses_a_backbone_that_separates_training_from_test(tmp_path, monkeypatch):


    monkeypatch.setattr(conv, "disjointness_check", lambda *a, **k: {"auc": 0.7})
    with pytest.raises(conv.PublicModelError, match="may have trained on FER2013"):
        conv.convert_facex(tmp_path / "out", n_check=0)
    assert not (tmp_path / "out").exists()
