"""Differential privacy: the one call of Opacus's ``make_private``, privacy accounting (epsilon, delta,
noise multiplier, and the one formula from N, batch size and epochs to sample rate and steps),
the budget planner, public/private row splits and DP sampling for data-parallel runs.
"""

from fer_core.privacy.accounting import (
    ACCOUNTANTS,
    DELTA,
    DP_METHODS,
    PrivacyError,
    SamplingPlan,
    epsilon_for,
    noise_multiplier_for,
    plan_budget,
    sampling_plan,
    spent_epsilon,
)
from fer_core.privacy.engine import (
    METHOD_NOTES,
    PrivateLoader,
    make_private,
    privacy_block,
)
from fer_core.privacy.rows import (
    public_private_split,
    random_halves,
)
from fer_core.privacy.sampling import (
    LockstepDistributedSampler,
)

__all__ = [
    "ACCOUNTANTS",
    "DELTA",
    "DP_METHODS",
    "LockstepDistributedSampler",
    "METHOD_NOTES",
    "PrivacyError",
    "PrivateLoader",
    "SamplingPlan",
    "epsilon_for",
    "make_private",
    "noise_multiplier_for",
    "plan_budget",
    "privacy_block",
    "public_private_split",
    "random_halves",
    "sampling_plan",
    "spent_epsilon",
]
