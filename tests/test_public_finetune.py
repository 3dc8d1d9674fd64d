"""DP fine-tuning past the head of a public backbone (``--dp-method public-finetune --arch facex --trainable
last-block``): the model's own copies of facex's last blocks start as the public ones, train (all their parameters or
their biases only) with the head on the frozen trunk's cached output, and are stored in the checkpoint while the
public backbone stays shared and unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import write_npz
from safetensors.torch import load_file

from fer_core.data.datasets import load_dataset
from fer_core.data.preprocess import to_model_input
from fer_core.evaluation.evaluate import evaluate_split
from fer_core.models.architectures import build_model, split_for_finetune
from fer_core.models.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from fer_core.models.facex import FACEX_BACKBONE_DIR, tap_channels, tap_names, tap_size, tensor_digest
from fer_core.privacy.accounting import PrivacyError
from fer_core.training.config import TrainConfig
from fer_core.training.lifecycle import main

FEATURES = ["block_13_expand", "block_16_project"]
RANDOM = {"backbone": None, "features": FEATURES}


def _random_pair(finetune_blocks: int, **kw):
    """A head-only model and one with ``finetune_blocks`` sharing the same random backbone and head."""
    torch.manual_seed(0)
    plain = build_model("facex", **RANDOM).eval()
    tuned = build_model("facex", **RANDOM, finetune_blocks=finetune_blocks, **kw).eval()
    tuned.backbone.load_state_dict(plain.backbone.state_dict())
    tuned.head.load_state_dict(plain.head.state_dict())
    for i, block in enumerate(tuned.tuned):  # the copies start as the public blocks (here: the random ones)
        block.load_state_dict(plain.backbone.blocks[tuned.first_tuned + i].state_dict())
    return plain, tuned


def test_tap_sizes_are_the_backbones_map_sides():
    torch.manual_seed(0)
    backbone = build_model("facex", **RANDOM).backbone.eval()
    with torch.no_grad():
        taps = backbone.forward_taps(torch.rand(1, 3, 200, 200), tap_names())
    assert {k: v.shape[-1] for k, v in taps.items()} == {k: tap_size(k) for k in tap_names()}


@pytest.mark.parametrize("finetune_blocks", [1, 3, 4])
def test_finetuned_copies_start_as_the_public_blocks_and_the_split_reproduces_the_model(finetune_blocks):
    plain, tuned = _random_pair(finetune_blocks)
    assert tuned.first_tuned == 17 - finetune_blocks and tuned.trunk_tap == f"block_{16 - finetune_blocks}_project"
    x = torch.rand(3, 1, 48, 48)
    prefix, tail = split_for_finetune(tuned, "last-block")
    with torch.no_grad():
        z = prefix(x)
        torch.testing.assert_close(tuned(x), plain(x), rtol=1e-5, atol=1e-5)  # same weights, same logits
        torch.testing.assert_close(tail(z), tuned(x), rtol=1e-5, atol=1e-5)  # tail(prefix(x)) == model(x)
        torch.testing.assert_close(tail.head_input(z), plain.extract(x), rtol=1e-5, atol=1e-5)
    frozen = sum(tap_channels(f) for f in tuned.frozen_features)
    trunk = tap_channels(tuned.trunk_tap) * tap_size(tuned.trunk_tap) ** 2
    assert z.shape == (3, frozen + trunk)  # block 13's expansion (576) lies before blocks 14-16, not before 13-16
    assert tuned.frozen_features == (() if finetune_blocks == 4 else ("block_13_expand",))
    # The prefix depends on the public weights only: changing a tuned copy changes the tail, not the prefix's cache.
    identity = prefix.cache_identity()
    with torch.no_grad():
        tuned.tuned[-1].project.bias.add_(1.0)
        assert torch.equal(prefix(x), z) and prefix.cache_identity() == identity
        assert not torch.allclose(tail(z), plain(x), atol=1e-3)


def test_bias_only_finetuning_trains_the_biases_and_the_head_with_exact_per_sample_gradients():
    from opacus import GradSampleModule

    _, model = _random_pair(2, finetune_params="bias")
    prefix, tail = split_for_finetune(model, "last-block")
    trainable = tail.trainable_parameters()
    names = {n for n, p in model.named_parameters() if any(p is q for q in trainable)}
    assert names == {n for n, _ in model.named_parameters()
                     if n.startswith("head.") or (n.startswith("tuned.") and n.endswith(".bias"))}
    for p in model.parameters():
        p.requires_grad_(any(p is q for q in trainable))
    x, y = torch.rand(4, 1, 48, 48), torch.tensor([0, 3, 6, 2])
    with torch.no_grad():
        z = prefix(x)
    plain = copy.deepcopy(tail).train()
    dp_tail = GradSampleModule(tail.train(), loss_reduction="sum")
    torch.nn.functional.cross_entropy(dp_tail(z), y, reduction="sum").backward()
    params = [p for p in tail.parameters() if p.requires_grad]
    plain_params = [p for p in plain.parameters() if p.requires_grad]
    assert len(params) == len(trainable) and all(p.grad_sample.shape[0] == 4 for p in params)
    assert all(getattr(p, "grad_sample", None) is None for p in tail.parameters() if not p.requires_grad)
    for row in range(len(y)):  # each face's own gradient, by plain autograd
        loss = torch.nn.functional.cross_entropy(plain(z[row:row + 1]), y[row:row + 1], reduction="sum")
        for p, g in zip(params, torch.autograd.grad(loss, plain_params), strict=True):
            torch.testing.assert_close(p.grad_sample[row], g, rtol=1e-4, atol=1e-6)


def test_a_checkpoint_stores_the_tuned_copies_and_shares_the_unchanged_public_backbone(tmp_path):
    model = build_model("facex", features=FEATURES, finetune_blocks=1, finetune_params="bias").eval()
    public = tensor_digest(model.backbone)
    with torch.no_grad():
        model.tuned[0].expand.bias.add_(0.5)  # as if fine-tuned
    save_checkpoint(tmp_path / "ck", model, {"arch": "facex", "model_args": {
        "features": FEATURES, "finetune_blocks": 1, "finetune_params": "bias"}, "classes": list("abcdefg")})
    stored = load_file(str(tmp_path / "ck" / WEIGHTS_FILE))
    assert any(k.startswith("tuned.0.") for k in stored) and not any(k.startswith("backbone.") for k in stored)
    back = load_checkpoint(tmp_path / "ck").model
    assert tensor_digest(back.backbone) == public  # the shared public weights, as shipped
    torch.testing.assert_close(back.tuned[0].expand.bias, model.tuned[0].expand.bias)
    assert not torch.equal(back.tuned[0].expand.bias, back.backbone.blocks[16].expand.bias)
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
    assert back.shared_weights()["backbone."]["folder"] == f"checkpoints/{FACEX_BACKBONE_DIR}"


def _config(out, npz, **kw) -> TrainConfig:
    base = dict(out=str(out), data=str(npz), arch="facex", dp_method="public-finetune", trainable="last-block",
                model_args={**RANDOM, "finetune_blocks": 1, "finetune_params": "bias"}, epsilon=8.0, delta=1e-3,
                epochs=2, batch_size=32, lr=1.0, optimizer="sgd", momentum=0.5, weight_decay=0.0,
                label_smoothing=0.0, warmup_epochs=0.0, ema_decay=0.0, augment={}, progress=False,
                channels_last=False)
    return TrainConfig(**{**base, **kw})


def test_public_finetune_run_trains_the_tuned_biases_privately_and_its_card_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the trunk's cache goes to ./runs/features
    npz = write_npz(tmp_path / "s.npz", n_train=64, n_val=32, n_test=16)
    result = main(_config(tmp_path / "run", npz, export=str(tmp_path / "ck")), command="pytest")
    assert result["finished"] and result["epsilon"] == pytest.approx(8.0, abs=0.1)
    ck = load_checkpoint(tmp_path / "ck")
    p = ck.card["privacy"]
    assert p["method"] == "public-finetune" and p["trainable"] == "last-block" and p["private_rows"] == 64
    assert p["finetuned_blocks"].startswith("facex blocks 16-16")
    assert p["feature_standardisation"].startswith("PublicTest statistics")
    assert list((tmp_path / "runs" / "features").rglob("*.npy"))  # the trunk was cached on disk
    model = ck.model
    public = model.backbone.blocks[16]
    assert torch.equal(model.tuned[0].expand.weight, public.expand.weight)  # weights frozen (bias only)
    assert not torch.equal(model.tuned[0].expand.bias, public.expand.bias)  # biases trained
    # The standardiser holds PublicTest's statistics of the features at the public weights.
    ds = load_dataset(npz)
    with torch.no_grad():
        start = copy.deepcopy(model)
        for i, block in enumerate(start.tuned):
            block.load_state_dict(start.backbone.blocks[start.first_tuned + i].state_dict())
        pub = start.extract(to_model_input(ds.split("PublicTest")[0]))
    torch.testing.assert_close(model.head[0].mean, pub.mean(0), rtol=1e-4, atol=1e-5)
    # The card's figures (tail over the cached trunk) are those of the full network, as `evaluate` runs it.
    for split in ("PublicTest", "PrivateTest"):
        full = evaluate_split(model, ds, split, class_names=ck.classes)
        assert full["accuracy"] == pytest.approx(ck.card["metrics"][split]["accuracy"], abs=1e-9)


def test_public_finetune_settings_are_checked(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=64, n_val=32, n_test=16)
    with pytest.raises(PrivacyError, match="last-block"):
        main(_config(tmp_path, npz, trainable="head"))
    with pytest.raises(PrivacyError, match="finetune_blocks"):
        main(_config(tmp_path, npz, model_args=RANDOM))
    with pytest.raises(PrivacyError, match="head only"):
        main(_config(tmp_path, npz, dp_method="public-features"))
    _, model = _random_pair(1)
    with pytest.raises(ValueError, match="trainable='last-block'"):
        split_for_finetune(model, "head")
    with pytest.raises(ValueError, match="0 to 4"):
        build_model("facex", **RANDOM, finetune_blocks=5)
    with pytest.raises(ValueError, match="no feature"):
        build_model("facex", backbone=None, features=["block_13_expand"], finetune_blocks=1)
    with pytest.raises(ValueError, match="mirror_views"):
        build_model("facex", **RANDOM, finetune_blocks=1, mirror_views=True)
    with pytest.raises(ValueError, match="finetune_params"):
        build_model("facex", **RANDOM, finetune_blocks=1, finetune_params="weights")
