"""DP head on frozen public features (``--dp-method public-features --arch facex --trainable head``): every
Training row private, features cached on disk once, standardisation from PublicTest statistics only."""

from __future__ import annotations

import pytest
import torch
from conftest import make_faces, write_npz
from torch import nn

from fer_core.data.datasets import load_dataset
from fer_core.data.preprocess import to_model_input
from fer_core.evaluation.evaluate import evaluate_split
from fer_core.models.architectures import build_model, split_for_finetune
from fer_core.models.checkpoint import load_checkpoint
from fer_core.privacy.accounting import PrivacyError
from fer_core.training.config import TrainConfig
from fer_core.training.features import cached_features, feature_cache_path, library_rows, prefix_features
from fer_core.training.lifecycle import main
from fer_core.training.private import public_statistics

FACEX_RANDOM = {"backbone": None, "features": ["conv1", "block_1_project"]}  # random, shallow: fast, input-dependent


def _config(out, npz, **kw) -> TrainConfig:
    base = dict(out=str(out), data=str(npz), arch="facex", model_args=FACEX_RANDOM, dp_method="public-features",
                trainable="head", epsilon=8.0, delta=1e-3, epochs=2, batch_size=32, lr=1.0, optimizer="sgd",
                momentum=0.5, weight_decay=0.0, label_smoothing=0.0, warmup_epochs=0.0, ema_decay=0.0,
                augment={}, progress=False, channels_last=False)
    return TrainConfig(**{**base, **kw})


class _CountingPrefix(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def cache_identity(self) -> dict:
        return {"arch": "test", "backbone_sha256": "0" * 64}

    def forward(self, x):
        self.calls += 1
        return x.flatten(1)[:, :5]


def test_feature_cache_is_keyed_by_prefix_data_and_faces_and_reused(tmp_path):
    faces, _ = make_faces(10)
    prefix = _CountingPrefix()
    a = cached_features(prefix, faces, "ab" * 32, cache_dir=tmp_path, progress=False)
    calls = prefix.calls
    b = cached_features(prefix, faces, "ab" * 32, cache_dir=tmp_path, progress=False)
    assert prefix.calls == calls and torch.equal(a, b) and a.shape == (10, 5)
    assert feature_cache_path(prefix.cache_identity(), faces, "ab" * 32, tmp_path).is_file()
    assert feature_cache_path(prefix.cache_identity(), faces[:9], "ab" * 32, tmp_path) != \
        feature_cache_path(prefix.cache_identity(), faces, "ab" * 32, tmp_path)
    assert feature_cache_path(prefix.cache_identity(), faces, "cd" * 32, tmp_path) != \
        feature_cache_path(prefix.cache_identity(), faces, "ab" * 32, tmp_path)


class _PythonSidePrefix(_CountingPrefix):
    """Exports to ONNX, but wrongly: its numpy step becomes a constant of the traced graph."""

    def forward(self, x):
        return torch.from_numpy(x.numpy()[:, 0, :2, :3].reshape(len(x), 6).copy()) * 2.0


def test_features_leave_the_onnx_path_when_it_does_not_reproduce_torch(tmp_path):
    from fer_core.training.features import compute_features

    faces, _ = make_faces(10)
    exporting = _CountingPrefix()  # a slice: ONNX Runtime reproduces it exactly
    assert torch.equal(compute_features(exporting, faces, progress=False), exporting(to_model_input(faces)))
    wrong = _PythonSidePrefix()
    assert torch.equal(compute_features(wrong, faces, progress=False), wrong(to_model_input(faces)))


def test_a_subset_of_the_library_is_looked_up_not_recomputed(tmp_path):
    faces, _ = make_faces(12)
    faces[7] = faces[3]  # a duplicate face: either row serves, the features are equal
    prefix = _CountingPrefix()
    everything = cached_features(prefix, faces, "ab" * 32, cache_dir=tmp_path, progress=False)
    calls = prefix.calls
    subset = faces[[9, 2, 7, 2]]
    looked_up = cached_features(prefix, subset, "ab" * 32, cache_dir=tmp_path, progress=False, library=faces)
    assert prefix.calls == calls  # no pass through the prefix
    assert torch.equal(looked_up, everything[[9, 2, 7, 2]])
    assert torch.equal(looked_up, prefix(to_model_input(subset)))  # what a direct pass gives
    outsider, _ = make_faces(1, seed=99)
    assert library_rows(faces, outsider) is None
    direct = cached_features(prefix, outsider, "ab" * 32, cache_dir=tmp_path, progress=False, library=faces)
    assert torch.equal(direct, prefix(to_model_input(outsider)))  # not in the library: computed as is


def test_scattering_and_trunk_outputs_are_computed_once_per_identity_and_looked_up():
    from conftest import TINY_RESNET

    faces, _ = make_faces(20)
    scatter_net = build_model("scatternet", num_classes=7)
    prefix, _ = split_for_finetune(scatter_net, "all")
    sub = faces[[4, 0, 19]]
    got = prefix_features(prefix, sub, "ab" * 32, library=faces)
    assert torch.allclose(got, prefix(to_model_input(sub)), atol=1e-6)
    other, _ = split_for_finetune(build_model("scatternet", num_classes=7), "all")  # another head, same scattering
    assert other.feature_identity() == prefix.feature_identity()
    trunk_a, _ = split_for_finetune(build_model("resnet", num_classes=7, **TINY_RESNET), "head")
    trunk_b, _ = split_for_finetune(build_model("resnet", num_classes=7, **TINY_RESNET), "head")
    assert trunk_a.feature_identity() != trunk_b.feature_identity()  # other weights, other features
    trunk_b.model.load_state_dict(trunk_a.model.state_dict())
    trunk_b.model.fc.weight.data += 1.0  # the head is not part of the trunk's identity
    assert trunk_a.feature_identity() == trunk_b.feature_identity()
    assert torch.allclose(prefix_features(trunk_a.eval(), sub, "ab" * 32, library=faces), trunk_a(to_model_input(sub)),
                          atol=1e-5)


def test_public_statistics_are_mean_and_unbiased_std():
    f = torch.randn(50, 4) * 3 + 1
    mean, std = public_statistics(f)
    torch.testing.assert_close(mean, f.mean(0))
    torch.testing.assert_close(std, f.std(0))


def test_public_features_run_standardises_with_publictest_and_records_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the feature cache goes to ./runs/features
    npz = write_npz(tmp_path / "s.npz", n_train=64, n_val=32, n_test=16)
    result = main(_config(tmp_path / "run", npz, export=str(tmp_path / "ck")), command="pytest")
    assert result["finished"] and result["epsilon"] == pytest.approx(8.0, abs=0.1)
    ck = load_checkpoint(tmp_path / "ck")
    p = ck.card["privacy"]
    assert p["method"] == "public-features" and p["private_rows"] == 64
    assert p["feature_standardisation"] == "PublicTest statistics" and p["trainable"] == "head"
    assert p["public_backbones"] == [{}]  # a random backbone has no provenance
    assert list((tmp_path / "runs" / "features").rglob("*.npy"))  # features were cached on disk
    # The standardiser holds PublicTest's statistics, not Training's.
    ds = load_dataset(npz)
    torch.manual_seed(0)
    model = build_model("facex", **FACEX_RANDOM)
    model.backbone.load_state_dict(ck.model.backbone.state_dict())
    prefix, _ = split_for_finetune(model, "head")
    with torch.no_grad():
        pub = prefix(to_model_input(ds.split("PublicTest")[0]))
        train = prefix(to_model_input(ds.split("Training")[0]))
    torch.testing.assert_close(ck.model.head[0].mean, pub.mean(0), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ck.model.head[0].mean, train.mean(0), rtol=1e-4, atol=1e-5)
    # The card's figures (head over cached features) are those of the full network, as `evaluate` runs it.
    for split in ("PublicTest", "PrivateTest"):
        full = evaluate_split(ck.model, ds, split, class_names=ck.classes)
        assert full["accuracy"] == pytest.approx(ck.card["metrics"][split]["accuracy"], abs=1e-9)
        assert full["accuracy_flip_tta"] == pytest.approx(ck.card["metrics"][split]["accuracy_flip_tta"], abs=1e-9)


@pytest.mark.parametrize("multiplicity", [1, 2])
def test_public_features_with_mirror_views_cache_the_mirrored_faces_and_predict_the_mean_of_both(tmp_path,
                                                                                                    monkeypatch,
                                                                                                    multiplicity):
    monkeypatch.chdir(tmp_path)
    npz = write_npz(tmp_path / "s.npz", n_train=64, n_val=32, n_test=16)
    args = {**FACEX_RANDOM, "mirror_views": True, "augmentation_multiplicity": multiplicity}
    assert main(_config(tmp_path / "run", npz, model_args=args, export=str(tmp_path / "ck")), command="pytest")[
        "finished"]
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.card["model_args"]["mirror_views"] is True
    assert ck.card["model_args"]["augmentation_multiplicity"] == multiplicity
    assert ck.model.classifier.multiplicity == multiplicity
    ds = load_dataset(npz)
    faces = ds.split("PublicTest")[0]
    prefix, tail = split_for_finetune(ck.model, "head")
    one = prefix.one_view().eval()
    with torch.no_grad():
        x = to_model_input(faces)
        views = prefix_features(prefix, faces, ds.sha256)  # from the disk cache: (N, 2, D)
        torch.testing.assert_close(views[:, 0], one(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(views[:, 1], one(x.flip(-1)), rtol=1e-4, atol=1e-5)  # the mirrored faces' features
        pub = views.flatten(0, 1)  # the standardiser holds both views' PublicTest statistics
        torch.testing.assert_close(ck.model.head[0].mean, pub.mean(0), rtol=1e-4, atol=1e-5)
        mean = (ck.model.head(one(x)) + ck.model.head(one(x.flip(-1)))) / 2
        torch.testing.assert_close(ck.model(x), mean, rtol=1e-4, atol=1e-5)  # eval: test-time augmentation
    full = evaluate_split(ck.model, ds, "PrivateTest", class_names=ck.classes)
    assert full["accuracy"] == pytest.approx(ck.card["metrics"]["PrivateTest"]["accuracy"], abs=1e-9)


def test_facex_augmentation_multiplicity_2_trains_on_the_mean_of_both_views_with_one_gradient_per_face():
    from opacus import GradSampleModule

    torch.manual_seed(0)
    model = build_model("facex", **FACEX_RANDOM, mirror_views=True, augmentation_multiplicity=2).train()
    prefix, tail = split_for_finetune(model, "head")
    x, y = torch.rand(4, 1, 48, 48), torch.tensor([0, 3, 6, 2])
    with torch.no_grad():
        views = prefix(x)  # (4, 2, D)
        torch.testing.assert_close(tail(views), (model.head(views[:, 0]) + model.head(views[:, 1])) / 2)
    dp_tail = GradSampleModule(tail, loss_reduction="sum")
    torch.nn.functional.cross_entropy(dp_tail(views), y, reduction="sum").backward()
    weight = model.head[1].weight
    assert weight.grad_sample.shape == (4, *weight.shape)  # one gradient per face, not per view
    with pytest.raises(ValueError, match="set mirror_views=True"):
        build_model("facex", **FACEX_RANDOM, augmentation_multiplicity=2)
    with pytest.raises(ValueError, match="must be 1 or 2"):
        build_model("facex", **FACEX_RANDOM, mirror_views=True, augmentation_multiplicity=3)


def test_public_features_settings_are_checked(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=64, n_val=32, n_test=16)
    with pytest.raises(PrivacyError, match="go together"):
        main(_config(tmp_path, npz, arch="resnet", model_args={}))
    with pytest.raises(PrivacyError, match="go together"):
        main(_config(tmp_path, npz, dp_method="dp-sgd"))
    with pytest.raises(PrivacyError, match="head only"):
        main(_config(tmp_path, npz, trainable="all"))
    with pytest.raises(PrivacyError, match="selection split"):
        main(_config(tmp_path, npz, val_split="Training"))


def test_per_channel_public_statistics_pool_every_position():
    maps = torch.randn(20, 3, 4, 5) * torch.tensor([1.0, 2.0, 5.0]).view(1, 3, 1, 1) + 7
    mean, std = public_statistics(maps, per_channel=True)
    flat = maps.transpose(0, 1).reshape(3, -1)  # (C, N*H*W)
    torch.testing.assert_close(mean, flat.mean(1))
    torch.testing.assert_close(std, flat.std(1))


def test_scatternet_with_publictest_norm_standardises_its_coefficients_with_publictest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the scattering cache goes to ./runs/features
    npz = write_npz(tmp_path / "s.npz", n_train=64, n_val=32, n_test=16)
    cfg = _config(tmp_path / "run", npz, arch="scatternet", dp_method="scatternet", trainable="all",
                  model_args={"width": 8, "input_norm": "publictest"}, epochs=1, export=str(tmp_path / "ck"))
    assert main(cfg, command="pytest")["finished"]
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.card["privacy"]["feature_standardisation"] == "PublicTest statistics"
    assert ck.card["model_args"]["input_norm"] == "publictest"
    ds = load_dataset(npz)
    with torch.no_grad():
        pub = ck.model.scatter(to_model_input(ds.split("PublicTest")[0]))  # (N, 81, 12, 12)
        train = ck.model.scatter(to_model_input(ds.split("Training")[0]))
    standardiser = ck.model.head[0]
    torch.testing.assert_close(standardiser.mean, pub.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(standardiser.scale, pub.transpose(0, 1).reshape(81, -1).std(1), rtol=1e-3, atol=1e-5)
    assert not torch.allclose(standardiser.mean, train.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)
    # The standardised coefficients of PublicTest have zero mean and unit deviation per channel.
    with torch.no_grad():
        z = standardiser(pub)
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(81), atol=1e-4, rtol=0)
    full = evaluate_split(ck.model, ds, "PrivateTest", class_names=ck.classes)
    assert full["accuracy"] == pytest.approx(ck.card["metrics"]["PrivateTest"]["accuracy"], abs=1e-9)


@pytest.mark.parametrize("multiplicity", [1, 2])
def test_scatternet_with_mirror_views_standardises_both_views_with_publictest(tmp_path, monkeypatch, multiplicity):
    monkeypatch.chdir(tmp_path)
    npz = write_npz(tmp_path / "s.npz", n_train=64, n_val=32, n_test=16)
    cfg = _config(tmp_path / "run", npz, arch="scatternet", dp_method="scatternet", trainable="all", epochs=1,
                  model_args={"width": 8, "input_norm": "publictest", "mirror_views": True,
                              "augmentation_multiplicity": multiplicity},
                  export=str(tmp_path / "ck"))
    assert main(cfg, command="pytest")["finished"]
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.card["model_args"]["mirror_views"] is True
    assert ck.card["model_args"]["augmentation_multiplicity"] == ck.model.augmentation_multiplicity == multiplicity
    ds = load_dataset(npz)
    with torch.no_grad():
        pub = ck.model.scatter(to_model_input(ds.split("PublicTest")[0])).flatten(0, 1)  # (2N, 81, 12, 12)
    torch.testing.assert_close(ck.model.head[0].mean, pub.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)
    # The card's figures are the full network's: the mean of the logits on a face and its mirror image.
    full = evaluate_split(ck.model, ds, "PrivateTest", class_names=ck.classes)
    assert full["accuracy"] == pytest.approx(ck.card["metrics"]["PrivateTest"]["accuracy"], abs=1e-9)


def test_scatternet_refuses_an_unknown_input_norm():
    with pytest.raises(ValueError, match="input_norm must be one of group, publictest"):
        build_model("scatternet", input_norm="batch")
