"""Differential privacy: known answers (zero-noise DP-SGD == SGD, epsilon pinned against two
independent accountants), Poisson sampling, disjoint public/private rows, private runs end to end."""

import copy
import json

import numpy as np
import pytest
import torch
from conftest import TINY_RESNET, make_faces, write_npz
from safetensors.torch import load_file
from torch import nn

from fer_core.models.architectures import build_model, split_for_finetune
from fer_core.models.checkpoint import load_checkpoint
from fer_core.privacy.accounting import PrivacyError, epsilon_for, noise_multiplier_for
from fer_core.privacy.engine import SECRET_RANDOMNESS, make_private
from fer_core.privacy.rows import public_private_split
from fer_core.training.config import TrainConfig
from fer_core.training.lifecycle import main
from fer_core.training.private import secret_epoch_seed
from fer_core.training.state import STATE_FILE

N_FER = 28_709  # FER2013 Training rows


def _loader(n=64, batch=16, seed=0):
    x, y = make_faces(n, seed)
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x).float().unsqueeze(1) / 255, torch.from_numpy(y))
    return torch.utils.data.DataLoader(ds, batch_size=batch, generator=torch.Generator().manual_seed(seed)), x, y


def test_dp_step_with_zero_noise_and_no_clipping_equals_plain_sgd():
    torch.manual_seed(0)
    model = build_model("resnet", **TINY_RESNET, dropout=0.0)  # no randomness besides DP's
    plain = copy.deepcopy(model)
    loader, x, y = _loader(n=64, batch=16)
    xb = torch.from_numpy(x[:16]).float().unsqueeze(1) / 255
    yb = torch.from_numpy(y[:16])

    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    nn.functional.cross_entropy(plain(xb), yb).backward()
    opt.step()

    dp = make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), loader,
                      noise_multiplier=0.0, max_grad_norm=1e9)
    dp.optimizer.zero_grad()
    nn.functional.cross_entropy(dp.model(xb), yb).backward()
    dp.optimizer.step()
    for (name, a), b in zip(plain.named_parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    # ...and clipping does change the step once the bound binds.
    clipped = copy.deepcopy(plain)
    dp2 = make_private(clipped, torch.optim.SGD(clipped.parameters(), lr=0.1), _loader()[0],
                       noise_multiplier=0.0, max_grad_norm=1e-3)
    dp2.optimizer.zero_grad()
    nn.functional.cross_entropy(dp2.model(xb), yb).backward()
    before = [p.detach().clone() for p in clipped.parameters()]
    dp2.optimizer.step()
    moved = sum(float((p.detach() - b).norm() ** 2) for p, b in zip(clipped.parameters(), before, strict=True)) ** 0.5
    assert moved <= 0.1 * 1e-3 * (1 + 1e-4)  # lr * C bounds the step of the mean clipped gradient


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_epsilon_pinned_against_opacus_and_google_dp_accounting(accountant):
    import dp_accounting
    from opacus.accountants import create_accountant

    sigma, q, steps, delta = 1.0, 256 / N_FER, 30 * (N_FER // 256), 1e-5
    ours = epsilon_for(sigma, q, steps, delta, accountant)

    acc = create_accountant(mechanism=accountant)
    acc.history = [(sigma, q, steps)]
    assert ours == pytest.approx(acc.get_epsilon(delta=delta), rel=1e-9)

    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    if accountant == "rdp":
        google = dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(delta)
    else:
        google = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4).compose(event).get_epsilon(delta)
    assert ours == pytest.approx(google, rel=0.02)
    assert 2.0 < ours < 4.0  # the figure from NOTES: sigma 1.0 spends about epsilon 3 here


@pytest.mark.parametrize("target, expected", [(1.0, 2.109), (3.0, 1.000), (8.0, 0.671)])
def test_noise_multiplier_for_target_epsilon_matches_opacus(target, expected):
    q = 256 / N_FER
    steps = 30 * int(1 / q)
    sigma = noise_multiplier_for(target, 1e-5, q, steps, "prv")
    assert sigma == pytest.approx(expected, rel=0.01)  # Opacus get_noise_multiplier, measured in NOTES
    assert epsilon_for(sigma, q, steps, 1e-5, "prv") <= target + 0.01


def test_accounting_rejects_bad_settings():
    with pytest.raises(PrivacyError, match="sample_rate"):
        epsilon_for(1.0, 0.0, 10)
    with pytest.raises(PrivacyError, match="accountant"):
        epsilon_for(1.0, 0.1, 10, accountant="gdp-ish")
    with pytest.raises(PrivacyError, match="noise_multiplier"):
        epsilon_for(0.0, 0.1, 10)
    assert epsilon_for(1.0, 0.1, 0) == 0.0


def test_private_loader_is_poisson_sampled():
    from opacus.data_loader import DPDataLoader
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    model = build_model("resnet", **TINY_RESNET)
    loader, _, _ = _loader(n=256, batch=32)
    dp = make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, noise_multiplier=1.0,
                      max_grad_norm=1.0)
    assert isinstance(dp.data_loader, DPDataLoader)
    assert isinstance(dp.data_loader.batch_sampler, UniformWithReplacementSampler)
    assert dp.data_loader.batch_sampler.sample_rate == pytest.approx(32 / 256)
    sizes = [len(y) for _, y in dp.data_loader]
    assert len(set(sizes)) > 1  # Poisson: batch sizes vary around 32
    assert 16 < np.mean(sizes) < 48


def test_public_and_private_rows_are_disjoint_and_cover_training():
    public, private = public_private_split(28_709, 0.2, seed=0)
    assert len(np.intersect1d(public, private)) == 0
    assert len(public) + len(private) == 28_709
    assert np.array_equal(np.union1d(public, private), np.arange(28_709))
    assert len(public) == round(0.2 * 28_709)
    again, _ = public_private_split(28_709, 0.2, seed=0)
    other, _ = public_private_split(28_709, 0.2, seed=1)
    assert np.array_equal(public, again) and not np.array_equal(public, other)
    with pytest.raises(PrivacyError):
        public_private_split(10, 1.0, 0)


def _dp_config(tmp_path, npz, **kw):
    base = dict(out=str(tmp_path / "run"), data=str(npz), arch="resnet", model_args=TINY_RESNET, epochs=2,
                batch_size=64, lr=0.5, warmup_epochs=0, ema_decay=0.9, channels_last=False, progress=False,
                augment={}, dp_method="dp-sgd", epsilon=8.0, delta=1e-4, physical_batch_size=32)
    base.update(kw)
    return TrainConfig(**base)


def test_dp_sgd_run_card_privacy_block_round_trip_and_resume(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=256, n_val=64, n_test=64)
    full = main(_dp_config(tmp_path / "a", npz, export=str(tmp_path / "ck")), command="pytest")
    assert full["finished"] and full["epsilon"] == pytest.approx(8.0, abs=0.05)
    card = load_checkpoint(tmp_path / "ck").card
    p = card["privacy"]
    assert p["private"] is True and p["method"] == "dp-sgd" and p["accountant"] == "prv"
    assert p["epsilon"] == pytest.approx(full["epsilon"], abs=1e-3) and p["delta"] == 1e-4
    assert p["sample_rate"] == pytest.approx(64 / 256) and p["steps"] == 2 * 4 and p["epochs"] == 2
    assert p["private_rows"] == 256 and p["poisson_sampling"] is True and p["max_grad_norm"] == 1.0
    # The recorded figures reproduce epsilon with the accountant.
    assert epsilon_for(p["noise_multiplier"], p["sample_rate"], p["steps"], p["delta"]) == pytest.approx(
        p["epsilon"], abs=1e-3)
    assert all("epsilon" in h for h in card["history"])
    assert not any(k.startswith("_module") for k in load_file(str(tmp_path / "ck" / "model.safetensors")))

    assert p["randomness"] == SECRET_RANDOMNESS

    # Killed after one epoch and started again: same batches, same noise, same accountant (public-seed
    # randomness, so that an uninterrupted run can be compared with the resumed one).
    public = main(_dp_config(tmp_path / "c", npz, secret_randomness=False))
    first = main(_dp_config(tmp_path / "b", npz, stop_after=1, secret_randomness=False))
    assert not first["finished"] and first["epsilon"] < full["epsilon"]
    second = main(_dp_config(tmp_path / "b", npz, secret_randomness=False))
    assert second["epsilon"] == pytest.approx(full["epsilon"], rel=1e-9)
    for a, b in zip(public["history"], second["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_dp_sampling_and_noise_come_from_a_secret_kept_out_of_the_card_and_reused_on_resume(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=256, n_val=64, n_test=64)
    runs = [main(_dp_config(tmp_path / f"r{i}", npz, export=str(tmp_path / f"ck{i}"))) for i in range(2)]
    # same config, same public seed: other batches and noise (the secret differs), same accountant
    assert runs[0]["history"][0]["train_loss"] != pytest.approx(runs[1]["history"][0]["train_loss"], rel=1e-6)
    assert runs[0]["epsilon"] == pytest.approx(runs[1]["epsilon"], rel=1e-9)
    state = torch.load(tmp_path / "r0" / "run" / STATE_FILE, weights_only=True)
    secret = state["secret_seed"]
    for where in (tmp_path / "ck0", tmp_path / "r0" / "run"):
        for f in where.glob("*.json"):
            assert secret not in f.read_text(), f  # never in a card or any JSON beside the weights
    # a stopped run resumes with its own secret: the second epoch's draws are the uninterrupted run's
    main(_dp_config(tmp_path / "s", npz, stop_after=1))
    kept = torch.load(tmp_path / "s" / "run" / STATE_FILE, weights_only=True)["secret_seed"]
    main(_dp_config(tmp_path / "s", npz))
    assert torch.load(tmp_path / "s" / "run" / STATE_FILE, weights_only=True)["secret_seed"] == kept
    assert secret_epoch_seed(int(kept), 1) != secret_epoch_seed(int(kept), 0) != secret_epoch_seed(int(kept) + 1, 0)


def test_dp_settings_are_checked(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=256, n_val=64, n_test=64)
    with pytest.raises(PrivacyError, match="exactly one"):
        main(_dp_config(tmp_path, npz, noise_multiplier=1.0))
    with pytest.raises(PrivacyError, match="delta"):
        main(_dp_config(tmp_path, npz, delta=0.01))
    with pytest.raises(PrivacyError, match="stage-1"):
        main(_dp_config(tmp_path, npz, dp_method="two-stage"))


def test_two_stage_uses_disjoint_rows_and_refuses_a_stage1_that_saw_private_rows(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=256, n_val=64, n_test=64)
    common = dict(data=str(npz), arch="resnet", model_args=TINY_RESNET, epochs=2, batch_size=32, lr=0.05,
                  channels_last=False, progress=False, public_fraction=0.25)
    main(TrainConfig(out=str(tmp_path / "pub"), train_rows="public", export=str(tmp_path / "stage1"), **common))
    stage1 = load_checkpoint(tmp_path / "stage1").card
    assert stage1["data"]["train_rows"] == "public" and stage1["data"]["train_rows_used"] == 64

    res = main(_dp_config(tmp_path / "ts", npz, dp_method="two-stage", init_from=str(tmp_path / "stage1"),
                          public_fraction=0.25, trainable="head", export=str(tmp_path / "ck")))
    card = load_checkpoint(tmp_path / "ck").card
    assert card["privacy"]["private_rows"] == 192 and card["privacy"]["public_rows"] == 64
    assert "all but the public share" in card["privacy"]["rows"]
    # Only the head moved: the frozen trunk is stage 1's.
    w1 = load_file(str(tmp_path / "stage1" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "ck" / "model.safetensors"))
    assert torch.equal(w1["stem.0.weight"], w2["stem.0.weight"]) and not torch.equal(w1["fc.weight"], w2["fc.weight"])
    assert res["epsilon"] == pytest.approx(8.0, abs=0.05)

    main(TrainConfig(out=str(tmp_path / "all"), export=str(tmp_path / "all_rows"), **common))
    with pytest.raises(PrivacyError, match="train_rows='all'"):
        main(_dp_config(tmp_path / "bad", npz, dp_method="two-stage", init_from=str(tmp_path / "all_rows"),
                        public_fraction=0.25, trainable="head"))
    with pytest.raises(PrivacyError, match="public share"):
        main(_dp_config(tmp_path / "bad2", npz, dp_method="two-stage", init_from=str(tmp_path / "stage1"),
                        public_fraction=0.5, trainable="head"))


def test_scatternet_split_matches_the_model_and_has_no_trainable_prefix():
    torch.manual_seed(0)
    model = build_model("scatternet").eval()
    prefix, tail = split_for_finetune(model, "all")
    x = torch.randn(2, 1, 48, 48)
    torch.testing.assert_close(tail(prefix(x)), model(x))
    assert not list(model.scattering.parameters())  # data-independent: nothing to learn, nothing leaks
    assert prefix(x).shape == (2, 81, 12, 12)
    assert not any(k.startswith("scattering") for k in model.state_dict())  # rebuilt, not stored


def test_scatternet_mirror_views_train_on_one_view_and_predict_the_mean_of_both():
    torch.manual_seed(0)
    model = build_model("scatternet", width=8, mirror_views=True).eval()
    plain = build_model("scatternet", width=8)
    assert model.state_dict().keys() == plain.state_dict().keys()  # the wrapper adds no weights
    prefix, tail = split_for_finetune(model, "all")
    x = torch.rand(3, 1, 48, 48)
    views = prefix(x)
    assert views.shape == (3, 2, 81, 12, 12)
    # A features library of the plain scattering must not serve the mirrored one (nor the other way round).
    assert prefix.feature_identity() != split_for_finetune(plain, "all")[0].feature_identity()
    with torch.no_grad():
        one, mirrored = model.head(model.scatter(x)[:, 0]), model.head(plain.scatter(x.flip(-1)))
        torch.testing.assert_close(tail(views), (one + mirrored) / 2)  # eval: test-time augmentation
        torch.testing.assert_close(model(x), (one + mirrored) / 2)
        model.train()
        torch.manual_seed(1)
        drawn = tail(views)  # training: one view per face, drawn at random
        for row, (a, b) in enumerate(zip(model.head(views[:, 0]), model.head(views[:, 1]), strict=True)):
            assert torch.allclose(drawn[row], a) or torch.allclose(drawn[row], b)
        picks = {bool(torch.allclose(tail(views)[0], model.head(views[:1, 0])[0])) for _ in range(20)}
        assert picks == {True, False}  # both views are drawn


def test_scatternet_augmentation_multiplicity_gives_one_per_sample_gradient_of_the_mean_of_both_views():
    from opacus import GradSampleModule

    torch.manual_seed(0)
    model = build_model("scatternet", width=8, mirror_views=True, augmentation_multiplicity=2).train()
    prefix, tail = split_for_finetune(model, "all")
    x, y = torch.rand(4, 1, 48, 48), torch.tensor([0, 3, 6, 2])
    with torch.no_grad():
        views = prefix(x)  # (4, 2, 81, 12, 12)
        torch.testing.assert_close(tail(views), (model.head(views[:, 0]) + model.head(views[:, 1])) / 2)
    plain = copy.deepcopy(tail)  # (Opacus's hooks are installed on the wrapped modules in place)
    dp_tail = GradSampleModule(tail, loss_reduction="sum")  # the head runs twice per step, B rows each
    torch.nn.functional.cross_entropy(dp_tail(views), y, reduction="sum").backward()
    params = [p for p in tail.parameters() if p.requires_grad]
    for row in range(len(y)):  # each face's own gradient of the loss on its mean logits, by plain autograd
        loss = torch.nn.functional.cross_entropy(plain(views[row:row + 1]), y[row:row + 1], reduction="sum")
        for p, g in zip(params, torch.autograd.grad(loss, list(plain.parameters())), strict=True):
            assert p.grad_sample.shape[0] == len(y)  # one gradient per face, not per view
            torch.testing.assert_close(p.grad_sample[row], g, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="set mirror_views=True"):
        build_model("scatternet", width=8, augmentation_multiplicity=2)
    with pytest.raises(ValueError, match="must be 1 or 2"):
        build_model("scatternet", width=8, mirror_views=True, augmentation_multiplicity=3)


def test_card_json_of_a_private_model_is_plain_json(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=256, n_val=64, n_test=64)
    main(_dp_config(tmp_path, npz, epochs=1, export=str(tmp_path / "ck")))
    raw = json.loads((tmp_path / "ck" / "model.json").read_text())
    assert raw["privacy"]["epsilon"] > 0 and raw["privacy"]["library"].startswith("opacus")


def test_no_clipping_is_only_for_a_run_without_noise():
    loader, _, _ = _loader()
    model = build_model("resnet", **TINY_RESNET)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(PrivacyError, match="no clipping"):
        make_private(model, opt, loader, noise_multiplier=1.0, max_grad_norm=float("inf"))
    dp = make_private(model, opt, loader, noise_multiplier=0.0, max_grad_norm=float("inf"))
    assert dp.optimizer.max_grad_norm > 1e20 and dp.optimizer.noise_multiplier == 0.0
