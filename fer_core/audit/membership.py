"""Membership-inference audit: measure what a model leaks about its training faces.

Question: given a face and the model, can an attacker tell whether that face was in the training
set? We run two attacks on a balanced, seeded set of *members* (rows the model trained on; for a
two-stage model its private rows) and *non-members* (rows it never saw: ``PublicTest`` and
``PrivateTest`` minus images that also occur in ``Training``, since FER2013 has cross-split
duplicates) and report ROC AUC, TPR at 1 % and 0.1 % FPR, the best balanced accuracy and an
empirical lower bound on epsilon.

Attacks:

* **Loss threshold** (Yeom et al. 2018, "Privacy Risk in Machine Learning"): score = log-probability
  of the true label; members tend to have higher ones.
* **RMIA, offline** (Zarifzadeh et al. 2024, "Low-Cost High-Power Membership Inference Attacks"):
  the likelihood ratio ``Pr(y|x, target) / Pr(y|x)`` of a face is compared with the same ratio of
  population faces ``z``; ``Pr(y|x)`` is estimated from *reference models* trained on rows the
  target never saw (none of the audited rows), with the offline correction
  ``Pr(x) = ((1 + a) * mean_ref + (1 - a)) / 2`` (``a = 0.3``, their recommended offline value).

Empirical epsilon (Jagielski et al. 2020; Nasr et al. 2021): any (epsilon, delta)-DP training bounds
every attack by ``TPR <= e^eps * FPR + delta`` and ``1 - FPR <= e^eps * (1 - TPR) + delta``, so a
measured (TPR, FPR) gives ``eps >= max(ln((TPR - delta) / FPR), ln((1 - FPR - delta) / (1 - TPR)))``.
We pick the threshold on one half of the audit rows and evaluate it on the other half, with
Clopper-Pearson intervals at confidence ``1 - alpha`` (TPR's lower and FPR's upper end), so the bound
holds with that confidence: it never exceeds a true DP model's epsilon except by chance ``alpha``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from fer_core import LABEL_SETS
from fer_core.audit.attacks import attack_metrics, loss_scores, rmia_scores
from fer_core.audit.blind import blind_baseline
from fer_core.data.datasets import load_dataset
from fer_core.data.ferplus import with_label_set
from fer_core.models.architectures import build_model
from fer_core.models.checkpoint import load_checkpoint, read_card, update_card
from fer_core.models.predict import predict_proba
from fer_core.results.files import AUDIT_RESULTS, audit_roc_path, read_audit, read_audit_roc, write_audit
from fer_core.training.config import TrainConfig
from fer_core.training.lifecycle import strategy_for
from fer_core.training.optim import make_optimizer
from fer_core.training.plain import train_one_epoch
from fer_core.training.rows import train_row_indices


@dataclass(frozen=True)
class AuditRows:
    """Global row indices (into the dataset) of the audit sets, all disjoint."""

    members: np.ndarray  # int64 (n,)
    nonmembers: np.ndarray  # int64 (n,)
    population: np.ndarray  # int64 (m,): RMIA's reference faces z (non-members, not audited)
    reference_pool: np.ndarray  # int64 (r,): rows the reference models may train on
    description: str


def membership_rows(card: dict, dataset, n: int = 2000, n_population: int = 1000, seed: int = 0) -> AuditRows:
    """Balanced members / non-members for a model, from its model card.

    Members are a seeded sample of the rows the card's training config trained on
    (:func:`fer_core.training.rows.train_row_indices`: all of ``Training``, its public share or its
    private share; ``limit_train`` honoured).
    Non-members, population faces and the reference models' pool are disjoint samples of
    ``PublicTest`` + ``PrivateTest`` rows whose image does not also occur in ``Training``.

    Args:
        card: the model card (:func:`fer_core.models.checkpoint.read_card`).
        dataset: the :class:`fer_core.data.datasets.FERDataset` the model was trained on (same sha256).
        n: members and non-members each (fewer if the data has fewer).
        n_population: RMIA's population faces.

    Returns:
        :class:`AuditRows`.

    Raises:
        ValueError: the dataset is not the card's (sha256 differs) or has too few unseen rows.
    """

    data = card.get("data", {})
    if data.get("sha256") and data["sha256"] != dataset.sha256:
        raise ValueError("this dataset is not the one the model was trained on (sha256 differs); "
                         "audit it with the training data file")
    cfg = TrainConfig.from_dict(card.get("config", {}))
    train, rows = train_row_indices(cfg, dataset, strategy_for(cfg).rows(cfg))
    which = rows["train_rows"]
    unseen = np.concatenate([dataset.indices(s)[dataset.dedup_mask(s)]
                             for s in ("PublicTest", "PrivateTest") if s in dataset.splits])
    rng = np.random.default_rng(seed)
    unseen = rng.permutation(unseen)
    n = min(n, len(train), len(unseen) // 3)
    if n < 10:
        raise ValueError(f"too few rows to audit ({n} members/non-members)")
    n_population = min(n_population, (len(unseen) - n) // 2)
    members = np.sort(rng.choice(train, n, replace=False))
    nonmembers = np.sort(unseen[:n])
    population = np.sort(unseen[n: n + n_population])
    pool = np.sort(unseen[n + n_population:])
    desc = (f"{n} members sampled from the {len(train):,} training rows ({which}); {n} non-members, "
            f"{len(population)} population faces and {len(pool)} reference-model rows from PublicTest+PrivateTest "
            f"without Training duplicates; seed {seed}")
    return AuditRows(members, nonmembers, population, pool, desc)


def true_label_probability(model, images: np.ndarray, labels: np.ndarray, preprocessing: dict | None = None,
                           batch_size: int = 512) -> np.ndarray:
    """``float64 (N,)``: the model's softmax probability of each face's true label (0-1)."""

    pre = preprocessing or {}
    probs = predict_proba(model, images, batch_size, mean=pre.get("mean", 0.5), std=pre.get("std", 0.25))
    return probs[np.arange(len(labels)), np.asarray(labels, np.int64)].astype(np.float64)


# Reference models for RMIA: small ResNets, each on a seeded half of the reference pool.
REFERENCE_ARGS = {"widths": [16, 32, 64, 128], "blocks": [1, 1, 1, 1], "stem": 16}


def train_reference_models(dataset, pool: np.ndarray, k: int = 4, epochs: int = 15, seed: int = 0,
                           cache_dir=None, progress: bool = False) -> list:
    """``k`` small reference models, each trained (ordinary recipe) on a seeded half of ``pool``.

    None of them sees an audited row (``pool`` is disjoint from the audit sets). Weights are cached
    in ``cache_dir`` (safetensors, keyed by the pool, k, epochs and seed) and reused by later audits.

    Returns:
        A list of ``k`` modules in eval mode.
    """
    key = hashlib.sha256(np.asarray(pool, np.int64).tobytes()
                         + f"{k},{epochs},{seed},{dataset.sha256},{dataset.label_set}".encode())
    cache = Path(cache_dir) / f"refs_{key.hexdigest()[:16]}" if cache_dir else None
    models = []
    rng = np.random.default_rng(seed)
    for r in range(k):
        rows = np.sort(rng.choice(pool, len(pool) // 2, replace=False))
        args = {**REFERENCE_ARGS, "num_classes": len(LABEL_SETS[dataset.label_set])}
        model = build_model("resnet", **args)
        path = cache / f"ref{r}.safetensors" if cache else None
        if path is not None and path.exists():
            model.load_state_dict(load_file(str(path)))
        else:
            cfg = TrainConfig(arch="resnet", model_args=args, epochs=epochs, batch_size=64, lr=0.05,
                              warmup_epochs=1, ema_decay=0, seed=seed + r, channels_last=False, progress=progress)
            opt = make_optimizer(model, cfg)
            x, y = torch.from_numpy(dataset.images[rows]), torch.from_numpy(dataset.labels[rows])
            for e in range(epochs):
                train_one_epoch(model, model, opt, x, y, cfg, e)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_file({n: t.contiguous() for n, t in model.state_dict().items()}, str(path))
        models.append(model.eval())
    return models


def audit_checkpoint(path, data=None, n: int = 2000, n_population: int = 1000, references: int = 4,
                     reference_epochs: int = 15, seed: int = 0, alpha: float = 0.05, cache_dir="runs/audit",
                     write_card: bool = True) -> dict:
    """Run both attacks against one checkpoint.

    Args:
        path: checkpoint folder or name. data: dataset path (default: the FER2013 file).
        n: members and non-members each. references: RMIA reference models (0: loss attack only).
        alpha: the epsilon bound holds with confidence ``1 - alpha``.
        write_card: store the result (without ROC points) in the card's ``audit`` field.

    Returns:
        ``{"model", "claimed_epsilon", "delta", "rows", "attacks": {"loss": metrics, "rmia": metrics},
        "references", "blind", "seconds"}`` with :func:`attack_metrics`' dicts; ``blind`` is the blind baseline
        of the member and non-member sets (:func:`fer_core.audit.blind.blind_baseline`: ``blind_auc``,
        ``blind_auc_low``, ``blind_auc_high``, ``blind_shifted``): these members come from Training and these
        non-members from the test splits, so it measures how far the audit measures the split.

    Raises:
        fer_core.models.checkpoint.CheckpointError, fer_core.data.datasets.DatasetError, ValueError.
    """
    t0 = time.perf_counter()
    ck = load_checkpoint(path)
    ds = with_label_set(load_dataset(data), ck.card.label_set)
    rows = membership_rows(ck.card, ds, n, n_population, seed)
    privacy = ck.card.privacy
    delta = ck.card.delta or 1e-5
    audited = np.r_[rows.members, rows.nonmembers]
    labels = np.r_[np.ones(len(rows.members), bool), np.zeros(len(rows.nonmembers), bool)]
    p_t = true_label_probability(ck.model, ds.images[audited], ds.labels[audited], ck.card.get("preprocessing"))
    attacks = {"loss": attack_metrics(labels, loss_scores(p_t), delta, alpha, seed)}
    blind = blind_baseline(ds.images[rows.members], ds.images[rows.nonmembers], seed=seed)
    if references > 0:
        refs = train_reference_models(ds, rows.reference_pool, references, reference_epochs, seed, cache_dir)
        pop = rows.population
        p_pop = true_label_probability(ck.model, ds.images[pop], ds.labels[pop], ck.card.get("preprocessing"))
        p_refs = np.stack([true_label_probability(m, ds.images[audited], ds.labels[audited]) for m in refs])
        p_refs_pop = np.stack([true_label_probability(m, ds.images[pop], ds.labels[pop]) for m in refs])
        attacks["rmia"] = attack_metrics(labels, rmia_scores(p_t, p_refs, p_pop, p_refs_pop), delta, alpha, seed)
    result = {
        "model": ck.name, "private": ck.card.is_private, "method": privacy.get("method", "none"),
        "claimed_epsilon": ck.card.epsilon, "delta": delta, "rows": rows.description,
        "attacks": attacks, "references": references, "reference_epochs": reference_epochs, "alpha": alpha,
        "blind": _blind_fields(blind), "seconds": round(time.perf_counter() - t0, 1),
    }
    if write_card:
        update_card(ck.path, audit={**result, "attacks": {a: {k: v for k, v in m.items() if k != "roc"}
                                                           for a, m in attacks.items()}})
    return result


def audit_rows(result: dict) -> list[dict]:
    """``audit.csv`` rows (one per attack) of an :func:`audit_checkpoint` result."""
    out = []
    for attack, m in result["attacks"].items():
        out.append({
            "model": result["model"], "private": result["private"], "method": result["method"],
            "claimed_epsilon": "" if result["claimed_epsilon"] is None else result["claimed_epsilon"],
            "delta": result["delta"], "attack": attack, "auc": round(m["auc"], 4),
            "tpr_at_1pct_fpr": round(m["tpr_at_1pct_fpr"], 4), "tpr_at_0.1pct_fpr": round(m["tpr_at_0.1pct_fpr"], 4),
            "balanced_accuracy": round(m["balanced_accuracy"], 4),
            "epsilon_lower_bound": round(m["epsilon_lower_bound"], 4), "n_members": m["n_members"],
            "n_nonmembers": m["n_nonmembers"], "references": result["references"], "seconds": result["seconds"],
            **result.get("blind", {}),
        })
    return out


def _blind_fields(blind) -> dict:
    return {"blind_auc": round(blind.auc, 4), "blind_auc_low": round(blind.auc_interval[0], 4),
            "blind_auc_high": round(blind.auc_interval[1], 4), "blind_shifted": blind.shifted}


def add_blind_baselines(results_csv=None, data=None, n: int = 2000, n_population: int = 1000,
                        seed: int = 0) -> list[dict]:
    """Fill the blind-baseline columns of an existing ``audit.csv`` without re-running its attacks.

    The audit's member and non-member sets are a deterministic function of the card, the data, ``n``,
    ``n_population`` and ``seed`` (:func:`membership_rows`), so they are drawn again and the blind baseline
    (:func:`fer_core.audit.blind.blind_baseline`, which never looks at the model) is run on them. A row whose
    recorded ``n_members`` / ``n_nonmembers`` differ from the sets drawn is left alone (it was audited with other
    settings).

    Returns:
        Every row now in the CSV.
    """
    results_csv = Path(results_csv or AUDIT_RESULTS)
    rows = read_audit(results_csv) or []
    rocs = read_audit_roc(audit_roc_path(results_csv))
    for model in dict.fromkeys(r["model"] for r in rows):
        card = read_card(model)
        ds = with_label_set(load_dataset(data), card.label_set)
        sets = membership_rows(card, ds, n, n_population, seed)
        mine = [r for r in rows if r["model"] == model and r.get("n_members") == len(sets.members)
                and r.get("n_nonmembers") == len(sets.nonmembers)]
        if not mine:
            continue
        fields = _blind_fields(blind_baseline(ds.images[sets.members], ds.images[sets.nonmembers], seed=seed))
        for r in mine:
            r.update(fields)
        print(f"{model}: blind AUC {fields['blind_auc']:.3f} [{fields['blind_auc_low']:.3f}, "
              f"{fields['blind_auc_high']:.3f}]{' (shifted)' if fields['blind_shifted'] else ''}", flush=True)
    write_audit(rows, rocs, results_csv)
    return rows


def run_audit(paths, results_csv=None, roc_json=None, **kwargs) -> list[dict]:
    """Audit several checkpoints; (re)write ``audit.csv`` and the ROC points beside it after each, keeping other
    models' rows (through :func:`fer_core.results.files.write_audit`).

    Args:
        paths: checkpoint folders or names.
        results_csv: default :data:`fer_core.results.files.AUDIT_RESULTS`; roc_json: where the ROC points
            are read from (default ``audit_roc.json`` beside the CSV, where they are always written).
        kwargs: passed to :func:`audit_checkpoint`.

    Returns:
        All rows now in the CSV.
    """
    results_csv = Path(results_csv or AUDIT_RESULTS)
    rows = {(r["model"], r["attack"]): r for r in read_audit(results_csv) or []}
    rocs = read_audit_roc(roc_json or audit_roc_path(results_csv))
    for p in paths:
        result = audit_checkpoint(p, **kwargs)
        rows = {k: v for k, v in rows.items() if k[0] != result["model"]}
        for r in audit_rows(result):
            rows[(r["model"], r["attack"])] = r
        rocs[result["model"]] = {a: m["roc"] for a, m in result["attacks"].items()}
        write_audit(rows.values(), rocs, results_csv)
        print(f"{result['model']}: " + ", ".join(f"{a} AUC {m['auc']:.3f}, eps_lb {m['epsilon_lower_bound']:.2f}"
                                                 for a, m in result["attacks"].items())
              + f" ({result['seconds']:.0f} s)", flush=True)
    return list(rows.values())
