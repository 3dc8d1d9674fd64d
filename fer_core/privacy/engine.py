"""DP-SGD through Opacus: the ONE place that calls ``opacus.PrivacyEngine.make_private``, and the
card's privacy block.

DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy") clips every example's gradient
to L2 norm ``max_grad_norm``, adds Gaussian noise of standard deviation ``noise_multiplier *
max_grad_norm`` to the sum, and samples batches with Poisson sampling (each row independently with
probability ``sample_rate``, :func:`fer_core.privacy.accounting.sampling_plan`).

Distributed DP-SGD (several processes under ``torchrun``) uses Opacus's own support:
``DifferentiallyPrivateDistributedDataParallel`` and ``DistributedDPOptimizer`` (each rank clips
its per-sample gradients, rank 0 alone adds the noise, the sums are all-reduced) with a Poisson
sampler per rank (:class:`fer_core.privacy.sampling.LockstepDistributedSampler`) at the global rate
q. Every row is still included independently with probability q, the noise is that of one process,
and the accountant records the same (sigma, q, steps): epsilon does not depend on the number of
processes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from fer_core.privacy.accounting import ACCOUNTANTS, PrivacyError
from fer_core.privacy.sampling import LockstepDistributedSampler

METHOD_NOTES = {
    "dp-sgd": "end-to-end DP-SGD from random initialisation; every training row is private",
    "scatternet": "DP-SGD on fixed wavelet-scattering features (Tramer & Boneh 2021); every training row is private",
    "two-stage": "stage 1 non-private on a declared public share of Training, stage 2 DP-SGD fine-tuning "
    "on the remaining (private) rows; epsilon covers the private rows only",
    "public-features": "DP-SGD of a linear head on the frozen features of a public backbone never trained on "
    "FER2013 (facex's MobileNetV2, with SFace's face-identity trunk where the card lists it), standardised with "
    "PublicTest statistics; every training row is private",
    "public-finetune": "DP-SGD of the model's own copies of the last blocks of a public backbone never trained on "
    "FER2013 (facex's MobileNetV2), initialised from the public weights, and of a linear head, on the frozen "
    "backbone's cached earlier outputs (with SFace's face-identity features where the card lists them); "
    "standardised with PublicTest statistics; every training row is private",
}


@dataclass(frozen=True)
class PrivateLoader:
    """What :func:`make_private` returns: the wrapped model, DP optimizer, Poisson loader, engine."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    data_loader: torch.utils.data.DataLoader
    engine: object  # opacus.PrivacyEngine


#: The clipping bound that stands for "no clipping" in Opacus (no per-sample gradient norm reaches it).
_NO_CLIPPING = 1e30


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
        noise_multiplier: sigma >= 0 (0: no privacy, for tests and a method's non-private reference).
        max_grad_norm: per-sample L2 clipping bound C > 0; ``float('inf')`` disables clipping, only without noise
            (a non-private reference run: no bound, no sensitivity to calibrate noise to).
        accountant: ``"prv"`` or ``"rdp"``; the engine's accountant records every step.
        grad_sample_mode: Opacus's per-sample-gradient mode (``"hooks"`` or ``"ew"``).
        distributed: data-parallel DP-SGD in an initialised ``torch.distributed`` process group:
            the model is wrapped in Opacus's ``DifferentiallyPrivateDistributedDataParallel``
            (rank 0's weights broadcast), the optimizer is Opacus's ``DistributedDPOptimizer`` and
            each rank Poisson-samples its shard
            (:class:`fer_core.privacy.sampling.LockstepDistributedSampler`). ``data_loader``
            covers all rows on every rank and its ``batch_size`` is the *global* expected batch, so
            the sample rate, and epsilon, are those of one process with that batch.

    Returns:
        :class:`PrivateLoader` with the wrapped ``GradSampleModule``, ``DPOptimizer``,
        ``DPDataLoader`` (Poisson sampling) and the ``PrivacyEngine``.

    Raises:
        PrivacyError: an unknown accountant or a negative noise multiplier.
    """
    from opacus import PrivacyEngine  # heavy; private runs only

    if accountant not in ACCOUNTANTS:
        raise PrivacyError(f"unknown accountant {accountant!r}; choose one of {', '.join(ACCOUNTANTS)}")
    if noise_multiplier < 0 or max_grad_norm <= 0:
        raise PrivacyError(f"need noise_multiplier >= 0 and max_grad_norm > 0 "
                           f"(got {noise_multiplier}, {max_grad_norm})")
    if math.isinf(max_grad_norm):
        if noise_multiplier > 0:
            raise PrivacyError("max_grad_norm inf (no clipping) bounds no sample's influence, so noise cannot hide "
                               "it: give a finite max_grad_norm, or noise_multiplier 0 for a non-private reference")
        max_grad_norm = _NO_CLIPPING  # Opacus scales its noise by C: 0 * inf would be NaN
    if distributed:
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel  # heavy; private runs only

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

        sampler = LockstepDistributedSampler(total_size=len(dp_loader.dataset), sample_rate=dp_loader.sample_rate,
                                             generator=dp_loader.generator)
        assert len(sampler) == len(dp_loader), "the accountant's sample rate must match the sampler's"
        dp_loader = torch.utils.data.DataLoader(dp_loader.dataset, batch_sampler=sampler,
                                                collate_fn=dp_loader.collate_fn, generator=dp_loader.generator)
    return PrivateLoader(dp_model, dp_optimizer, dp_loader, engine)


#: ``privacy.randomness`` of a run whose sampling and noise came from a secret seed.
SECRET_RANDOMNESS = "secret seed (OS entropy, not in the card): sampling and noise cannot be replayed"
#: ``privacy.randomness`` of a run (or an older card without the field) whose sampling and noise came from its
#: public seed: the epsilon is the accountant's, but it does not hold against anyone who knows that seed.
PUBLIC_RANDOMNESS = ("public seed (the card's config.seed): sampling and noise can be replayed by anyone with the "
                     "card, so the epsilon does not hold against such an adversary; retrain with secret randomness")


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
    secret_randomness: bool = True,
) -> dict:
    """The model card's ``privacy`` block for a DP checkpoint (every figure the claim rests on).

    ``randomness`` says where the Poisson sampling and the noise came from: a secret seed (the guarantee's
    premise) or the public seed in the card (:data:`PUBLIC_RANDOMNESS`: anyone with the card could replay them).
    """
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
        "randomness": SECRET_RANDOMNESS if secret_randomness else PUBLIC_RANDOMNESS,
    }


def _opacus_version() -> str:
    import opacus  # heavy; private runs only

    return opacus.__version__
