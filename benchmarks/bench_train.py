"""Training cost on this machine: plain training vs each private (DP-SGD) method, same model and batch.

    python benchmarks/bench_train.py [--threads 2] [--batch-size 256] [--steps 6] [--json]

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

from fer_core.models import build_model, split_for_finetune  # noqa: E402
from fer_core.preprocess import to_model_input  # noqa: E402

MODES = ("plain", "dp-sgd", "plain-scatternet", "scatternet", "plain-two-stage", "two-stage")
BASE = {"plain": "plain", "dp-sgd": "plain", "scatternet": "plain-scatternet", "plain-scatternet": "plain-scatternet",
        "two-stage": "plain-two-stage", "plain-two-stage": "plain-two-stage"}


def _faces(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 48, 48), dtype=torch.uint8, generator=g), torch.randint(0, 7, (n,), generator=g)


def run_mode(mode: str, batch_size: int, steps: int) -> dict:
    """Train ``steps`` steps in ``mode``; return samples/s and the one-off feature seconds."""
    from fer_core.privacy import make_private

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
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=batch_size)
        dp = make_private(tail, opt, loader, noise_multiplier=1.0, max_grad_norm=1.0)
        step_model, opt = dp.model, dp.optimizer
        batches = iter(dp.data_loader)
    else:
        step_model = tail
        batches = ((inputs[i: i + batch_size], labels[i: i + batch_size]) for i in range(0, n, batch_size))
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
    return {"mode": mode, "arch": arch, "trainable": trainable, "private": private, "batch_size": batch_size,
            "samples_per_s": round(seen / seconds, 1), "feature_s_per_1k": round(1000 * feature_s / n, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--json", action="store_true", help="print one JSON object per mode")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one mode in this process
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.one:
        print(json.dumps(run_mode(a.one, a.batch_size, a.steps)))
        return 0
    results = {}
    for mode in a.modes:
        out = subprocess.run([sys.executable, __file__, "--one", mode, "--threads", str(a.threads),
                              "--batch-size", str(a.batch_size), "--steps", str(a.steps)],
                             capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
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
