"""Data-parallel training across processes and machines with ``torch.distributed`` (launched by torchrun).

``python -m fer_core train`` runs unchanged under ``torchrun``: every process (rank) runs the same
command, holds a full copy of the model and trains on its own share of each global batch. Plain
training wraps the model in ``torch.nn.parallel.DistributedDataParallel`` (gradients averaged by
an all-reduce in every backward pass; Li et al. 2020, "PyTorch Distributed"); private training uses
Opacus's ``DifferentiallyPrivateDistributedDataParallel`` and distributed DP optimizer (see
:func:`fer_core.privacy.engine.make_private`). Backends: ``gloo`` on CPU, ``nccl`` on CUDA GPUs.

What this module provides: the launch context read from torchrun's environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, plus ``MASTER_ADDR``/``MASTER_PORT`` that
``init_process_group`` reads), the process group's set-up and teardown, per-rank seeds, validation
shards and their reduction, and a check that all ranks hold the same weights. Without torchrun
(or with ``WORLD_SIZE=1``) everything degrades to the single-process path: no process group, rank 0
of 1, and every helper is the identity.

Conventions used by the training loops: ``--batch-size`` is the *global* batch (each of ``W``
ranks takes ``batch_size / W`` rows of it), so a run's steps, learning-rate schedule and - for
DP-SGD - sampling rate and epsilon do not depend on how many processes ran it. Only rank 0 writes
files (``state.pt``, history, best weights, model card, export); a resumed run's state is read by
rank 0 and broadcast, so the run folder need only exist on rank 0's machine. The data set and an
``--init-from`` checkpoint must be readable on every machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file

#: If set, every rank writes its weights after each epoch to ``$FER_DIST_WEIGHTS_DIR/rank{r}_epoch{e}.safetensors``
#: (used by the tests to compare ranks from outside; costs one file per rank and epoch).
WEIGHTS_DIR_ENV = "FER_DIST_WEIGHTS_DIR"


class DistributedError(RuntimeError):
    """A launch that cannot work (e.g. more processes per machine than GPUs) or ranks that diverged."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank in ``0..world_size-1``; 0 is the process that writes files.
        world_size: number of processes (1: not distributed).
        local_rank: rank on this machine (selects the GPU).
        backend: ``"gloo"``, ``"nccl"`` or ``None`` (single process).
        device: where the reductions' tensors live (CPU for gloo, this rank's GPU for nccl).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        """For the model card: ``{"world_size", "backend"}``."""
        return {"world_size": self.world_size, "backend": self.backend}


SINGLE = DistContext()


def launched_rank() -> int:
    """This process's rank as torchrun set it (``RANK``), 0 when not launched by torchrun."""
    return int(os.environ.get("RANK", "0"))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


@contextlib.contextmanager
def distributed_session(device: torch.device) -> Iterator[DistContext]:
    """Join the process group torchrun set up (if any) for the duration of a training run.

    Args:
        device: where this process trains; ``cuda`` selects the ``nccl`` backend and the GPU
            ``cuda:LOCAL_RANK``, anything else ``gloo``.

    Yields:
        The :class:`DistContext`; :data:`SINGLE` when ``WORLD_SIZE`` is unset or 1. A process group
        that already exists (a caller that set one up) is used and left open; one created here
        is destroyed on exit.

    Raises:
        DistributedError: ``LOCAL_RANK`` names a GPU this machine does not have.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        yield SINGLE
        return
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise DistributedError(
                f"LOCAL_RANK={local_rank} but this machine has {count} GPU(s); launch at most "
                f"--nproc_per_node {count} processes per machine")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend)
    else:
        backend = dist.get_backend()
    ctx = DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                      backend=backend, device=device)
    if ctx.rank != rank:
        raise DistributedError(f"RANK={rank} but the process group says rank {ctx.rank}")
    try:
        yield ctx
    finally:
        if owns and dist.is_initialized():
            dist.destroy_process_group()


def per_rank_batch(batch_size: int, ctx: DistContext) -> int:
    """Rows of each global batch that one rank takes: ``batch_size / world_size``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of the number of processes.
    """
    if batch_size % ctx.world_size:
        raise ValueError(f"--batch-size {batch_size} (the global batch) does not split evenly over "
                         f"{ctx.world_size} processes; use a multiple of {ctx.world_size}")
    return batch_size // ctx.world_size


def rank_seed(base: int, ctx: DistContext) -> int:
    """The seed of this rank's random draws (augmentation, dropout, Poisson sampling).

    ``base`` itself in a single process (so single-process runs are unchanged); otherwise a seed
    derived from ``(base, rank)`` by NumPy's ``SeedSequence``, so ranks draw independently and a
    resumed run with the same number of processes draws the same numbers.
    """
    if not ctx.distributed:
        return base
    return int(np.random.SeedSequence([base, ctx.rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def shard(rows, ctx: DistContext):
    """This rank's share of ``rows`` (every ``world_size``-th row from ``rank``): disjoint, covering."""
    return rows[ctx.rank:: ctx.world_size] if ctx.distributed else rows


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum each of ``values`` over all ranks (float64); the values themselves in a single process."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def reduce_metrics(report: dict, ctx: DistContext) -> dict:
    """Combine per-rank ``{"loss", "accuracy", "n"}`` measured on disjoint shards into the whole set's.

    Returns:
        ``{"loss": mean over all rows, "accuracy": share correct, "n": rows}``, the same on every rank.
    """
    if not ctx.distributed:
        return report
    n_local = report["n"]
    loss_sum, correct, n = all_reduce_sum(
        [report["loss"] * n_local, round(report["accuracy"] * n_local), n_local], ctx)
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1), "n": int(n)}


def broadcast_from_main(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank (pickled; e.g. a resumed run's state). Identity in a single process."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.backend == "nccl" else None)
    return box[0]


def weights_digest(*modules: torch.nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of the modules' state dicts, in order."""
    h = hashlib.sha256()
    for m in modules:
        for name, t in m.state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_in_sync(ctx: DistContext, epoch: int, *modules: torch.nn.Module) -> None:
    """Stop the run if the ranks' weights differ (data parallelism keeps them bit-identical).

    Each rank hashes its weights (:func:`weights_digest`) and the digests are compared on all ranks.
    With ``FER_DIST_WEIGHTS_DIR`` set, each rank also writes its weights there.

    Raises:
        DistributedError: naming the ranks whose weights differ from rank 0's.
    """
    if not ctx.distributed:
        return
    out = os.environ.get(WEIGHTS_DIR_ENV)
    if out:

        tensors = {f"{i}.{k}": v.detach().cpu().contiguous()
                   for i, m in enumerate(modules) for k, v in m.state_dict().items()}
        Path(out).mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(Path(out) / f"rank{ctx.rank}_epoch{epoch + 1}.safetensors"))
    digests: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(digests, weights_digest(*modules))
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise DistributedError(f"after epoch {epoch + 1} the weights of rank(s) {differ} differ from rank 0's; "
                               "data-parallel replicas must stay identical (a non-deterministic op or a "
                               "rank that skipped a step)")
