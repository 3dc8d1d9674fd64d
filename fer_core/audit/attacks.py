"""Membership-inference attacks and their statistics: the loss-threshold attack (Yeom et al. 2018), offline
RMIA (Zarifzadeh et al. 2024), ROC curves, TPR at low FPR, Clopper-Pearson intervals and the empirical
epsilon lower bound of an attack (Jagielski et al. 2020). LiRA lives in :mod:`fer_core.audit.lira`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, norm

from fer_core.evaluation.metrics import roc_auc

RMIA_OFFLINE_A = 0.3


def loss_scores(p_true: np.ndarray) -> np.ndarray:
    """Loss-threshold attack scores (Yeom et al. 2018): ``log p(y|x)`` = minus the loss; higher = member."""
    return np.log(np.clip(p_true, 1e-12, 1.0))


def rmia_scores(p_target: np.ndarray, p_refs: np.ndarray, p_target_pop: np.ndarray, p_refs_pop: np.ndarray,
                a: float = RMIA_OFFLINE_A, gamma: float = 1.0) -> np.ndarray:
    """Offline RMIA scores (Zarifzadeh et al. 2024): share of population faces each face dominates.

    Args:
        p_target: ``(N,)`` target model's probability of the true label of each audited face.
        p_refs: ``(R, N)`` the same under each of R reference models (none trained on these faces).
        p_target_pop, p_refs_pop: ``(M,)`` and ``(R, M)`` for the population faces z.
        a: offline correction; gamma: likelihood-ratio threshold.

    Returns:
        ``float64 (N,)`` in [0, 1]; higher = more likely a member.
    """
    def ratio(p_t, p_r):
        p_x = 0.5 * ((1 + a) * p_r.mean(axis=0) + (1 - a))
        return p_t / np.clip(p_x, 1e-12, None)

    rx = ratio(p_target, p_refs)  # (N,)
    rz = np.sort(ratio(p_target_pop, p_refs_pop))  # (M,)
    # score(x) = Pr_z[ rx / rz > gamma ] = share of z with rz < rx / gamma
    return np.searchsorted(rz, rx / gamma, side="left") / len(rz)


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the rule "member if score >= threshold", thresholds descending."""
    labels = np.asarray(labels, bool)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    s, y = np.asarray(scores, np.float64)[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(~y)[distinct]
    tpr = np.r_[0.0, tp / max(y.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~y).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """Highest TPR whose FPR is at most ``target`` (0-1)."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided ``1 - alpha`` Clopper-Pearson interval for a binomial proportion ``k / n``."""
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def epsilon_lower_bound(tp: int, n_pos: int, fp: int, n_neg: int, delta: float = 1e-5, alpha: float = 0.05) -> float:
    """Empirical epsilon implied by an attack's counts, at confidence ``1 - alpha`` (0 if none).

    ``eps >= max(ln((TPR_lo - delta) / FPR_hi), ln((1 - FPR_hi - delta) / (1 - TPR_lo)))`` with
    Clopper-Pearson ends (Jagielski et al. 2020, "Auditing Differentially Private Machine Learning").
    """
    tpr_lo, _ = clopper_pearson(tp, n_pos, alpha)
    _, fpr_hi = clopper_pearson(fp, n_neg, alpha)
    bounds = [0.0]
    if tpr_lo - delta > 0 and fpr_hi > 0:
        bounds.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1 - fpr_hi - delta > 0 and 1 - tpr_lo > 0:
        bounds.append(math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    return max(bounds)


def epsilon_lower_bounds(tp: np.ndarray, n_pos: int, fp: np.ndarray, n_neg: int, delta: float = 1e-5,
                         alpha: float = 0.05) -> np.ndarray:
    """:func:`epsilon_lower_bound` of many thresholds at once: ``float64 (T,)`` from ``int (T,)`` counts."""
    tp, fp = np.asarray(tp, np.float64), np.asarray(fp, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr_lo = np.where(tp == 0, 0.0, beta.ppf(alpha / 2, tp, n_pos - tp + 1))
        fpr_hi = np.where(fp == n_neg, 1.0, beta.ppf(1 - alpha / 2, fp + 1, n_neg - fp))
        b1 = np.where((tpr_lo - delta > 0) & (fpr_hi > 0), np.log((tpr_lo - delta) / fpr_hi), 0.0)
        b2 = np.where((1 - fpr_hi - delta > 0) & (1 - tpr_lo > 0), np.log((1 - fpr_hi - delta) / (1 - tpr_lo)), 0.0)
    return np.maximum(0.0, np.maximum(b1, b2))


def _best_threshold(labels: np.ndarray, scores: np.ndarray, delta: float, alpha: float) -> float | None:
    """The threshold ("member if score >= t") with the largest epsilon bound on these rows (the first of ties)."""
    _, _, thr = roc_curve(labels, scores)
    if len(thr) < 2:
        return None
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last row of each distinct score, descending
    tp, fp = np.cumsum(y)[ends], np.cumsum(~y)[ends]  # counts of "score >= thr[1:]"
    eps = epsilon_lower_bounds(tp, int(labels.sum()), fp, int((~labels).sum()), delta, alpha)
    return float(thr[1:][int(np.argmax(eps))])


def auc_interval(auc: float, n_pos: int, n_neg: int, alpha: float = 0.05) -> tuple[float, float]:
    """Normal-approximation ``1 - alpha`` interval of an AUC from its standard error (Hanley & McNeil 1982,
    "The meaning and use of the area under a ROC curve"), clipped to [0, 1]."""
    a = float(auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / max(n_pos * n_neg, 1)
    z = float(norm.ppf(1 - alpha / 2))
    half = z * math.sqrt(max(var, 0.0))
    return max(0.0, a - half), min(1.0, a + half)


def _roc_points(fpr: np.ndarray, n: int = 400) -> np.ndarray:
    """Indices of at most ~``n`` ROC points: half evenly spaced, half log-spaced in FPR (the low-FPR corner)."""
    even = np.linspace(0, len(fpr) - 1, min(len(fpr), n // 2)).astype(int)
    low = np.searchsorted(fpr, np.geomspace(1e-5, 1.0, n // 2))
    return np.unique(np.clip(np.r_[0, even, low, len(fpr) - 1], 0, len(fpr) - 1))


def attack_metrics(labels: np.ndarray, scores: np.ndarray, delta: float = 1e-5, alpha: float = 0.05,
                   seed: int = 0) -> dict:
    """AUC, TPR at 1 % / 0.1 % FPR (with intervals), best balanced accuracy and the empirical epsilon lower bound.

    The threshold for the epsilon bound is chosen (max bound) on a seeded half of the rows and
    evaluated on the other half, so the bound is not inflated by choosing on the same rows.

    Args:
        labels: ``bool (N,)``, True = member. scores: ``float (N,)``, higher = member.
        alpha: 1 - confidence of the epsilon bound and of the intervals.

    Returns:
        ``{"auc", "auc_interval" (Hanley-McNeil), "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_interval",
        "tpr_at_0.1pct_fpr", "tpr_at_0.1pct_fpr_interval" (Clopper-Pearson on the members above that
        threshold), "balanced_accuracy", "epsilon_lower_bound", "n_members", "n_nonmembers",
        "roc": {"fpr", "tpr"} (at most ~400 points, dense in the low-FPR corner)}``; intervals are
        ``(low, high)`` at ``1 - alpha``.
    """

    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    fpr, tpr, _ = roc_curve(labels, scores)
    rng = np.random.default_rng(seed)
    half = np.zeros(len(labels), bool)
    for cls in (True, False):  # stratified halves
        idx = rng.permutation(np.flatnonzero(labels == cls))
        half[idx[: len(idx) // 2]] = True
    best_t = _best_threshold(labels[half], scores[half], delta, alpha)
    held = ~half
    pred = scores[held] >= best_t if best_t is not None else np.zeros(held.sum(), bool)
    eps_lb = epsilon_lower_bound(int((pred & labels[held]).sum()), int(labels[held].sum()),
                                 int((pred & ~labels[held]).sum()), int((~labels[held]).sum()), delta, alpha)
    keep = _roc_points(fpr)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    auc = roc_auc(labels, scores)
    tprs = {f: tpr_at_fpr(fpr, tpr, f) for f in (0.01, 0.001)}
    cp = {f: clopper_pearson(int(round(t * n_pos)), n_pos, alpha) for f, t in tprs.items()}
    return {
        "auc": auc,
        "auc_interval": auc_interval(auc, n_pos, n_neg, alpha) if auc is not None else None,
        "tpr_at_1pct_fpr": tprs[0.01],
        "tpr_at_1pct_fpr_interval": cp[0.01],
        "tpr_at_0.1pct_fpr": tprs[0.001],
        "tpr_at_0.1pct_fpr_interval": cp[0.001],
        "balanced_accuracy": float(np.max(0.5 * (tpr + 1 - fpr))),
        "epsilon_lower_bound": eps_lb,
        "n_members": n_pos,
        "n_nonmembers": n_neg,
        "roc": {"fpr": fpr[keep].round(6).tolist(), "tpr": tpr[keep].round(6).tolist()},
    }


