"""Training cost on this machine: plain training vs each private (DP-SGD) method, same model and batch.

    python benchmarks/bench_train.py [--threads 2] [--batch-size 256] [--steps 6] [--json]
    python benchmarks/bench_train.py --nproc 2 [--modes plain dp-sgd] [--threads 2] [--json]

For each mode, one model is trained on synthetic 48x48 faces for ``--steps`` optimizer steps after
one warm-up step and the figures are:
  samples_per_s  training samples per second (forward + backward + step; DP: per-sample gradients,
                 clipping, noise; Poisson batches of expected size --batch-size)
  peak_rss_mb    the process's peak resident memory after the mode ran (ru_maxrss; each mode runs
                 in its own subprocess so the peaks do not mix)
  cost_ratio     plain samples_per_s / this mode's samples_per_s, for the same architecture
Modes: plain (ResNet48, all layers), dp-sgd (ResNet48, all layers), plain-scatternet and scatternet
(the CNN head on precomputed scattering features; the one-off feature cost is reported apart),
two-stage (DP on ResNet48's last block over precomputed trunk features).

With ``--nproc N`` it compares data-parallel training instead: each mode (``plain``: PyTorch
DistributedDataParallel; ``dp-sgd``: Opacus's distributed DP-SGD) once in 1 process with
``--threads`` threads and once in N processes launched by torchrun (gloo) with
``max(1, threads // N)`` threads each, at the same global batch; samples_per_s counts the samples of
all processes, speedup is N-process / 1-process samples_per_s. On a machine with as many cores as
threads, this asks whether processes use the cores better than threads do.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from fer_core.data.preprocess import to_model_input
from fer_core.models.architectures import build_model, split_for_finetune
from fer_core.training.distributed import SINGLE, DistContext, all_reduce_sum, distributed_session

MODES = ("plain", "dp-sgd", "plain-scatternet", "scatternet", "plain-two-stage", "two-stage")
BASE = {"plain": "plain", "dp-sgd": "plain", "scatternet": "plain-scatternet", "plain-scatternet": "plain-scatternet",
        "two-stage": "plain-two-stage", "plain-two-stage": "plain-two-stage"}


def _faces(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 48, 48), dtype=torch.uint8, generator=g), torch.randint(0, 7, (n,), generator=g)


DDP_MODES = ("plain", "dp-sgd")  # what --nproc compares


def run_mode(mode: str, batch_size: int, steps: int, ctx: DistContext = SINGLE) -> dict:
    """Train ``steps`` steps in ``mode``; return samples/s (of all ranks) and the one-off feature seconds.

    With a distributed ``ctx`` (only ``plain`` and ``dp-sgd``), ``batch_size`` is the global batch.
    """
    from fer_core.privacy.engine import make_private

    arch = "scatternet" if "scatternet" in mode else "resnet"
    trainable = "all" if mode in ("plain", "dp-sgd") or "scatternet" in mode else "last-block"
    model = build_model(arch)
    prefix, tail = split_for_finetune(model, trainable)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in tail.parameters():
        p.requires_grad_(True)
    n = batch_size * (steps + 1)
    images, labels = _faces(n)
    t0 = time.perf_counter()
    with torch.no_grad():
        inputs = images if isinstance(prefix, torch.nn.Identity) else torch.cat(
            [prefix.eval()(to_model_input(images[i: i + 256])) for i in range(0, n, 256)])
    feature_s = time.perf_counter() - t0
    raw = isinstance(prefix, torch.nn.Identity)
    tail.train()
    opt = torch.optim.SGD([p for p in tail.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    private = mode in ("dp-sgd", "scatternet", "two-stage")
    if private:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=batch_size,
                                             generator=torch.Generator().manual_seed(ctx.rank))
        dp = make_private(tail, opt, loader, noise_multiplier=1.0, max_grad_norm=1.0, distributed=ctx.distributed)
        step_model, opt = dp.model, dp.optimizer
        batches = iter(dp.data_loader)
    else:
        step_model = tail
        if ctx.distributed:
            step_model = torch.nn.parallel.DistributedDataParallel(tail)
        local = batch_size // ctx.world_size  # this rank's slice of each global batch
        batches = ((inputs[i + ctx.rank * local: i + (ctx.rank + 1) * local],
                    labels[i + ctx.rank * local: i + (ctx.rank + 1) * local]) for i in range(0, n, batch_size))
    seen, start = 0, None
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()  # after one warm-up step
        x, y = next(batches)
        x = to_model_input(x) if raw else x
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(step_model(x), y).backward()
        opt.step()
        if i >= 1:
            seen += len(y)
    seconds = time.perf_counter() - start
    seen = all_reduce_sum([seen], ctx)[0]
    return {"mode": mode, "arch": arch, "trainable": trainable, "private": private, "batch_size": batch_size,
            "processes": ctx.world_size, "threads_per_process": torch.get_num_threads(),
            "samples_per_s": round(seen / seconds, 1), "feature_s_per_1k": round(1000 * feature_s / n, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _one(mode: str, a: argparse.Namespace, nproc: int = 1, threads: int | None = None) -> dict:
    """Run one mode in fresh processes (torchrun when ``nproc`` > 1); rank 0's JSON result."""
    launcher = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    out = subprocess.run([*launcher, __file__, "--one", mode, "--threads", str(threads or a.threads),
                          "--batch-size", str(a.batch_size), "--steps", str(a.steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_processes(a: argparse.Namespace) -> int:
    """``--nproc N``: each DDP mode in 1 process x ``threads`` vs N processes x ``threads // N``."""
    if a.batch_size % a.nproc:
        raise SystemExit(f"error: --batch-size {a.batch_size} must be a multiple of --nproc {a.nproc}")
    rows = []
    for mode in [m for m in (a.modes or DDP_MODES) if m in DDP_MODES] or list(DDP_MODES):
        one = _one(mode, a)
        many = _one(mode, a, a.nproc, max(1, a.threads // a.nproc))
        many["speedup"] = round(many["samples_per_s"] / one["samples_per_s"], 2)
        one["speedup"] = 1.0
        rows += [one, many]
    if a.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'mode':8} {'processes x threads':>20} {'samples/s':>10} {'speedup':>8}  (global batch {a.batch_size}, "
          f"{a.steps} timed steps)")
    for r in rows:
        print(f"{r['mode']:8} {str(r['processes']) + ' x ' + str(r['threads_per_process']):>20} "
              f"{r['samples_per_s']:>10.1f} {r['speedup']:>8.2f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--modes", nargs="+", default=None, choices=MODES,
                    help=f"default: all ({', '.join(DDP_MODES)} with --nproc)")
    ap.add_argument("--nproc", type=int, default=0,
                    help="compare 1 process with this many data-parallel processes (torchrun, gloo)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per mode")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one mode in this process
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.one:
        with distributed_session(torch.device("cpu")) as ctx:
            result = run_mode(a.one, a.batch_size, a.steps, ctx)
        if ctx.is_main:
            print(json.dumps(result))
        return 0
    if a.nproc > 1:
        return compare_processes(a)
    a.modes = a.modes or list(MODES)
    results = {}
    for mode in a.modes:
        results[mode] = _one(mode, a)
    for r in results.values():
        base = results.get(BASE[r["mode"]])
        r["cost_ratio"] = round(base["samples_per_s"] / r["samples_per_s"], 2) if base else None
    if a.json:
        for r in results.values():
            print(json.dumps(r))
    else:
        print(f"{'mode':18} {'samples/s':>10} {'peak MB':>8} {'cost ratio':>10}  (threads {a.threads}, "
              f"batch {a.batch_size})")
        for r in results.values():
            print(f"{r['mode']:18} {r['samples_per_s']:>10.1f} {r['peak_rss_mb']:>8.0f} "
                  f"{r['cost_ratio'] if r['cost_ratio'] is not None else '':>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
