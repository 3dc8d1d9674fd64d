"""Which training rows are public and which are private (the two-stage method's declared split).

Rows declared public train stage 1 without privacy; the guarantee covers the private rest only, and
the model card says so. The split is seeded and recorded, so stage 2 can check that stage 1 never saw
a private row.
"""

from __future__ import annotations

import numpy as np

from fer_core.privacy.accounting import PrivacyError


def public_private_split(n: int, public_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Partition row indices ``0..n-1`` into a public share and the private rest (seeded, disjoint).

    Args:
        n: number of training rows. public_fraction: share declared public, in (0, 1).
        seed: the split's seed (recorded in the model card).

    Returns:
        ``(public, private)``: sorted ``int64`` index arrays; together they are ``0..n-1``.

    Raises:
        PrivacyError: ``public_fraction`` outside (0, 1) or a share with no rows.
    """
    if not 0.0 < public_fraction < 1.0:
        raise PrivacyError(f"public_fraction must be in (0, 1), got {public_fraction}")
    n_public = int(round(n * public_fraction))
    if n_public < 1 or n_public >= n:
        raise PrivacyError(f"public_fraction {public_fraction} of {n} rows leaves an empty share")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_public]).astype(np.int64), np.sort(perm[n_public:]).astype(np.int64)


def random_halves(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``bool (k, n)`` memberships of k models, each trained on its own seeded random half of n rows.

    The halves are drawn independently (Carlini et al. 2022, "Membership Inference Attacks From
    First Principles"), so how many of the *other* models hold a row says nothing about whether a
    given model holds it: leave-one-out shadow models stay unbiased (an exactly balanced design,
    where every row is in k/2 models, would give the target's membership away through the count).

    Raises:
        ValueError: k < 2 or n < 2.
    """
    if k < 2 or n < 2:
        raise ValueError(f"need at least 2 models and 2 rows, got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    inside = np.zeros((k, n), bool)
    for j in range(k):
        inside[j, rng.permutation(n)[: n // 2]] = True
    return inside
