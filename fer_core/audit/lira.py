"""LiRA: the likelihood-ratio membership-inference attack (Carlini et al. 2022, "Membership Inference
Attacks From First Principles", IEEE S&P).

For each audited example, shadow models trained on random halves of a pool either saw it (IN) or not
(OUT). LiRA fits a Gaussian to the shadow models' *logit-scaled confidence* of the true label,
``phi = log p_y - log(1 - p_y)`` (:func:`logit_confidence`), separately for IN and OUT, and scores the
target model's ``phi`` by

* **online**: the log likelihood ratio ``log N(phi; mu_in, sd_in) - log N(phi; mu_out, sd_out)``;
* **offline** (OUT models only, cheaper: they can be shared by every target): the one-sided
  ``log Pr[Z <= phi]`` for ``Z ~ N(mu_out, sd_out)``: how much more confident the target is than
  models that never saw the example.

Higher scores mean "more likely a member". With few shadow models the per-example variance is
noisy; the paper's *fixed variance* variant pools one variance over all examples (``fixed_variance``).
"""

from __future__ import annotations

import numpy as np
import torch

from fer_core.privacy.rows import random_halves  # noqa: F401  (re-exported: shadow-model memberships)

#: Smallest standard deviation of a fitted Gaussian (avoids infinite ratios with identical shadows).
MIN_SD = 1e-3


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``phi = log p_y - log(1 - p_y)`` from raw logits, computed stably (Carlini et al. 2022, Sec. IV).

    Args:
        logits: ``float (N, K)`` pre-softmax outputs. labels: ``int (N,)`` true class ids in ``0..K-1``.

    Returns:
        ``float64 (N,)``: ``z_y - logsumexp_{j != y} z_j`` (unbounded; about ``log(p / (1 - p))``).

    Raises:
        ValueError: shapes that do not match.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.int64)
    if z.ndim != 2 or y.shape != (len(z),):
        raise ValueError(f"need logits (N, K) and labels (N,), got {z.shape} and {y.shape}")
    zt = torch.from_numpy(z)
    true = zt[torch.arange(len(y)), torch.from_numpy(y)]
    others = zt.clone()
    others[torch.arange(len(y)), torch.from_numpy(y)] = -torch.inf
    return (true - torch.logsumexp(others, dim=1)).numpy()


def _fit(phis: np.ndarray, mask: np.ndarray, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and sd of ``phis`` (K, N) over the shadow models where ``mask`` (K, N) holds."""
    m = mask.astype(np.float64)
    count = m.sum(axis=0)
    if (count < 1).any():
        raise ValueError(f"{int((count < 1).sum())} examples have no shadow model on this side; "
                         "train more shadow models (each example must be IN and OUT of some)")
    mu = (phis * m).sum(axis=0) / count
    var = (((phis - mu) ** 2) * m).sum(axis=0) / np.maximum(count - 1, 1)
    if fixed_variance:
        var = np.full_like(var, float(np.average(var, weights=count)))
    return mu, np.maximum(np.sqrt(var), MIN_SD)


def _log_normal_pdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def lira_scores(target_phi: np.ndarray, shadow_phi: np.ndarray, shadow_in: np.ndarray, online: bool = True,
                fixed_variance: bool = False) -> np.ndarray:
    """LiRA scores of the audited examples.

    Args:
        target_phi: ``(N,)`` the target model's :func:`logit_confidence` on each audited example.
        shadow_phi: ``(K, N)`` the same for each of K shadow models.
        shadow_in: ``bool (K, N)``: shadow model k was trained on example n.
        online: the two-sided likelihood ratio (needs IN and OUT shadows per example); else offline
            (OUT shadows only).
        fixed_variance: one pooled variance per side instead of one per example (better with few shadows).

    Returns:
        ``float64 (N,)``; higher = more likely a member.

    Raises:
        ValueError: shapes that disagree, or an example with no IN (online) or OUT shadow model.
    """
    t = np.asarray(target_phi, np.float64)
    s = np.asarray(shadow_phi, np.float64)
    inside = np.asarray(shadow_in, bool)
    if s.ndim != 2 or s.shape != inside.shape or s.shape[1] != len(t):
        raise ValueError(f"need target (N,), shadows (K, N) and membership (K, N); got {t.shape}, {s.shape}, "
                         f"{inside.shape}")
    mu_out, sd_out = _fit(s, ~inside, fixed_variance)
    if not online:
        return torch.special.log_ndtr(torch.from_numpy((t - mu_out) / sd_out)).numpy()
    mu_in, sd_in = _fit(s, inside, fixed_variance)
    return _log_normal_pdf(t, mu_in, sd_in) - _log_normal_pdf(t, mu_out, sd_out)


