"""Membership-inference audit: known answers (an overfit model is caught, unseen-vs-unseen is a coin
flip, a DP model's empirical epsilon stays under its claim), the bound's arithmetic, and the files."""

import json

import numpy as np
import pytest
import torch
from conftest import TINY_RESNET, make_faces, write_npz

from fer_core.audit.attacks import (
    attack_metrics,
    clopper_pearson,
    epsilon_lower_bound,
    loss_scores,
    rmia_scores,
    roc_curve,
)
from fer_core.audit.membership import audit_checkpoint, run_audit, true_label_probability
from fer_core.models.architectures import build_model
from fer_core.models.checkpoint import read_card
from fer_core.training.config import TrainConfig
from fer_core.training.lifecycle import main
from fer_core.training.optim import make_optimizer
from fer_core.training.plain import train_one_epoch


def test_clopper_pearson_and_epsilon_bound_arithmetic():
    lo, hi = clopper_pearson(50, 100, 0.05)
    assert lo == pytest.approx(0.3983, abs=1e-3) and hi == pytest.approx(0.6017, abs=1e-3)  # textbook values
    assert clopper_pearson(0, 100)[0] == 0.0 and clopper_pearson(100, 100)[1] == 1.0
    assert epsilon_lower_bound(50, 100, 50, 100) == 0.0  # a coin flip proves nothing
    # Perfect separation of 1,000 + 1,000 rows: TPR_lo ~ 0.9963, FPR_hi ~ 0.0037 -> about ln(270).
    assert epsilon_lower_bound(1000, 1000, 0, 1000) == pytest.approx(np.log(0.99632 / 0.00368), abs=0.02)
    # More rows, tighter intervals, a larger provable epsilon.
    assert epsilon_lower_bound(10_000, 10_000, 0, 10_000) > epsilon_lower_bound(1000, 1000, 0, 1000)


def test_roc_curve_known_answer():
    fpr, tpr, thr = roc_curve(np.array([1, 1, 0, 0], bool), np.array([0.9, 0.4, 0.6, 0.1]))
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1.0] and tpr.tolist() == [0, 0.5, 0.5, 1.0, 1.0]
    assert thr[0] == np.inf


def test_random_scores_give_no_evidence():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    m = attack_metrics(labels, rng.normal(size=4000))
    assert abs(m["auc"] - 0.5) < 0.03 and m["epsilon_lower_bound"] < 0.3 and m["tpr_at_1pct_fpr"] < 0.05


def _train(x, y, epochs, seed=0):
    torch.manual_seed(seed)
    model = build_model("resnet", **TINY_RESNET, dropout=0.0)
    cfg = TrainConfig(arch="resnet", model_args=TINY_RESNET, epochs=epochs, batch_size=16, lr=0.05, warmup_epochs=0,
                      ema_decay=0, channels_last=False, progress=False, augment={}, label_smoothing=0, seed=seed,
                      weight_decay=0)
    opt = make_optimizer(model, cfg)
    for e in range(epochs):
        train_one_epoch(model, model, opt, torch.from_numpy(x), torch.from_numpy(y), cfg, e)
    return model.eval()


def test_overfit_model_is_caught_and_unseen_sets_look_alike():
    x, y = make_faces(400, seed=3)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, len(y))  # random labels: only memorisation can fit them
    members, nonmembers, other = slice(0, 64), slice(64, 192), slice(192, 320)
    model = _train(x[members], y[members], epochs=100)
    p_in = true_label_probability(model, x[members], y[members])
    p_out = true_label_probability(model, x[nonmembers][:64], y[nonmembers][:64])
    labels = np.r_[np.ones(64, bool), np.zeros(64, bool)]
    assert attack_metrics(labels, loss_scores(np.r_[p_in, p_out]))["auc"] > 0.9
    # Two sets the model never saw: AUC ~ 0.5 (sampling sd ~ 0.036 at 128 + 128).
    p_a = true_label_probability(model, x[nonmembers], y[nonmembers])
    p_b = true_label_probability(model, x[other], y[other])
    auc = attack_metrics(np.r_[np.ones(128, bool), np.zeros(128, bool)], loss_scores(np.r_[p_a, p_b]))["auc"]
    assert abs(auc - 0.5) < 0.11


def test_rmia_uses_reference_models_to_calibrate():
    # A face the references also find easy is less suspicious than one only the target finds easy.
    p_target = np.array([0.9, 0.9])
    p_refs = np.array([[0.9, 0.1], [0.8, 0.2]])
    p_pop, p_refs_pop = np.array([0.5, 0.9, 0.95]), np.array([[0.5, 0.5, 0.6], [0.5, 0.5, 0.6]])
    s = rmia_scores(p_target, p_refs, p_pop, p_refs_pop)
    # likelihood ratios: x = (0.997, 2.01), z = (0.74, 1.33, 1.28) -> x dominates 1/3 and 3/3 of z
    np.testing.assert_allclose(s, [1 / 3, 1.0])


def test_audit_of_a_dp_model_stays_under_its_claim_and_writes_files(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=512, n_val=256, n_test=256)
    main(TrainConfig(out=str(tmp_path / "run"), data=str(npz), arch="resnet", model_args=TINY_RESNET, epochs=2,
                     batch_size=128, lr=0.5, warmup_epochs=0, ema_decay=0, channels_last=False, progress=False,
                     augment={}, dp_method="dp-sgd", epsilon=1.0, delta=1e-4, physical_batch_size=64,
                     export=str(tmp_path / "dp")))
    res = audit_checkpoint(tmp_path / "dp", data=npz, n=150, n_population=60, references=2, reference_epochs=1,
                           cache_dir=tmp_path / "cache")
    claimed = res["claimed_epsilon"]
    assert claimed == pytest.approx(1.0, abs=0.05)
    for m in res["attacks"].values():
        assert m["n_members"] == m["n_nonmembers"] == 150
        assert m["epsilon_lower_bound"] <= claimed  # holds with 95 % confidence by construction
        assert 0.3 < m["auc"] < 0.7
    card = read_card(tmp_path / "dp")
    assert set(card["audit"]["attacks"]) == {"loss", "rmia"} and "roc" not in card["audit"]["attacks"]["loss"]
    assert (tmp_path / "cache").exists() and any((tmp_path / "cache").rglob("ref0.safetensors"))

    rows = run_audit([tmp_path / "dp"], tmp_path / "audit.csv", data=npz, n=150, n_population=60, references=2,
                     reference_epochs=1, cache_dir=tmp_path / "cache")
    assert {r["attack"] for r in rows} == {"loss", "rmia"}
    roc = json.loads((tmp_path / "audit_roc.json").read_text())
    assert set(roc["dp"]) == {"loss", "rmia"} and roc["dp"]["loss"]["fpr"][0] == 0.0
    # the blind baseline of the audit's own member / non-member sets, beside every attack row
    assert res["blind"]["blind_auc"] == pytest.approx(rows[0]["blind_auc"], abs=1e-4)
    assert all(0.3 < r["blind_auc"] < 0.7 and r["blind_auc_low"] <= r["blind_auc"] <= r["blind_auc_high"]
               for r in rows)

    # filled in again, without the attacks, from the same deterministic sets: the same figures
    from fer_core.audit.membership import add_blind_baselines
    from fer_core.audit.verdict import shifted_audit_note
    from fer_core.results.files import read_audit, write_audit

    before = read_audit(tmp_path / "audit.csv")
    for r in before:
        r["model"] = str(tmp_path / "dp")  # add_blind_baselines finds the checkpoint by its name: give the folder
    write_audit([{k: v for k, v in r.items() if not k.startswith("blind")} for r in before], {},
                tmp_path / "audit.csv")
    after = add_blind_baselines(tmp_path / "audit.csv", data=npz, n=150, n_population=60)
    assert [r["blind_auc"] for r in after] == pytest.approx([r["blind_auc"] for r in rows], abs=1e-4)
    note = shifted_audit_note(after)
    assert note is not None and "of 1 models' audit sets are flagged" in note


def test_vectorised_epsilon_bounds_equal_the_scalar_bound_and_the_best_threshold_is_the_brute_force_one():
    from fer_core.audit.attacks import _best_threshold, epsilon_lower_bound, epsilon_lower_bounds, roc_curve

    rng = np.random.default_rng(0)
    tp, fp = rng.integers(0, 301, 200), rng.integers(0, 301, 200)
    tp[:3], fp[:3] = [0, 300, 150], [300, 0, 0]
    want = [epsilon_lower_bound(int(a), 300, int(b), 300, 1e-5) for a, b in zip(tp, fp, strict=True)]
    assert epsilon_lower_bounds(tp, 300, fp, 300, 1e-5) == pytest.approx(want, abs=1e-12)
    labels = rng.random(400) < 0.5
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # ties included
    _, _, thr = roc_curve(labels, scores)
    best, best_eps = None, -1.0
    for t in thr[1:]:
        pred = scores >= t
        e = epsilon_lower_bound(int((pred & labels).sum()), int(labels.sum()), int((pred & ~labels).sum()),
                                int((~labels).sum()), 1e-5)
        if e > best_eps:
            best, best_eps = t, e
    assert _best_threshold(labels, scores, 1e-5, 0.05) == best
