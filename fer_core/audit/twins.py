"""Audit twins: audit a training *recipe* on members and non-members of one distribution.

Auditing a shipped model against rows it never saw compares ``Training`` with the test splits, and
an attack can then tell the splits apart rather than the model's members (Das, Zhang & Tramer 2024).
A twin is trained with the shipped model's recipe (its card's config) on a seeded random half of the
model's own training rows: its non-members are the other half, the same distribution by construction,
so the :mod:`blind baseline <fer_core.audit.blind>` is at chance and what an attack finds is leakage.

Each of K twins trains on its own seeded random half of the rows
(:func:`fer_core.training.rows.twin_membership`). Each twin is audited in turn as the target, the
other K - 1 as its shadow models: LiRA online (Carlini et al. 2022; rows with no IN or no OUT shadow
among the others are left out for that target) and the loss attack (Yeom et al. 2018); scores of all
targets are pooled into one ROC, as in the LiRA paper. Twins are cached under
``runs/twins/<model>/``; they are never shipped, their audit results are.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from fer_core.audit.attacks import attack_metrics, loss_scores
from fer_core.audit.blind import pooled_blind_baseline
from fer_core.audit.lira import lira_scores, logit_confidence
from fer_core.data.datasets import FERDataset
from fer_core.data.preprocess import to_model_input
from fer_core.models.architectures import build_model, model_arguments, split_for_finetune
from fer_core.models.checkpoint import ModelCard, read_card, resolve, update_card
from fer_core.results.files import TWIN_AUDIT_COLUMNS, TWIN_AUDIT_RESULTS, read_twin_audit, write_twin_audit
from fer_core.training.config import TrainConfig
from fer_core.training.features import prefix_features
from fer_core.training.lifecycle import main as train
from fer_core.training.lifecycle import strategy_for
from fer_core.training.rows import class_names, load_data, train_row_indices, twin_membership
from fer_core.training.state import finished_card
from fer_core.training.validation import BEST_FILE

TWIN_AUDIT_DIR = Path("runs/twins")
#: The attacks of a twin audit, each one row of ``audit_twins.csv``.
TWIN_ATTACKS = ("lira", "lira_offline", "loss")


def twin_training_seed(recipe_seed: int, twin: int, twin_seed: int = 0) -> int:
    """Twin ``twin``'s own training seed (initialisation, shuffling, augmentation): the twins of a recipe must
    differ in all their randomness, not only in their rows, or an attack compares models that share it (LiRA's
    shadow models are independently trained; Carlini et al. 2022). Private twins also draw secret sampling and
    noise (``secret_randomness``), as the shipped recipe does."""
    return int(np.random.SeedSequence([recipe_seed, twin_seed, twin]).generate_state(1)[0] >> 1)


def twin_config(card: ModelCard, twin: int, twins: int, seed: int = 0, out_root: Path = TWIN_AUDIT_DIR,
                data: str | None = None, **overrides) -> TrainConfig:
    """The config of audit twin ``twin`` of ``twins``: the card's training config on the twin's half, with the
    twin's own seed (:func:`twin_training_seed`) and secret DP randomness.

    Args:
        card: the audited model's card (its ``config`` is the recipe).
        overrides: fields to change on top (e.g. ``epochs`` for a cheaper twin; recorded in the results).

    Raises:
        ValueError: a card without a training config, or a recipe that starts from weights trained on the
            audited rows (``init_from`` other than a two-stage run's public stage 1) or learns from a teacher
            (which trained on them): override it.
    """
    if "config" not in card:
        raise ValueError(f"{card.name}'s card has no training config: it cannot be twinned")
    recipe_seed = int(card["config"].get("seed", 0))
    cfg = TrainConfig.from_dict(
        card["config"], out=str(Path(out_root) / card.name / f"twin{twin}_of{twins}_seed{seed}"), export=None,
        name=f"{card.name}_twin{twin}", twin=twin, twins=twins, twin_seed=seed, progress=False, stop_after=None,
        seed=twin_training_seed(recipe_seed, twin, seed), secret_randomness=True,
        **({"data": data} if data else {}), **overrides)
    if cfg.init_from:  # a start that saw the audited rows would make every twin remember its non-members too
        init_rows = read_card(resolve(cfg.init_from)).get("config", {}).get("train_rows", "all")
        if not (init_rows == "public" and strategy_for(cfg).rows(cfg) == "private"):
            raise ValueError(
                f"{card.name}'s recipe starts from {cfg.init_from}, which trained on {init_rows!r} rows of the data "
                "its twins are audited on: the twins' non-members would not be unseen. Train the twins from "
                "scratch (python -m fer_core audit --twins K --twin-config '{\"init_from\": null}' ...; the "
                "override is recorded in the results)")
    if cfg.teacher:  # a teacher trained on the audited rows would hand every twin its non-members' outputs
        raise ValueError(
            f"{card.name} was distilled from {cfg.teacher}, which trained on the rows its twins are audited on: the "
            "twins' non-members would not be unseen. Audit a distilled recipe with twins whose teachers are twins "
            "themselves (train teachers on the twins' halves first), or drop the teacher and audit the student's "
            "architecture alone (--twin-config '{\"teacher\": null, \"kd_views\": 0}'; recorded in the results)")
    return cfg


def train_twins(card: ModelCard, twins: int = 16, seed: int = 0, out_root: Path = TWIN_AUDIT_DIR,
                data: str | None = None, only: list[int] | None = None, **overrides) -> list[TrainConfig]:
    """Train (or resume, or read back) the twins of a model; returns their configs in order.

    ``only`` trains a subset (e.g. the first two for an expensive recipe); the rest are left alone.
    """
    cfgs = [twin_config(card, k, twins, seed, out_root, data, **overrides) for k in range(twins)]
    for k in only if only is not None else range(twins):
        if finished_card(cfgs[k]) is not None:
            continue  # trained before: read back, not rerun
        res = train(cfgs[k], command=f"fer_core.audit.twins.train_twins({card.name!r}, twin={k})")
        _TRAINED_NOW.add(cfgs[k].out)
        if not res["finished"]:
            raise RuntimeError(f"twin {k} of {card.name} stopped early; run again to resume")
    return cfgs


def _load_twin(cfg: TrainConfig, model_args: dict) -> torch.nn.Module:
    model = build_model(cfg.arch, **model_args)
    model.load_state_dict(load_file(str(Path(cfg.out) / BEST_FILE)))
    return model.eval()


def _prefix_identity(prefix: torch.nn.Module) -> dict | None:
    for name in ("cache_identity", "feature_identity"):
        if hasattr(prefix, name):
            return getattr(prefix, name)()
    return None


@torch.no_grad()
def twin_logits(cfgs: list[TrainConfig], images: np.ndarray, batch_size: int = 512, library: np.ndarray | None = None,
                data_sha256: str = "") -> np.ndarray:
    """``float64 (K, N, C)`` logits of each twin on ``images`` (``uint8 (N, 48, 48)``).

    Private twins whose frozen prefix has one identity in every twin (ScatterNet's scattering, a public
    backbone, a two-stage trunk: :func:`fer_core.training.features.prefix_features`) share one pass
    through it, looked up from the features of ``library`` (every face of the data file) when given;
    only the tails differ.
    """
    cfg0 = cfgs[0]
    model_args = model_arguments(cfg0.arch, **{"num_classes": len(class_names(cfg0)), **cfg0.model_args})
    models = [_load_twin(c, model_args) for c in cfgs]
    trainable = cfg0.trainable if strategy_for(cfg0).private else "all"
    parts = [split_for_finetune(m, trainable) for m in models]
    ids = [_prefix_identity(p) for p, _ in parts]
    out = np.empty((len(models), len(images), len(class_names(cfg0))))
    if ids[0] is not None and all(i == ids[0] for i in ids):
        feats = prefix_features(parts[0][0], images, data_sha256, library=library, progress=False)  # (N, ...)
        for k, (_, tail) in enumerate(parts):
            tail.eval()
            out[k] = torch.cat([tail(feats[i: i + 4096]) for i in range(0, len(feats), 4096)]).double().numpy()
        return out
    for i in range(0, len(images), batch_size):
        x = to_model_input(images[i: i + batch_size])  # (B, 1, 48, 48)
        out[:, i: i + len(x)] = np.stack([m(x).double().numpy() for m in models])
    return out


def audit_twins(card: ModelCard, cfgs: list[TrainConfig], n_rows: int = 10_000, seed: int = 0,
                ds: FERDataset | None = None) -> dict:
    """Audit a recipe through its twins: each twin the target once, the others its shadows.

    Args:
        card: the audited model's card. cfgs: every twin's config (:func:`train_twins`), all trained.
        n_rows: audited rows, a seeded sample of the model's training rows (every twin has about
            half of them as members).
        ds: the dataset (default: the twins' data with their label set).

    Returns:
        ``{"model", "twins", "n_rows", "blind": BlindResult on every twin's members vs non-members (pooled, as
        the attacks are: :func:`~fer_core.audit.blind.pooled_blind_baseline`),
        "loss": attack_metrics, "lira": attack_metrics (online, fixed variance; pooled over targets),
        "lira_offline": the same with OUT shadows only (Carlini et al.'s offline variant),
        "claimed_epsilon", "delta"}``.
    """
    cfg0 = cfgs[0]
    ds = ds or load_data(cfg0)
    pool, _ = train_row_indices(dataclasses.replace(cfg0, twin=None), ds, strategy_for(cfg0).rows(cfg0))
    membership = twin_membership(len(pool), cfg0.twins, cfg0.twin_seed)  # (K, n_pool), as the twins trained
    # a stream of its own: the twins' halves draw permutations from default_rng(seed) itself
    pick = np.sort(np.random.default_rng([seed, 1]).permutation(len(pool))[: min(n_rows, len(pool))])
    rows, inside = pool[pick], membership[:, pick]  # (n,), (K, n)
    labels = ds.labels[rows].astype(np.int64)
    logits = twin_logits(cfgs, ds.images[rows], library=ds.images, data_sha256=ds.sha256)  # (K, n, C)
    phi = np.stack([logit_confidence(z, labels) for z in logits])  # (K, n)
    p_true = np.exp(-np.logaddexp(0.0, -phi))  # sigmoid(phi) = p of the true label
    k = len(cfgs)
    lira, lira_member, offline, offline_member, loss, member = [], [], [], [], [], []
    for t in range(k):
        others = [j for j in range(k) if j != t]
        n_in = inside[others].sum(axis=0)
        ok = (n_in > 0) & (n_in < k - 1)  # LiRA online needs IN and OUT shadows
        lira.append(lira_scores(phi[t, ok], phi[others][:, ok], inside[others][:, ok], online=True,
                                fixed_variance=True))
        lira_member.append(inside[t, ok])
        has_out = n_in < k - 1  # LiRA offline needs OUT shadows only
        offline.append(lira_scores(phi[t, has_out], phi[others][:, has_out], inside[others][:, has_out],
                                   online=False, fixed_variance=True))
        offline_member.append(inside[t, has_out])
        loss.append(loss_scores(p_true[t]))
        member.append(inside[t])
    delta = card.delta or 1e-5
    return {
        "model": card.name, "twins": k, "n_rows": len(rows),
        "blind": pooled_blind_baseline(ds.images[rows], inside, seed=seed),
        "loss": attack_metrics(np.concatenate(member), np.concatenate(loss), delta=delta, seed=seed),
        "lira": attack_metrics(np.concatenate(lira_member), np.concatenate(lira), delta=delta, seed=seed),
        "lira_offline": attack_metrics(np.concatenate(offline_member), np.concatenate(offline), delta=delta,
                                       seed=seed),
        "claimed_epsilon": card.epsilon, "delta": card.delta,
    }


def twin_training_seconds(cfgs: list[TrainConfig], only_now: bool = False) -> list[float]:
    """Each twin's training wall time (s, from its final card; resumed runs included), or with ``only_now``
    the part of it spent in this process (0 for a twin read back: :func:`train_twins` marks the ones it ran)."""
    out = []
    for c in cfgs:
        card = finished_card(c) or {}
        spent = float(card.get("wall_time_s") or 0.0)
        out.append(spent if not only_now or c.out in _TRAINED_NOW else 0.0)
    return out


#: ``out`` folders of the twins trained (not read back) in this process.
_TRAINED_NOW: set[str] = set()


def twin_audit_rows(result: dict, card: ModelCard, seconds: float, command: str = "",
                    overrides: dict | None = None) -> list[dict]:
    """The ``audit_twins.csv`` rows (:data:`~fer_core.results.files.TWIN_AUDIT_COLUMNS`) of one
    :func:`audit_twins` result: one per attack. ``seconds``: what the audit cost, every twin's training wall
    time (:func:`twin_training_seconds`) plus the audit itself."""
    blind = result["blind"]
    rows = []
    for attack in TWIN_ATTACKS:
        m = result[attack]
        rows.append({
            "model": card.name, "private": card.is_private, "method": card.privacy.get("method", ""),
            "claimed_epsilon": card.epsilon, "delta": card.delta, "attack": attack, "twins": result["twins"],
            "n_rows": result["n_rows"], **{k: m[k] for k in ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr",
                                                             "balanced_accuracy", "epsilon_lower_bound")},
            **{f"{k}_{end}": round(m[f"{k}_interval"][i], 6) for k in ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")
               for i, end in enumerate(("low", "high"))},
            "blind_auc": round(blind.auc, 4), "blind_auc_low": round(blind.auc_interval[0], 4),
            "blind_auc_high": round(blind.auc_interval[1], 4), "blind_shifted": blind.shifted,
            "twin_overrides": json.dumps(overrides or {}, sort_keys=True), "seconds": round(seconds, 1),
            "command": command,
        })
    return rows


#: Fewest twins :func:`run_twin_audit` takes: with 2, a row is out of one other twin only, whose scores have no
#: variance to fit (LiRA, :func:`fer_core.audit.lira.lira_scores`).
MIN_TWINS = 3


def run_twin_audit(paths: list[str], twins: int = 16, seed: int = 0, n_rows: int = 10_000, data: str | None = None,
                   out_root: Path = TWIN_AUDIT_DIR, results: str | None = None, command: str = "",
                   **overrides) -> list[dict]:
    """Train (or reuse) every model's twins, audit them, write ``audit_twins.csv`` and each card's ``audit_twins``.

    Args:
        paths: checkpoints whose recipes are audited.
        overrides: recipe changes for every twin (e.g. ``epochs``), recorded in the rows.

    Returns:
        The audited models' rows as the results file now holds them (numbers as floats, as
        :func:`~fer_core.results.files.read_twin_audit` reads them); other models' rows stay in the file.

    Raises:
        ValueError: fewer than :data:`MIN_TWINS` twins (checked before any twin trains).
    """
    if twins < MIN_TWINS:
        raise ValueError(f"--twins {twins}: LiRA fits each row's scores over the other twins, which needs at least "
                         f"{MIN_TWINS} twins (each row out of two of them or more); use --twins {MIN_TWINS} or more")
    audited = set()
    for path in paths:
        card = read_card(path)
        audited.add(card.name)
        t0 = time.perf_counter()
        cfgs = train_twins(card, twins, seed, out_root, data, **overrides)
        result = audit_twins(card, cfgs, n_rows=n_rows, seed=seed)
        audit_s = time.perf_counter() - t0 - sum(twin_training_seconds(cfgs, only_now=True))
        rows = twin_audit_rows(result, card, sum(twin_training_seconds(cfgs)) + audit_s, command, overrides)
        write_twin_audit(rows, results or TWIN_AUDIT_RESULTS,
                         rocs={card.name: {a: result[a]["roc"] for a in TWIN_ATTACKS}})
        update_card(path, audit_twins={r["attack"]: {k: r[k] for k in TWIN_AUDIT_COLUMNS
                                                     if k not in ("model", "command")} for r in rows})
        lira = next(r for r in rows if r["attack"] == "lira")
        print(f"{card.name}: {twins} twins, LiRA AUC {lira['auc']:.3f}, TPR@0.1%FPR {lira['tpr_at_0.1pct_fpr']:.4f}, "
              f"empirical epsilon >= {lira['epsilon_lower_bound']:.2f}; blind AUC {lira['blind_auc']:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return [r for r in read_twin_audit(results or TWIN_AUDIT_RESULTS) if r["model"] in audited]
