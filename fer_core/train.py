"""Training recipe for emotion classifiers (non-private), resumable, with honest model selection.

Protocol (FER2013): train on ``Training``; choose the epoch (and raw vs EMA weights) on
``PublicTest``; evaluate ``PrivateTest`` once, at the end, for the chosen weights only.

Recipe: SGD with Nesterov momentum (or AdamW), linear warm-up then cosine decay per step,
label smoothing (Szegedy et al. 2016), weight EMA (``torch.optim.swa_utils.AveragedModel``),
batched tensor augmentation (:mod:`fer_core.augment`), fixed seeds.

Resuming: after every epoch ``<out>/state.pt`` (model, EMA, optimizer, history, best) is written
atomically; ``main`` with the same ``out`` continues from the last finished epoch, so a killed run
loses at most the epoch in progress. Epoch ``e`` draws its shuffling and augmentation from a
generator seeded with ``(seed, e)``, so a resumed run sees exactly the batches an uninterrupted one
would.

Structure follows torchvision's ``references/classification/train.py``: :func:`train_one_epoch` and
:func:`evaluate` return metric dicts; :func:`main` takes a :class:`TrainConfig` and is callable
from tests; ``python -m fer_core train`` wraps it.

Distributed data parallelism: launched by ``torchrun``, every process runs :func:`main`; the model
is wrapped in ``DistributedDataParallel``, ``batch_size`` is the global batch and each rank takes its
``batch_size / world_size`` slice of every batch of the epoch's seeded permutation; validation is
sharded over the ranks and reduced, so every rank takes the same selection decision; only rank 0
writes files (see :mod:`fer_core.distributed`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from fer_core import LABEL_SETS, __version__
from fer_core.augment import AugmentConfig, augment_batch
from fer_core.checkpoints import save_checkpoint
from fer_core.data import FERDataset, load_dataset
from fer_core.distributed import (
    SINGLE,
    DistContext,
    all_reduce_sum,
    broadcast_from_main,
    check_in_sync,
    distributed_session,
    per_rank_batch,
    rank_seed,
    reduce_metrics,
    shard,
)
from fer_core.evaluate import evaluate_split
from fer_core.models import build_model, count_macs, count_parameters, model_arguments
from fer_core.preprocess import MEAN, STD, preprocessing_spec, to_model_input

CPU = torch.device("cpu")
STATE_FILE = "state.pt"
HISTORY_FILE = "history.csv"  # in the run folder; the model card holds the same rows


@dataclass
class TrainConfig:
    """Everything that defines a training run; frozen into the model card.

    Units: ``lr`` is the peak learning rate; ``warmup_epochs`` and ``epochs`` count passes over
    the training rows; ``ema_decay`` is per optimizer step (0 disables EMA).
    """

    out: str = "runs/fer2013_resnet"
    data: str | None = None
    arch: str = "resnet"
    model_args: dict = field(default_factory=dict)
    epochs: int = 40
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (Nesterov) or "adamw"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    ema_decay: float = 0.999
    augment: dict = field(default_factory=lambda: dataclasses.asdict(AugmentConfig()))  # {}: none
    seed: int = 0
    label_set: str = "fer2013"  # "fer2013" (7 classes) or "ferplus" (8 classes, FER+ votes)
    target: str = "majority"  # "majority" (one class per face) or "distribution" (FER+ vote shares)
    train_split: str = "Training"
    val_split: str = "PublicTest"
    test_split: str = "PrivateTest"
    val_fraction: float = 0.1  # carved from Training (seeded) if the data has no val_split
    limit_train: int | None = None  # use only the first N training rows (tests, smoke runs)
    init_from: str | None = None  # start from a checkpoint's weights (fine-tuning); same arch and args
    threads: int = 0  # torch threads; 0 = leave torch's default
    compile: bool = False  # torch.compile the training step (faster on CPU after ~30 s)
    channels_last: bool = True
    device: str = "auto"  # "auto", "cpu" or "cuda"
    stop_after: int | None = None  # stop this invocation after N epochs (time slicing; resumable)
    export: str | None = None  # checkpoint folder to write when training finishes
    name: str | None = None  # model name in the card (default: export folder name)
    progress: bool = True
    # Which Training rows: "all", or "public" (a seeded share declared public: two-stage stage 1).
    train_rows: str = "all"
    public_fraction: float = 0.15
    public_seed: int = 0
    # Differential privacy (see fer_core.privacy); dp_method None trains without DP.
    dp_method: str | None = None  # "dp-sgd", "scatternet" or "two-stage"
    epsilon: float | None = None  # target epsilon; sets noise_multiplier through the accountant
    delta: float = 1e-5
    noise_multiplier: float | None = None  # instead of a target epsilon
    max_grad_norm: float = 1.0  # per-sample L2 clipping bound
    accountant: str = "prv"  # "prv" or "rdp"
    trainable: str = "all"  # "all", "head" or "last-block" (the rest stays frozen)
    physical_batch_size: int = 256  # Opacus BatchMemoryManager: memory bound, not the logical batch
    grad_sample_mode: str = "hooks"  # Opacus per-sample gradient mode ("hooks" or "ew")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Learning rate at optimizer step ``step``: linear warm-up to ``peak``, then cosine to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * peak * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; no weight decay on biases and normalisation parameters."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose 'sgd' or 'adamw'")


def train_one_epoch(
    model: torch.nn.Module,
    step_model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    epoch: int,
    ema: AveragedModel | None = None,
    device: torch.device = CPU,
    ctx: DistContext = SINGLE,
) -> dict:
    """One pass over the training rows.

    Args:
        model: the plain module (its parameters are updated).
        step_model: what runs the forward pass (``model`` itself, its ``DistributedDataParallel``
            wrapper, or ``torch.compile`` of either).
        images: ``uint8 (N, 48, 48)`` training faces (all of them, on every rank); labels: ``int64 (N,)``
            class ids, or ``float32 (N, K)`` label distributions (cross-entropy against soft targets,
            Barsoum et al. 2016).
        epoch: 0-based epoch; seeds the shuffling and augmentation.
        ctx: the distributed context; rank ``r`` of ``W`` trains on rows ``r*B/W .. (r+1)*B/W`` of
            each global batch of ``cfg.batch_size`` rows, augmented with its own generator.

    Returns:
        ``{"epoch", "train_loss", "train_accuracy", "lr", "seconds", "samples_per_s"}`` over all
        ranks (the same on every rank).
    """
    model.train()
    base = cfg.seed * 100_003 + epoch
    g = torch.Generator().manual_seed(base)  # the permutation: the same on every rank
    g_aug = torch.Generator().manual_seed(rank_seed(base, ctx)) if ctx.distributed else g
    torch.manual_seed(rank_seed(base, ctx))  # dropout: same masks after a resume
    n = len(labels)
    perm = torch.randperm(n, generator=g)
    local = per_rank_batch(cfg.batch_size, ctx)
    steps_per_epoch = n // cfg.batch_size  # drop the last partial batch
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    aug = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment.items()})
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not (cfg.progress and ctx.is_main), mininterval=5.0, file=sys.stderr)
    lr = cfg.lr
    for i in bar:
        step = epoch * steps_per_epoch + i
        lr = lr_at(step, total_steps, warmup_steps, cfg.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start_row = i * cfg.batch_size + ctx.rank * local
        idx = perm[start_row: start_row + local]
        x = to_model_input(images[idx])  # (B / W, 1, 48, 48)
        if cfg.augment:  # an empty dict switches augmentation off
            x = augment_batch(x, aug, g_aug)
        y = labels[idx]
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = step_model(x)  # (B, K)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.detach().argmax(1) == (y if y.ndim == 1 else y.argmax(1))).sum())
        seen += len(y)
        if i % 20 == 0:
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{lr:.4f}")
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], ctx)
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "lr": lr,
        "seconds": seconds,
        "samples_per_s": seen / max(seconds, 1e-9),
    }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    batch_size: int = 512,
    device: torch.device = CPU,
) -> dict:
    """Loss and accuracy on held-out faces (no augmentation).

    Args:
        images: ``uint8 (N, 48, 48)``; labels: ``int (N,)``.

    Returns:
        ``{"loss": mean cross-entropy (nats), "accuracy": share correct in [0, 1], "n"}``.
    """
    was_training = model.training
    model.eval()
    labels_t = torch.as_tensor(labels, dtype=torch.int64)
    loss_sum, correct = 0.0, 0
    for i in range(0, len(labels_t), batch_size):
        x = to_model_input(images[i: i + batch_size]).to(device)
        y = labels_t[i: i + batch_size].to(device)
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    n = len(labels_t)
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1), "n": n}


def hardware_info(device: torch.device | None = None) -> dict:
    """What the run ran on: CPU, cores, torch threads and version, GPU name if any."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device) if device is not None else "cpu",
    }
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _atomic_torch_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_history(history: list[dict], path: Path) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


# Options that may change between invocations of one run; every other one must match to resume.
FREE_OPTIONS = ("stop_after", "export", "name", "progress", "threads", "compile", "device", "data")


def check_same_run(state: dict, frozen: dict, sha256: str, out: Path) -> None:
    """Refuse to resume ``out`` if its ``state.pt`` was made with another configuration or data file.

    Raises:
        ValueError: naming the options that differ.
    """
    old = json.loads(state["config"])
    defaults = json.loads(json.dumps(TrainConfig().to_dict()))  # options added since that run started
    changed = [k for k in frozen if k not in FREE_OPTIONS and old.get(k, defaults.get(k)) != frozen.get(k)]
    if state.get("data_sha256", sha256) != sha256:
        changed.append("data (sha256 differs)")
    if changed:
        raise ValueError(f"{out} holds a run with a different configuration ({', '.join(changed)}); "
                         "use another --out or delete that folder")


def keep_best(candidates: dict, best: dict, epoch: int, out: Path, write: bool = True) -> dict:
    """Model selection on the validation split: save the best weights so far to ``out/best.safetensors``.

    Args:
        candidates: ``{"raw" | "ema": (validation accuracy, module)}`` of this epoch.
        best: the best so far (``{"val_accuracy", "epoch", "weights"}``; ``val_accuracy`` -1 at first).
        epoch: 0-based epoch just finished.
        write: save the weights (False on ranks other than 0, which only track the decision).

    Returns:
        The updated ``best``.
    """
    which, (acc, chosen) = max(candidates.items(), key=lambda kv: kv[1][0])
    if acc <= best["val_accuracy"]:
        return best
    if not write:
        return {"val_accuracy": acc, "epoch": epoch + 1, "weights": which}
    save_file({k: v.detach().cpu().contiguous() for k, v in chosen.state_dict().items()},
              str(out / "best.safetensors.tmp"))
    os.replace(out / "best.safetensors.tmp", out / "best.safetensors")
    return {"val_accuracy": acc, "epoch": epoch + 1, "weights": which}


def validate_and_select(row: dict, validate, model: torch.nn.Module, ema: AveragedModel | None, best: dict,
                        epoch: int, out: Path, ctx: DistContext = SINGLE) -> dict:
    """The end of an epoch, shared by the plain and the private recipe: validate the raw (and EMA)
    weights, add ``val_loss``/``val_accuracy`` (and ``*_ema``) to ``row``, keep the best weights
    (:func:`keep_best`) and check that every data-parallel rank holds the same weights.

    Args:
        validate: ``validate("raw" | "ema") -> {"loss", "accuracy", ...}`` on this rank's share of
            the validation split (combined over ranks here).
        model, ema: the modules whose weights ``best.safetensors`` takes.

    Returns:
        The updated ``best``.
    """
    val = reduce_metrics(validate("raw"), ctx)
    row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
    candidates = {"raw": (val["accuracy"], model)}
    if ema is not None:
        val_ema = reduce_metrics(validate("ema"), ctx)
        row.update(val_loss_ema=val_ema["loss"], val_accuracy_ema=val_ema["accuracy"])
        candidates["ema"] = (val_ema["accuracy"], ema.module)
    best = keep_best(candidates, best, epoch, out, write=ctx.is_main)
    check_in_sync(ctx, epoch, *[m for m in (model, ema) if m is not None])
    return best


def run_state(model: torch.nn.Module, optimizer_state: dict, ema: AveragedModel | None, epoch: int,
              history: list[dict], best: dict, commands: list[str], frozen: dict, data_sha256: str,
              elapsed_s: float, **extra) -> dict:
    """What ``state.pt`` holds after an epoch (tensors and JSON strings: loadable with
    ``torch.load(weights_only=True)``); ``extra`` adds recipe-specific entries (e.g. the accountant)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer_state,
        "ema": ema.state_dict() if ema is not None else {},
        **extra,
        "epoch": epoch + 1,
        "history": json.dumps(history),
        "best": json.dumps(best),
        "commands": json.dumps(commands),
        "config": json.dumps(frozen),
        "data_sha256": data_sha256,
        "elapsed_s": elapsed_s,
    }


def select_train_rows(cfg: TrainConfig, ds: FERDataset) -> tuple[np.ndarray, np.ndarray, dict]:
    """The training rows a run uses: all of ``cfg.train_split``, or its public or private share.

    ``train_rows="public"`` (two-stage stage 1) and ``dp_method="two-stage"`` (stage 2, the private
    rest) use :func:`fer_core.privacy.public_private_split` with ``public_fraction`` and
    ``public_seed``, so the two shares are disjoint. ``limit_train`` then keeps the first N rows.

    Returns:
        ``(images uint8 (n, 48, 48), targets, rows)``; ``targets`` are ``int64 (n,)`` class ids, or
        ``float32 (n, K)`` label distributions with ``target="distribution"``; ``rows`` describes the
        choice for the model card (``train_rows``, ``public_fraction``, ``public_seed``, ``description``).

    Raises:
        ValueError: an unknown ``train_rows`` or ``target``, or fewer rows than one batch.
        fer_core.data.DatasetError: ``target="distribution"`` on data without label distributions.
    """
    from fer_core.privacy import public_private_split

    images, labels = ds.split(cfg.train_split)
    if cfg.target == "distribution":
        labels = ds.soft_split(cfg.train_split)
    elif cfg.target != "majority":
        raise ValueError(f"unknown target {cfg.target!r}; choose 'majority' or 'distribution'")
    which = "private" if cfg.dp_method == "two-stage" else cfg.train_rows
    if which not in ("all", "public", "private"):
        raise ValueError(f"unknown train_rows {which!r}; choose 'all' or 'public'")
    rows = {"train_rows": which}
    desc = f"{Path(ds.source).name} {cfg.train_split}"
    if which == "all":
        rows["description"] = f"{desc}, all {len(labels):,} rows"
    else:
        public, private = public_private_split(len(labels), cfg.public_fraction, cfg.public_seed)
        idx = public if which == "public" else private
        images, labels = images[idx], labels[idx]
        rows.update(public_fraction=cfg.public_fraction, public_seed=cfg.public_seed, public_rows=len(public),
                    private_rows=len(private),
                    description=f"{desc}, {'the public' if which == 'public' else 'all but the public'} share "
                    f"({cfg.public_fraction:.0%} of rows, seed {cfg.public_seed}): {len(idx):,} rows")
    if cfg.limit_train:
        images, labels = images[: cfg.limit_train], labels[: cfg.limit_train]
        rows["description"] += f", first {len(labels):,} used"
    if len(labels) < cfg.batch_size:
        raise ValueError(f"{len(labels)} training rows are fewer than one batch ({cfg.batch_size})")
    return images, labels, rows


def class_names(cfg: TrainConfig) -> tuple[str, ...]:
    """The classes a run trains (its label set's names; index = class id).

    Raises:
        ValueError: an unknown ``label_set``.
    """
    if cfg.label_set not in LABEL_SETS:
        raise ValueError(f"unknown label set {cfg.label_set!r}; choose one of {', '.join(LABEL_SETS)}")
    return LABEL_SETS[cfg.label_set]


def _load_data(cfg: TrainConfig) -> FERDataset:
    from fer_core.ferplus import with_label_set

    class_names(cfg)
    ds = with_label_set(load_dataset(cfg.data), cfg.label_set)
    if cfg.val_split not in ds.splits:
        ds = ds.with_validation(cfg.val_fraction, cfg.seed, name=cfg.val_split)
    return ds


def build_card(
    cfg: TrainConfig,
    model: torch.nn.Module,
    model_args: dict,
    ds: FERDataset,
    metrics: dict,
    best: dict,
    history: list[dict],
    commands: list[str],
    trained_config: dict,
    wall_time_s: float,
    device: torch.device,
    train_rows: int,
    privacy: dict | None = None,
    rows: dict | None = None,
    processes: dict | None = None,
) -> dict:
    """The model card of a finished run (see :mod:`fer_core.checkpoints`).

    ``processes`` (``{"world_size", "backend"}`` of a data-parallel run) goes to ``hardware.distributed``.
    """
    card = {
        "name": cfg.name or (Path(cfg.export).name if cfg.export else Path(cfg.out).name),
        "arch": cfg.arch,
        "model_args": model_args,
        "parameters": count_parameters(model),
        "macs": count_macs(model),
        "classes": list(class_names(cfg)),
        "label_set": cfg.label_set,
        "preprocessing": preprocessing_spec(MEAN, STD),
        "config": trained_config,
        "data": {
            "source": Path(ds.source).name,
            "format": ds.format,
            "sha256": ds.sha256,
            "train_split": cfg.train_split,
            "val_split": cfg.val_split,
            "test_split": cfg.test_split,
            "rows": {s: int((ds.usage == s).sum()) for s in ds.splits},
            "train_rows_used": int(train_rows),
            **(rows or {}),
        },
        "selection": {"split": cfg.val_split, "metric": "accuracy", **best},
        "metrics": metrics,
        "privacy": privacy or {"private": False, "epsilon": None, "delta": None,
                               "note": "trained without differential privacy"},
        "history": history,
        "command": commands[0],
        "resumed_with": commands[1:],
        "wall_time_s": round(wall_time_s, 1),
        "hardware": hardware_info(device),
        "fer_core_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if processes and processes.get("world_size", 1) > 1:
        card["hardware"]["distributed"] = processes
    if cfg.init_from:
        from fer_core.checkpoints import read_card

        card["init_from"] = lineage(read_card(cfg.init_from), cfg.init_from)
    return card


def lineage(card: dict, path: str) -> dict:
    """What a fine-tuned model started from: the parent card's name, command, data, cost and result.

    Recorded so that a model's total training compute and provenance stay visible after its parent
    checkpoint is replaced (the parent's own ``init_from`` is kept, recursively).
    """
    test = card.get("metrics", {}).get("PrivateTest", {})
    return {
        "path": str(path), "name": card.get("name"), "command": card.get("command"),
        "resumed_with": card.get("resumed_with", []), "data_sha256": card.get("data", {}).get("sha256"),
        "train_rows": card.get("data", {}).get("train_rows", "all"), "epochs": card.get("config", {}).get("epochs"),
        "wall_time_s": card.get("wall_time_s"), "hardware": card.get("hardware"),
        "classes": card.get("classes"), "label_set": card.get("label_set", "fer2013"),
        "selection": card.get("selection"), "privatetest_accuracy": test.get("accuracy"),
        "created": card.get("created"), "init_from": card.get("init_from"),
    }


def evaluate_chosen(cfg: TrainConfig, model_args: dict, ds: FERDataset, out: Path) -> tuple[torch.nn.Module, dict]:
    """The final evaluation of a finished run: the chosen weights (``out/best.safetensors``) on the
    selection split and, once, on the test split.

    Returns:
        ``(model in eval mode, {split: evaluate_split report})``.
    """
    final = build_model(cfg.arch, **model_args)
    final.load_state_dict(load_file(str(out / "best.safetensors")))
    final.eval()
    names = class_names(cfg)
    metrics = {cfg.val_split: evaluate_split(final, ds, cfg.val_split, class_names=names)}
    if cfg.test_split in ds.splits:
        metrics[cfg.test_split] = evaluate_split(final, ds, cfg.test_split, class_names=names)
    return final, metrics


def init_weights(model: torch.nn.Module, cfg: TrainConfig, model_args: dict) -> list[str]:
    """Start ``model`` from ``cfg.init_from``'s weights (fine-tuning).

    The architecture and its arguments must match, except ``num_classes``: a checkpoint trained on
    another label set (e.g. FER2013's 7 classes, fine-tuned to FER+'s 8) gives every tensor but the
    classifier's, which keeps its fresh initialisation.

    Returns:
        Names of the tensors left freshly initialised (empty when every shape matched).

    Raises:
        ValueError: another architecture or other arguments than ``num_classes``.
    """
    from fer_core.checkpoints import load_checkpoint

    init = load_checkpoint(cfg.init_from)
    theirs = {k: v for k, v in init.card["model_args"].items() if k != "num_classes"}
    ours = {k: v for k, v in model_args.items() if k != "num_classes"}
    if init.card["arch"] != cfg.arch or theirs != ours:
        raise ValueError(
            f"--init-from {cfg.init_from} is a {init.card['arch']} with {init.card['model_args']}; "
            f"this run builds a {cfg.arch} with {model_args}"
        )
    own = model.state_dict()
    source = init.model.state_dict()
    fresh = [k for k in own if k not in source or source[k].shape != own[k].shape]
    model.load_state_dict({k: v for k, v in source.items() if k not in fresh}, strict=False)
    return fresh


def load_resume_state(state_path: Path, frozen: dict, sha256: str, ctx: DistContext = SINGLE) -> dict | None:
    """A run folder's ``state.pt``, checked to belong to this run (:func:`check_same_run`), or None.

    In a data-parallel run rank 0 reads it and every rank receives the same state, so resuming
    needs the run folder on rank 0's machine only.

    Raises:
        ValueError: the folder holds a run with another configuration or data (on every rank).
    """
    loaded = None
    if ctx.is_main and state_path.exists():
        loaded = torch.load(state_path, map_location="cpu", weights_only=True)
        try:
            check_same_run(loaded, frozen, sha256, state_path.parent)
        except ValueError as exc:
            loaded = {"error": str(exc)}
    loaded = broadcast_from_main(loaded, ctx)
    if loaded is not None and "error" in loaded:
        raise ValueError(loaded["error"])
    return loaded


def main(cfg: TrainConfig, command: str | None = None) -> dict:
    """Train (or resume) a model as configured, then evaluate and export the chosen weights.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this: data-parallel training, rank 0
    writes the files and the returned ``checkpoint``/``metrics`` (None on other ranks).

    Args:
        cfg: the run's configuration; ``cfg.out`` holds the resumable state.
        command: the command line that started this invocation (recorded in the model card).

    Returns:
        ``{"out", "history", "best", "finished", "checkpoint" (folder or None), "metrics"}``;
        ``finished`` is False when ``stop_after`` ended the invocation early.

    Raises:
        fer_core.data.DatasetError: the dataset is missing or malformed.
        ValueError: ``cfg.out`` holds a run with a different configuration, or a global batch that
            does not split evenly over the processes.
        fer_core.distributed.DistributedError: an impossible launch, or ranks whose weights diverged.
    """
    t_invocation = time.perf_counter()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    command = command or f"fer_core.train.main(TrainConfig(out={cfg.out!r}, ...))"

    if cfg.dp_method:
        from fer_core.train_private import main_private

        return main_private(cfg, command)
    with distributed_session(_device(cfg)) as ctx:
        return _main_plain(cfg, command, ctx, t_invocation)


def _main_plain(cfg: TrainConfig, command: str, ctx: DistContext, t_invocation: float) -> dict:
    device = ctx.device if ctx.distributed else _device(cfg)
    per_rank_batch(cfg.batch_size, ctx)  # fail early on a batch that does not split over the ranks
    out = Path(cfg.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    ds = _load_data(cfg)
    train_x, train_y, rows = select_train_rows(cfg, ds)
    val_x, val_y = ds.split(cfg.val_split)
    val_x, val_y = shard(val_x, ctx), shard(val_y, ctx)  # each rank validates its share
    train_x_t, train_y_t = torch.from_numpy(train_x), torch.from_numpy(train_y)

    model_args = model_arguments(cfg.arch, **{"num_classes": len(class_names(cfg)), **cfg.model_args})
    model = build_model(cfg.arch, **model_args)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(device)
    if cfg.init_from:
        init_weights(model, cfg, model_args)
    train_model: torch.nn.Module = model
    if ctx.distributed:  # broadcasts rank 0's weights, then averages gradients in every backward pass
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model, cfg)
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        if cfg.ema_decay > 0 else None
    )

    history: list[dict] = []
    best: dict = {"val_accuracy": -1.0}
    commands: list[str] = []
    elapsed_before = 0.0
    start_epoch = 0
    state_path = out / STATE_FILE
    frozen = json.loads(json.dumps(cfg.to_dict()))  # as stored (tuples become lists)
    state = load_resume_state(state_path, frozen, ds.sha256, ctx)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history = json.loads(state["history"])
        best = json.loads(state["best"])
        commands = json.loads(state["commands"])
        elapsed_before = float(state["elapsed_s"])
        start_epoch = int(state["epoch"])
        if ctx.is_main:
            print(f"resuming {out} after epoch {start_epoch}", file=sys.stderr)
    commands.append(command)
    if ctx.distributed and ctx.is_main:
        print(f"data parallel: {ctx.world_size} processes ({ctx.backend}), global batch {cfg.batch_size} = "
              f"{ctx.world_size} x {cfg.batch_size // ctx.world_size}", file=sys.stderr, flush=True)

    step_model: torch.nn.Module = torch.compile(train_model) if cfg.compile else train_model
    epochs_this_run = 0
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.stop_after is not None and epochs_this_run >= cfg.stop_after:
            break
        row = train_one_epoch(model, step_model, optimizer, train_x_t, train_y_t, cfg, epoch, ema, device, ctx)
        best = validate_and_select(
            row, lambda which: evaluate(model if which == "raw" else ema.module, val_x, val_y, device=device),
            model, ema, best, epoch, out, ctx)
        history.append(row)
        epochs_this_run += 1
        elapsed = elapsed_before + time.perf_counter() - t_invocation
        if not ctx.is_main:
            continue
        _atomic_torch_save(run_state(model, optimizer.state_dict(), ema, epoch, history, best, commands, frozen,
                                     ds.sha256, elapsed), state_path)
        _write_history(history, out / HISTORY_FILE)
        print(
            f"epoch {epoch + 1}/{cfg.epochs} loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} "
            f"| {cfg.val_split} acc {row['val_accuracy']:.4f}"
            + (f" ema {row['val_accuracy_ema']:.4f}" if ema is not None else "")
            + f" | {row['samples_per_s']:.0f} samples/s, {row['seconds']:.0f} s",
            file=sys.stderr, flush=True,
        )
    finished = len(history) >= cfg.epochs
    result = {"out": str(out), "history": history, "best": best, "finished": finished,
              "checkpoint": None, "metrics": None}
    if not finished or not ctx.is_main:
        return result

    final, metrics = evaluate_chosen(cfg, model_args, ds, out)
    total_elapsed = elapsed_before + time.perf_counter() - t_invocation
    trained_config = frozen
    if state_path.exists():  # the figures of the invocations that trained, not of this one
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        total_elapsed = float(state["elapsed_s"])
        trained_config = json.loads(state["config"])
    card = build_card(cfg, final, model_args, ds, metrics, best, history, commands, trained_config,
                      total_elapsed, device, train_rows=len(train_y), rows=rows, processes=ctx.describe())
    result["metrics"] = metrics
    if cfg.export:
        save_checkpoint(cfg.export, final, card)
        result["checkpoint"] = cfg.export
    (out / "final_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return result
