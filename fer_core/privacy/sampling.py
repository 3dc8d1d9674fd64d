"""Poisson sampling for distributed DP-SGD that keeps every rank on the same step.

Kept apart from :mod:`fer_core.privacy` because subclassing Opacus's sampler imports Opacus
(seconds), which the app's pages that only read privacy constants should not pay for.
"""

from __future__ import annotations

import torch
from opacus.utils.uniform_sampler import DistributedUniformWithReplacementSampler


class LockstepDistributedSampler(DistributedUniformWithReplacementSampler):
    """Opacus's distributed Poisson sampler, except that an empty local batch is yielded, not skipped.

    Each rank takes its shard of a (seeded) shuffle of the rows and, for each of the epoch's
    ``1 / sample_rate`` steps, includes each of its rows independently with probability
    ``sample_rate``. Upstream (Opacus 1.6) skips a step whose local batch came out empty; that rank
    then takes fewer steps than the others and the next gradient all-reduce pairs different steps or
    hangs. Here every rank yields exactly ``len(self)`` batches, so ranks step in lockstep (an empty
    local batch contributes nothing but the rank still joins the all-reduce).
    """

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.shuffle_seed + self.epoch)
            indices = torch.randperm(self.total_size, generator=g)
        else:
            indices = torch.arange(self.total_size)
        indices = indices[self.rank: self.total_size: self.num_replicas]
        for _ in range(self.num_batches):
            mask = torch.rand(self.num_samples, generator=self.generator) < self.sample_rate
            yield indices[mask.nonzero(as_tuple=False).reshape(-1)].tolist()
