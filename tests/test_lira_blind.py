"""LiRA (Carlini et al. 2022) and the blind baseline (Das et al. 2024): known answers, an overfit model
caught, unseen sets at chance, a shifted audit set flagged, a same-distribution one not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_faces

from fer_core.audit.blind import blind_baseline, image_features
from fer_core.audit.lira import lira_scores, logit_confidence, random_halves
from fer_core.evaluation.metrics import roc_auc


def test_logit_confidence_is_log_odds_of_the_true_label():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(torch.tensor(logits), 1).numpy()
    phi = logit_confidence(logits, np.array([0, 2]))
    assert phi == pytest.approx(np.log(p[[0, 1], [0, 2]] / (1 - p[[0, 1], [0, 2]])))


def test_lira_gaussian_likelihood_ratio_known_answer():
    # IN shadows see phi in {1, 3} (mean 2, var 2), OUT shadows {-1, 1} (mean 0, var 2): the log ratio
    # -(phi - 2)^2 / 4 + phi^2 / 4 = phi - 1; offline: log Phi(phi / sqrt(2)).
    shadow = np.array([[1.0], [3.0], [-1.0], [1.0]])
    inside = np.array([[True], [True], [False], [False]])
    for phi, want in [(2.0, 1.0), (1.0, 0.0), (-3.0, -4.0)]:
        assert lira_scores(np.array([phi]), shadow, inside)[0] == pytest.approx(want)
    assert lira_scores(np.array([0.0]), shadow, inside, online=False)[0] == pytest.approx(np.log(0.5))
    with pytest.raises(ValueError, match="no shadow model"):
        lira_scores(np.array([0.0]), shadow[:2], inside[:2])


def test_random_halves_are_independent_halves():
    m = random_halves(100, 64, seed=3)
    assert m.shape == (64, 100) and (m.sum(axis=1) == 50).all()
    # independent draws: how many other models hold a row does not depend on whether model 0 does
    others = m[1:].sum(axis=0)
    assert abs(others[m[0]].mean() - others[~m[0]].mean()) < 2.0
    assert len({tuple(r) for r in m}) == 64
    with pytest.raises(ValueError, match="at least 2"):
        random_halves(10, 1)


def _train_softmax(x: torch.Tensor, y: torch.Tensor, classes: int, steps: int = 300) -> torch.nn.Linear:
    """A multinomial logistic regression trained to fit its rows (no regularisation: it memorises)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], classes).double()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    return model


def _phi(model, x, y) -> np.ndarray:
    with torch.no_grad():
        return logit_confidence(model(x).numpy(), y.numpy())


def test_lira_catches_a_model_overfit_on_random_labels_and_sees_chance_on_unseen_sets():
    rng = np.random.default_rng(0)
    n, d, classes, k = 160, 64, 7, 16
    x = torch.from_numpy(rng.normal(size=(n + 80, d)))
    y = torch.from_numpy(rng.integers(0, classes, n + 80))
    pool_x, pool_y = x[:n], y[:n]
    inside = random_halves(n, k, seed=1)
    shadows = np.stack([_phi(_train_softmax(pool_x[m], pool_y[m], classes), pool_x, pool_y) for m in inside])
    # Target trained on a random half of the pool: its members must stand out.
    members = rng.permutation(n) < n // 2
    target = _train_softmax(pool_x[members], pool_y[members], classes)
    auc = roc_auc(members, lira_scores(_phi(target, pool_x, pool_y), shadows, inside, fixed_variance=True))
    assert auc > 0.9
    # A model trained on other rows: no pool row is a member; any split of the pool is at chance.
    unseen = _train_softmax(x[n:], y[n:], classes)
    scores = lira_scores(_phi(unseen, pool_x, pool_y), shadows, inside, fixed_variance=True)
    assert 0.38 < roc_auc(members, scores) < 0.62


def test_blind_baseline_flags_a_shifted_set_and_not_a_same_distribution_one():
    faces, _ = make_faces(800, seed=5)
    same = blind_baseline(faces[:400], faces[400:], seed=0)
    assert 0.42 < same.auc < 0.58 and not same.shifted
    brighter = np.clip(faces[400:].astype(np.int16) + 12, 0, 255).astype(np.uint8)
    shifted = blind_baseline(faces[:400], brighter, seed=0)
    assert shifted.auc > 0.8 and shifted.shifted
    assert shifted.auc_interval[0] <= shifted.auc <= shifted.auc_interval[1]
    assert image_features(faces[:3]).shape == (3, 95)
    with pytest.raises(ValueError, match="at least 10"):
        blind_baseline(faces[:5], faces[5:20])


@pytest.mark.realdata
def test_blind_baseline_on_real_faces_random_halves_of_training_is_at_chance(real_data):
    data = np.load(real_data)
    train = np.flatnonzero(data["usage"] == "Training")
    idx = np.random.default_rng(0).permutation(train)[:4000]
    res = blind_baseline(data["images"][idx[:2000]], data["images"][idx[2000:]], seed=0, bootstrap=200)
    assert 0.47 <= res.auc <= 0.53, res


@pytest.mark.realdata
def test_pooled_blind_baseline_on_a_twin_audit_design_of_real_faces_is_within_0p48_0p52(real_data):
    from fer_core.audit.blind import pooled_blind_baseline
    from fer_core.training.rows import twin_membership

    data = np.load(real_data)
    train = np.flatnonzero(data["usage"] == "Training")
    rows = np.sort(np.random.default_rng([0, 1]).permutation(train)[:10_000])  # as audit_twins samples its rows
    inside = twin_membership(len(rows), 4, seed=0)
    res = pooled_blind_baseline(data["images"][rows], inside, seed=0, bootstrap=200)
    assert 0.48 <= res.auc <= 0.52 and not res.shifted, res
    assert res.n_members == inside.sum() and res.n_non_members == (~inside).sum()


def test_pooled_blind_baseline_catches_a_shifted_design():
    from fer_core.audit.blind import pooled_blind_baseline

    faces, _ = make_faces(600, seed=3)
    rng = np.random.default_rng(0)
    inside = np.stack([rng.permutation(600) < 300 for _ in range(3)])
    assert not pooled_blind_baseline(faces, inside, bootstrap=200).shifted
    shifted = faces.astype(np.int16)
    shifted[inside[0]] += 25  # twin 0's members are brighter: its split is not one distribution
    res = pooled_blind_baseline(np.clip(shifted, 0, 255).astype(np.uint8), inside, bootstrap=200)
    assert res.shifted and res.auc > 0.55


@pytest.mark.slow
def test_audit_twins_of_a_recipe_that_memorises_leak_and_their_split_is_not_shifted(tmp_path):
    from conftest import TINY_RESNET, write_npz

    from fer_core.audit.twins import audit_twins, train_twins
    from fer_core.models.checkpoint import read_card
    from fer_core.training.config import TrainConfig
    from fer_core.training.lifecycle import main

    npz = write_npz(tmp_path / "s.npz", n_train=256, n_val=64, n_test=64)
    d = dict(np.load(npz))
    train = d["usage"] == "Training"  # random labels: only memorising fits them
    d["label"][train] = np.random.default_rng(1).integers(0, 7, train.sum()).astype(np.int8)
    np.savez(npz, **d)
    cfg = TrainConfig(out=str(tmp_path / "base"), data=str(npz), arch="resnet", model_args=TINY_RESNET, epochs=40,
                      batch_size=32, lr=0.05, warmup_epochs=0, augment={}, ema_decay=0, label_smoothing=0,
                      channels_last=False, progress=False, export=str(tmp_path / "ck"))
    main(cfg)
    card = read_card(tmp_path / "ck")
    cfgs = train_twins(card, twins=4, out_root=tmp_path / "twins")
    import json

    twin0 = json.loads((tmp_path / "twins" / card.name / "twin0_of4_seed0" / "final_card.json").read_text())
    assert twin0["data"]["twin"] == {"index": 0, "of": 4, "seed": 0} and twin0["data"]["train_rows_used"] == 128
    res = audit_twins(card, cfgs, n_rows=256)
    assert res["twins"] == 4 and res["n_rows"] == 256
    assert res["loss"]["auc"] > 0.6 and res["lira"]["auc"] > 0.53  # the recipe memorises: members stand out
    assert res["lira_offline"]["auc"] > 0.53
    assert 0.35 < res["blind"].auc < 0.65 and not res["blind"].shifted  # same distribution by construction
    assert res["loss"]["n_members"] + res["loss"]["n_nonmembers"] == 4 * 256

    # The command's path: the same twins read back (not retrained), results file and card written.
    from fer_core.audit.twins import run_twin_audit
    from fer_core.results.files import read_twin_audit, write_twin_audit

    out = tmp_path / "audit_twins.csv"
    write_twin_audit([{"model": "other", "attack": "lira", "auc": 0.51, "twins": 3}], out)  # another model's row
    rows = run_twin_audit([str(tmp_path / "ck")], twins=4, n_rows=256, out_root=tmp_path / "twins", results=str(out))
    assert {r["attack"] for r in rows} == {"loss", "lira", "lira_offline"} and {r["model"] for r in rows} == {"ck"}
    assert [r for r in read_twin_audit(out) if r["model"] != "other"] == rows  # the file's rows, numbers typed
    assert [r["auc"] for r in read_twin_audit(out) if r["model"] == "other"] == [0.51]  # kept, not returned
    lira = next(r for r in rows if r["attack"] == "lira")
    assert lira["auc"] == pytest.approx(res["lira"]["auc"]) and lira["blind_auc"] == pytest.approx(res["blind"].auc,
                                                                                                  abs=1e-4)
    assert read_card(tmp_path / "ck")["audit_twins"]["lira"]["twins"] == 4


def test_attack_intervals_known_answers():
    from scipy.stats import norm

    from fer_core.audit.attacks import attack_metrics, auc_interval, clopper_pearson

    # Hanley & McNeil (1982): at A = 0.5, Q1 = 1/3 and Q2 = 1/3, so SE^2 = (0.25 + (m + n - 2) / 12) / (m n)
    lo, hi = auc_interval(0.5, 1000, 1000)
    se = np.sqrt((0.25 + 1998 / 12) / 1e6)
    assert hi - 0.5 == pytest.approx(norm.ppf(0.975) * se) and 0.5 - lo == pytest.approx(hi - 0.5)
    assert auc_interval(1.0, 50, 50) == (1.0, 1.0)
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    m = attack_metrics(labels, rng.normal(labels * 1.0, 1.0), seed=0)
    assert m["auc_interval"][0] < m["auc"] < m["auc_interval"][1]
    for key in ("tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"):
        k = round(m[key] * 2000)
        assert m[f"{key}_interval"] == pytest.approx(clopper_pearson(k, 2000))
        assert m[f"{key}_interval"][0] <= m[key] <= m[f"{key}_interval"][1]
    assert min(m["roc"]["fpr"][1:]) < 1e-3  # the ROC points reach the low-FPR corner


def test_a_twin_of_a_recipe_started_from_weights_that_saw_the_audited_rows_is_refused(tmp_path):
    import json

    from fer_core.audit.twins import twin_config
    from fer_core.models.checkpoint import ModelCard

    def card(name, **config):
        d = tmp_path / name
        d.mkdir()
        c = {"name": name, "arch": "resnet", "model_args": {}, "classes": ["a", "b"],
             "config": {"arch": "resnet", "epochs": 1, **config}}
        (d / "model.json").write_text(json.dumps(c))
        return ModelCard.from_json(c)

    card("base")  # trained on all of Training
    shipped = card("cycle2", init_from=str(tmp_path / "base"))
    with pytest.raises(ValueError, match="init_from"):
        twin_config(shipped, 0, 4)
    assert twin_config(shipped, 0, 4, init_from=None).init_from is None  # from scratch: allowed
    card("stage1", train_rows="public")
    two_stage = card("stage2", init_from=str(tmp_path / "stage1"), dp_method="two-stage", epsilon=8.0,
                     trainable="head")
    assert twin_config(two_stage, 1, 4).twin == 1  # its start saw only the public rows, disjoint from the pool
    student = card("student", teacher=str(tmp_path / "base"), kd_views=4)  # its teacher saw every audited row
    with pytest.raises(ValueError, match="distilled"):
        twin_config(student, 0, 4)
    assert twin_config(student, 0, 4, teacher=None, kd_views=0).teacher is None


@pytest.mark.parametrize("arch,trainable", [("scatternet", "all"), ("resnet", "head")])
def test_twin_logits_through_one_shared_prefix_equal_each_twins_own_forward(tmp_path, arch, trainable):
    from conftest import TINY_RESNET
    from safetensors.torch import save_file

    from fer_core.audit.twins import twin_logits
    from fer_core.data.preprocess import to_model_input
    from fer_core.models.architectures import build_model
    from fer_core.training.config import TrainConfig
    from fer_core.training.validation import BEST_FILE

    faces, _ = make_faces(24)
    args = TINY_RESNET if arch == "resnet" else {}
    torch.manual_seed(0)
    first = build_model(arch, num_classes=7, **args)
    models, cfgs = [], []
    for k in range(3):
        m = build_model(arch, num_classes=7, **args)
        if arch == "resnet":  # two-stage twins share the stage-1 trunk; their heads differ
            m.load_state_dict({**first.state_dict(), **{n: t for n, t in m.state_dict().items() if n.startswith("fc")}})
        out = tmp_path / f"twin{k}"
        out.mkdir()
        save_file(m.state_dict(), str(out / BEST_FILE))
        models.append(m.eval())
        cfgs.append(TrainConfig(out=str(out), arch=arch, model_args=args, dp_method="scatternet" if arch == "scatternet"
                                else "two-stage", epsilon=8.0, trainable=trainable, twin=k, twins=3))
    sub = faces[[5, 1, 20, 9]]
    got = twin_logits(cfgs, sub, library=faces, data_sha256="ab" * 32)
    with torch.no_grad():
        want = np.stack([m(to_model_input(sub)).double().numpy() for m in models])
    assert got.shape == (3, 4, 7) and np.allclose(got, want, atol=1e-4)
    assert not np.allclose(got[0], got[1])  # the tails differ


def test_a_twin_audit_with_fewer_than_three_twins_is_refused_before_any_twin_trains(tmp_path):
    from fer_core.audit.twins import MIN_TWINS, run_twin_audit

    with pytest.raises(ValueError, match=f"use --twins {MIN_TWINS} or more"):
        run_twin_audit([str(tmp_path / "never_read")], twins=2, out_root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing trained, nothing read
