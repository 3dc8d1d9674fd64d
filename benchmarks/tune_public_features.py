"""Tune the DP head on facex's frozen public features (``--dp-method public-features``) on PublicTest.

Each setting runs the project's own private strategy (:class:`fer_core.training.private.PrivateStrategy`:
the same Poisson loader, accountant, clipping, noise and PublicTest standardisation as ``python -m fer_core
train``) on the features cached in ``runs/features/``, chooses the epoch and raw/EMA weights on PublicTest,
and - for the record, never for choosing - scores the chosen head on PrivateTest's cached features. It
skips the lifecycle's final full-network evaluation (minutes at 200x200 px), so a setting costs seconds.

    python benchmarks/tune_public_features.py --epsilons 8 1 --batch 2048 4096 --epochs 30 60 --lr 1 2 4 \
        --clip 1 --out runs/public_features_tuning.jsonl
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time

import torch

from fer_core.data.datasets import load_dataset
from fer_core.models.architectures import build_model, model_arguments, split_for_finetune
from fer_core.training.config import TrainConfig
from fer_core.training.distributed import SINGLE
from fer_core.training.features import cached_features
from fer_core.training.private import PrivateStrategy
from fer_core.training.validation import evaluate


def run_setting(ds, cfg: TrainConfig) -> dict:
    """One DP run on cached features; returns the chosen (PublicTest) accuracy and the PrivateTest figure."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    args = model_arguments("facex", num_classes=7, **cfg.model_args)
    model = build_model("facex", **args)
    tr_x, tr_y = ds.split("Training")
    va_x, va_y = ds.split("PublicTest")
    te_x, te_y = ds.split("PrivateTest")
    strategy = PrivateStrategy(cfg, model, args, tr_x, tr_y.astype("int64"), va_x, va_y.astype("int64"),
                               torch.device("cpu"), SINGLE, ds.sha256)
    best = {"acc": -1.0}
    for epoch in range(cfg.epochs):
        row = strategy.train_epoch(epoch)
        for which in ("raw", "ema") if strategy.ema is not None else ("raw",):
            acc = strategy.validate(which)["accuracy"]
            if acc > best["acc"]:
                tail = strategy.tail if which == "raw" else strategy.ema_tail
                best = {"acc": acc, "epoch": epoch + 1, "weights": which, "state": copy.deepcopy(tail.state_dict())}
    prefix, tail = split_for_finetune(model, "head")
    tail.load_state_dict(best["state"])
    test = evaluate(tail, cached_features(prefix, te_x, ds.sha256, progress=False), te_y.astype("int64"), raw=False)
    return {"epsilon": round(row["epsilon"], 3), "target_epsilon": cfg.epsilon, "batch_size": cfg.batch_size,
            "epochs": cfg.epochs, "lr": cfg.lr, "max_grad_norm": cfg.max_grad_norm, "ema_decay": cfg.ema_decay,
            "momentum": cfg.momentum, "sigma": round(strategy.sigma, 4), "steps": strategy.plan.steps,
            "PublicTest": round(best["acc"], 4), "chosen_epoch": best["epoch"], "weights": best["weights"],
            "PrivateTest": round(test["accuracy"], 4), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--epsilons", type=float, nargs="+", default=[8.0, 1.0])
    p.add_argument("--batch", type=int, nargs="+", default=[4096])
    p.add_argument("--epochs", type=int, nargs="+", default=[60])
    p.add_argument("--lr", type=float, nargs="+", default=[2.0])
    p.add_argument("--clip", type=float, nargs="+", default=[1.0])
    p.add_argument("--ema", type=float, nargs="+", default=[0.0])
    p.add_argument("--momentum", type=float, nargs="+", default=[0.9])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/public_features_tuning.jsonl")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.data)
    for eps, batch, epochs, lr, clip, ema, mom in itertools.product(a.epsilons, a.batch, a.epochs, a.lr, a.clip,
                                                                   a.ema, a.momentum):
        cfg = TrainConfig(arch="facex", dp_method="public-features", trainable="head", epsilon=eps, delta=1e-5,
                          batch_size=batch, physical_batch_size=batch, epochs=epochs, lr=lr, max_grad_norm=clip,
                          ema_decay=ema, momentum=mom, optimizer="sgd", weight_decay=0.0, label_smoothing=0.0,
                          warmup_epochs=0.0, augment={}, progress=False, channels_last=False)
        row = run_setting(ds, cfg)
        print(json.dumps(row), flush=True)
        with open(a.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
