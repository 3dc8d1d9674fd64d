"""Privacy accounting for DP-SGD: epsilon, delta, the noise multiplier, and the sampling plan.

DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy") samples batches with Poisson
sampling (each row independently with probability ``sample_rate``), which is what the accountants
assume. ``epsilon`` is the privacy loss for ``delta`` (the probability of failing the bound),
computed by Opacus's PRV accountant (Gopi et al. 2021) or RDP accountant (Mironov 2017); which one
produced a figure is always recorded.

:func:`sampling_plan` is the ONE formula from (N, batch size, epochs) to (sample rate, steps): the
private training strategy and the budget planner (:func:`plan_budget`, the Privacy trade-off page)
both call it, so the planner quotes the epsilon a run will spend.

Privacy unit: one FER2013 training row (one face image). Rows declared *public* (the two-stage
method's stage-1 rows) are not covered by the guarantee; the model card says which rows are.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

DELTA = 1e-5  # < 1 / N for FER2013 Training (28,709 rows)
ACCOUNTANTS = ("prv", "rdp")
DP_METHODS = ("dp-sgd", "scatternet", "two-stage", "public-features", "public-finetune")
#: The methods that stand on public pretrained backbones (architecture ``facex``; every Training row private).
PUBLIC_BACKBONE_METHODS = ("public-features", "public-finetune")


class PrivacyError(ValueError):
    """Settings that cannot give the requested guarantee (e.g. delta >= 1/N, unreachable epsilon)."""


@dataclass(frozen=True)
class SamplingPlan:
    """How many Poisson-sampled DP-SGD steps a run takes, and at which sample rate."""

    sample_rate: float  # q in (0, 1]: each private row joins a step's batch independently with probability q
    steps_per_epoch: int
    steps: int  # over all epochs: what the accountant composes


def sampling_plan(rows: int, batch_size: int, epochs: int) -> SamplingPlan:
    """The sample rate and steps of DP-SGD over ``rows`` private rows, as Opacus's ``DPDataLoader`` runs it.

    Opacus turns a loader of batch size b over N rows into ``ceil(N / b)`` Poisson batches per epoch,
    each row drawn with ``q = 1 / ceil(N / b)`` (expected batch ``q * N``, close to b), and its accountant
    records exactly these (q, steps). Training and the planner both use this function.

    Args:
        rows: N >= 1. batch_size: the expected (logical) batch, 1..N. epochs: >= 1.

    Returns:
        :class:`SamplingPlan` with ``sample_rate = 1 / ceil(N / b)``, ``steps_per_epoch = ceil(N / b)``,
        ``steps = epochs * ceil(N / b)``.

    Raises:
        PrivacyError: sizes out of range.
    """
    n, b, e = int(rows), int(batch_size), int(epochs)
    if n < 1 or not 1 <= b <= n or e < 1:
        raise PrivacyError(f"need N >= 1, 1 <= batch size <= N and epochs >= 1 (got N={n}, batch={b}, epochs={e})")
    per_epoch = math.ceil(n / b)
    return SamplingPlan(sample_rate=1.0 / per_epoch, steps_per_epoch=per_epoch, steps=e * per_epoch)



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
    from opacus.accountants.utils import get_noise_multiplier  # heavy; private runs only

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
    from opacus.accountants import create_accountant  # heavy; private runs only

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






def spent_epsilon(engine, delta: float) -> float:
    """Epsilon recorded so far by a ``PrivacyEngine``'s accountant for ``delta`` (0.0 before any step; ``inf``
    once a step without noise was taken: no finite guarantee holds, and Opacus's PRV accountant cannot say so)."""
    if not engine.accountant.history:
        return 0.0
    if any(float(h[0]) <= 0 for h in engine.accountant.history):
        return math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(engine.accountant.get_epsilon(delta=delta))


def plan_budget(
    private_rows: int,
    batch_size: int,
    epochs: int,
    delta: float,
    accountant: str = "prv",
    noise_multiplier: float | None = None,
    target_epsilon: float | None = None,
) -> dict:
    """DP-SGD budget planning: epsilon for a noise multiplier, or the noise multiplier for an epsilon.

    The sample rate and steps come from :func:`sampling_plan`, exactly as a private run computes
    them, so the epsilon quoted here is the epsilon such a run records. Give exactly one of
    ``noise_multiplier`` and ``target_epsilon``.

    Args:
        private_rows: N, the number of private training rows, >= 1.
        batch_size: expected (logical) batch size, 1..N.
        epochs: >= 1.
        delta: in (0, 1/N): a delta of 1/N or more would allow leaking one row outright.
        accountant: ``"prv"`` or ``"rdp"``.
        noise_multiplier: sigma > 0 -> computes epsilon (:func:`fer_core.privacy.accounting.epsilon_for`).
        target_epsilon: > 0 -> computes sigma (:func:`fer_core.privacy.accounting.noise_multiplier_for`).

    Returns:
        ``{"sample_rate", "steps", "delta", "accountant", "epsilon", "noise_multiplier"}``.

    Raises:
        fer_core.privacy.accounting.PrivacyError: bad sizes, ``delta >= 1/N``, neither or both of
            ``noise_multiplier``/``target_epsilon``, or an epsilon the accountant cannot reach.
    """

    plan = sampling_plan(private_rows, batch_size, epochs)
    n = int(private_rows)
    if not 0 < delta < 1 / n:
        raise PrivacyError(f"delta must be in (0, 1/N) = (0, {1 / n:.3g}) for N={n} rows, got {delta:g}: "
                           "a delta of 1/N or more allows publishing one row outright")
    if (noise_multiplier is None) == (target_epsilon is None):
        raise PrivacyError("give exactly one of noise_multiplier and target_epsilon")
    q, steps = plan.sample_rate, plan.steps
    if noise_multiplier is not None:
        eps = epsilon_for(float(noise_multiplier), q, steps, delta=delta, accountant=accountant)
        sigma = float(noise_multiplier)
    else:
        sigma = noise_multiplier_for(float(target_epsilon), delta, q, steps, accountant=accountant)
        eps = epsilon_for(sigma, q, steps, delta=delta, accountant=accountant)
    return {"sample_rate": q, "steps": steps, "delta": delta, "accountant": accountant, "epsilon": eps,
            "noise_multiplier": sigma}
