"""Differential privacy for training: DP-SGD through Opacus, privacy accounting, public/private rows.

This is the one module that calls ``opacus.PrivacyEngine.make_private``. DP-SGD (Abadi et al.
2016, "Deep Learning with Differential Privacy") clips every example's gradient to L2 norm
``max_grad_norm``, adds Gaussian noise of standard deviation ``noise_multiplier * max_grad_norm`` to
the sum, and samples batches with Poisson sampling (each row independently with probability
``sample_rate``), which is what the accountants assume. ``epsilon`` is the privacy loss for
``delta`` (the probability of failing the bound), computed by Opacus's PRV accountant (Gopi et al.
2021) or RDP accountant (Mironov 2017); which one produced a figure is always recorded.

Distributed DP-SGD (several processes under ``torchrun``) uses Opacus's own support:
``DifferentiallyPrivateDistributedDataParallel`` and ``DistributedDPOptimizer`` (each rank clips
its per-sample gradients, rank 0 alone adds the noise, the sums are all-reduced) with
``DistributedUniformWithReplacementSampler`` (each rank Poisson-samples its shard of the rows at the
global rate q). Every row is still included independently with probability q, the noise is that of
one process, and the accountant records the same (sigma, q, steps): epsilon does not depend on the
number of processes.

Privacy unit: one FER2013 training row (one face image). Rows declared *public* (the two-stage
method's stage-1 rows) are not covered by the guarantee; the model card says which rows are.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

DELTA = 1e-5  # < 1 / N for FER2013 Training (28,709 rows)
ACCOUNTANTS = ("prv", "rdp")
DP_METHODS = ("dp-sgd", "scatternet", "two-stage")
METHOD_NOTES = {
    "dp-sgd": "end-to-end DP-SGD from random initialisation; every training row is private",
    "scatternet": "DP-SGD on fixed wavelet-scattering features (Tramer & Boneh 2021); every training row is private",
    "two-stage": "stage 1 non-private on a declared public share of Training, stage 2 DP-SGD fine-tuning "
    "on the remaining (private) rows; epsilon covers the private rows only",
}


class PrivacyError(ValueError):
    """Settings that cannot give the requested guarantee (e.g. delta >= 1/N, unreachable epsilon)."""


@dataclass(frozen=True)
class PrivateLoader:
    """What :func:`make_private` returns: the wrapped model, DP optimizer, Poisson loader, engine."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    data_loader: torch.utils.data.DataLoader
    engine: object  # opacus.PrivacyEngine


def _check(sample_rate: float, delta: float, accountant: str) -> None:
    if not 0.0 < sample_rate <= 1.0:
        raise PrivacyError(f"sample_rate must be in (0, 1], got {sample_rate}")
    if not 0.0 < delta < 1.0:
        raise PrivacyError(f"delta must be in (0, 1), got {delta}")
    if accountant not in ACCOUNTANTS:
        raise PrivacyError(f"unknown accountant {accountant!r}; choose one of {', '.join(ACCOUNTANTS)}")


def noise_multiplier_for(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "prv"
) -> float:
    """The smallest noise multiplier (sigma) whose ``steps`` Poisson-sampled DP-SGD steps spend ``epsilon``.

    Args:
        epsilon: target privacy loss, > 0. delta: target delta in (0, 1).
        sample_rate: Poisson sampling probability q = batch size / N, in (0, 1].
        steps: optimizer steps (epochs / q).
        accountant: ``"prv"`` (Gopi et al. 2021) or ``"rdp"`` (Mironov 2017).

    Returns:
        sigma (dimensionless: noise std divided by ``max_grad_norm``), found by Opacus's
        ``get_noise_multiplier`` (bisection to within its epsilon tolerance of 0.01).

    Raises:
        PrivacyError: bad arguments or an epsilon the accountant cannot reach.
    """
    from opacus.accountants.utils import get_noise_multiplier

    _check(sample_rate, delta, accountant)
    if epsilon <= 0 or steps < 1:
        raise PrivacyError(f"epsilon must be > 0 and steps >= 1 (got epsilon={epsilon}, steps={steps})")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Optimal order.*")
            return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                              steps=steps, accountant=accountant, epsilon_tolerance=0.005))
    except ValueError as exc:
        raise PrivacyError(f"cannot reach epsilon={epsilon} with {accountant}: {exc}") from exc


def epsilon_for(noise_multiplier: float, sample_rate: float, steps: int, delta: float = DELTA,
                accountant: str = "prv") -> float:
    """Privacy loss epsilon of ``steps`` Poisson-sampled DP-SGD steps (Opacus's accountant).

    Args:
        noise_multiplier: sigma > 0. sample_rate: q in (0, 1]. steps: >= 0. delta: in (0, 1).
        accountant: ``"prv"`` or ``"rdp"``.

    Returns:
        epsilon (``0.0`` for zero steps).

    Raises:
        PrivacyError: bad arguments.
    """
    from opacus.accountants import create_accountant

    _check(sample_rate, delta, accountant)
    if noise_multiplier <= 0:
        raise PrivacyError(f"noise_multiplier must be > 0 for a finite epsilon, got {noise_multiplier}")
    if steps <= 0:
        return 0.0
    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, int(steps))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta=delta))


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


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: torch.utils.data.DataLoader,
    noise_multiplier: float,
    max_grad_norm: float,
    accountant: str = "prv",
    grad_sample_mode: str = "hooks",
    distributed: bool = False,
) -> PrivateLoader:
    """Wrap a model, optimizer and loader for DP-SGD with Poisson sampling (Opacus).

    Args:
        model: the module whose trainable parameters DP-SGD updates (must pass
            ``ModuleValidator.validate``: GroupNorm, no BatchNorm).
        optimizer: a plain optimizer over those parameters.
        data_loader: a loader over the private rows; its ``batch_size`` becomes the expected
            (logical) batch size and its ``generator`` drives the Poisson sampler.
        noise_multiplier: sigma >= 0 (0 only for tests: no privacy).
        max_grad_norm: per-sample L2 clipping bound C > 0 (``float('inf')`` disables clipping).
        accountant: ``"prv"`` or ``"rdp"``; the engine's accountant records every step.
        grad_sample_mode: Opacus's per-sample-gradient mode (``"hooks"`` or ``"ew"``).
        distributed: data-parallel DP-SGD in an initialised ``torch.distributed`` process group:
            the model is wrapped in Opacus's ``DifferentiallyPrivateDistributedDataParallel``
            (rank 0's weights broadcast), the optimizer is Opacus's ``DistributedDPOptimizer`` and
            each rank Poisson-samples its shard
            (:class:`fer_core.dp_sampler.LockstepDistributedSampler`). ``data_loader``
            covers all rows on every rank and its ``batch_size`` is the *global* expected batch, so
            the sample rate, and epsilon, are those of one process with that batch.

    Returns:
        :class:`PrivateLoader` with the wrapped ``GradSampleModule``, ``DPOptimizer``,
        ``DPDataLoader`` (Poisson sampling) and the ``PrivacyEngine``.

    Raises:
        PrivacyError: an unknown accountant or a negative noise multiplier.
    """
    from opacus import PrivacyEngine

    if accountant not in ACCOUNTANTS:
        raise PrivacyError(f"unknown accountant {accountant!r}; choose one of {', '.join(ACCOUNTANTS)}")
    if noise_multiplier < 0 or max_grad_norm <= 0:
        raise PrivacyError(f"need noise_multiplier >= 0 and max_grad_norm > 0 "
                           f"(got {noise_multiplier}, {max_grad_norm})")
    if distributed:
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel

        model = DifferentiallyPrivateDistributedDataParallel(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")  # secure_mode is for production
        engine = PrivacyEngine(accountant=accountant)
        dp_model, dp_optimizer, dp_loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=data_loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode=grad_sample_mode,
        )
    if distributed:  # Opacus's sampler, minus its skipping of empty local batches (same rate and length)
        from fer_core.dp_sampler import LockstepDistributedSampler

        sampler = LockstepDistributedSampler(total_size=len(dp_loader.dataset), sample_rate=dp_loader.sample_rate,
                                             generator=dp_loader.generator)
        assert len(sampler) == len(dp_loader), "the accountant's sample rate must match the sampler's"
        dp_loader = torch.utils.data.DataLoader(dp_loader.dataset, batch_sampler=sampler,
                                                collate_fn=dp_loader.collate_fn, generator=dp_loader.generator)
    return PrivateLoader(dp_model, dp_optimizer, dp_loader, engine)


def spent_epsilon(engine, delta: float) -> float:
    """Epsilon recorded so far by a ``PrivacyEngine``'s accountant for ``delta`` (0.0 before any step)."""
    if not engine.accountant.history:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(engine.accountant.get_epsilon(delta=delta))


def privacy_block(
    *,
    method: str,
    epsilon: float,
    delta: float,
    accountant: str,
    noise_multiplier: float,
    max_grad_norm: float,
    sample_rate: float,
    batch_size: int,
    steps: int,
    epochs: int,
    private_rows: int,
    rows_description: str,
    target_epsilon: float | None,
    trainable: str,
    public_rows: int = 0,
) -> dict:
    """The model card's ``privacy`` block for a DP checkpoint (every figure the claim rests on)."""
    return {
        "private": True,
        "method": method,
        "method_note": METHOD_NOTES.get(method, ""),
        "epsilon": round(float(epsilon), 4),
        "target_epsilon": target_epsilon,
        "delta": delta,
        "accountant": accountant,
        "noise_multiplier": float(noise_multiplier),
        "max_grad_norm": float(max_grad_norm),
        "sample_rate": float(sample_rate),
        "expected_batch_size": int(batch_size),
        "poisson_sampling": True,
        "steps": int(steps),
        "epochs": int(epochs),
        "private_rows": int(private_rows),
        "public_rows": int(public_rows),
        "rows": rows_description,
        "trainable": trainable,
        "unit": "one training face image (example-level DP)",
        "library": "opacus " + _opacus_version(),
    }


def _opacus_version() -> str:
    import opacus

    return opacus.__version__
