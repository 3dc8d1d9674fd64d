"""ONE training lifecycle for every kind of run, read top to bottom (torchvision's reference ``train.py``).

:func:`main` takes a :class:`~fer_core.training.config.TrainConfig` and runs

    data -> rows -> model (and ``init_from``) -> strategy -> resume -> epochs -> selection on
    PublicTest -> state -> final evaluation (PrivateTest once) -> model card -> export.

What differs between a plain and a private run is the *strategy* the lifecycle plugs in
(:class:`~fer_core.training.plain.PlainStrategy`, :class:`~fer_core.training.private.PrivateStrategy`):
which rows it trains on, the epoch step, validation inputs, what it adds to the resumable state
and the card's privacy block. Data-parallel runs (``torchrun``) are the same lifecycle in every
process; rank 0 alone writes files (:mod:`fer_core.training.distributed`).

Protocol (FER2013): train on ``Training``; choose the epoch (and raw vs EMA weights) on
``PublicTest``; evaluate ``PrivateTest`` once, at the end, for the chosen weights only.

Resuming: after every epoch ``<out>/state.pt`` is written atomically; ``main`` with the same ``out``
continues after the last finished epoch, so a killed run loses at most the epoch in progress.
Epoch ``e`` draws its shuffling, augmentation and DP sampling from seeds derived from
``(seed, e)`` (:meth:`~fer_core.training.config.TrainConfig.epoch_seed`), so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fer_core.models.architectures import build_model, model_arguments
from fer_core.models.checkpoint import load_checkpoint, save_checkpoint
from fer_core.training.card import FINAL_CARD_FILE, build_card
from fer_core.training.config import TrainConfig
from fer_core.training.distributed import DistContext, distributed_session, shard
from fer_core.training.plain import PlainStrategy
from fer_core.training.private import PrivateStrategy, check_stage1
from fer_core.training.rows import class_names, load_data, select_train_rows
from fer_core.training.state import (
    HISTORY_FILE,
    STATE_FILE,
    atomic_torch_save,
    load_resume_state,
    run_state,
    write_history,
)
from fer_core.training.validation import evaluate_chosen, validate_and_select


def strategy_for(cfg: TrainConfig) -> type[PlainStrategy] | type[PrivateStrategy]:
    """The strategy class of a run: private when ``cfg.dp_method`` is set, else plain."""
    return PrivateStrategy if cfg.dp_method else PlainStrategy


def init_weights(model: torch.nn.Module, cfg: TrainConfig, model_args: dict, data_sha256: str) -> list[str]:
    """Start ``model`` from ``cfg.init_from``'s weights (fine-tuning), for plain and private runs alike.

    The architecture and its arguments must match, except ``num_classes``: a checkpoint trained on
    another label set (e.g. FER2013's 7 classes, fine-tuned to FER+'s 8) gives every tensor but the
    classifier's, which keeps its fresh initialisation. A two-stage run also checks that the
    checkpoint is a proper stage 1 (:func:`~fer_core.training.private.check_stage1`).

    Returns:
        Names of the tensors left freshly initialised (empty when every shape matched).

    Raises:
        ValueError: another architecture or other arguments than ``num_classes``.
        fer_core.privacy.accounting.PrivacyError: a two-stage run from a checkpoint that saw private rows.
    """
    init = load_checkpoint(cfg.init_from)
    theirs = {k: v for k, v in model_arguments(init.card.arch, **init.card["model_args"]).items()
              if k != "num_classes"}
    ours = {k: v for k, v in model_args.items() if k != "num_classes"}
    if init.card.arch != cfg.arch or theirs != ours:
        raise ValueError(
            f"--init-from {cfg.init_from} is a {init.card.arch} with {init.card['model_args']}; "
            f"this run builds a {cfg.arch} with {model_args}"
        )
    if cfg.dp_method == "two-stage":
        check_stage1(cfg, init.card, data_sha256)
    own = model.state_dict()
    source = init.model.state_dict()
    fresh = [k for k in own if k not in source or source[k].shape != own[k].shape]
    model.load_state_dict({k: v.contiguous() for k, v in source.items() if k not in fresh}, strict=False)
    return fresh


def main(cfg: TrainConfig, command: str | None = None) -> dict:
    """Train (or resume) a model as configured, then evaluate and export the chosen weights.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this: data-parallel training, rank 0
    writes the files and the returned ``checkpoint``/``metrics`` (None on other ranks).

    Args:
        cfg: the run's configuration; ``cfg.out`` holds the resumable state.
        command: the command line that started this invocation (recorded in the model card).

    Returns:
        ``{"out", "history", "best", "finished", "checkpoint" (folder or None), "metrics"}``, plus
        ``"epsilon"`` (spent so far) for a private run; ``finished`` is False when ``stop_after``
        ended the invocation early.

    Raises:
        fer_core.data.datasets.DatasetError: the dataset is missing or malformed.
        fer_core.privacy.accounting.PrivacyError: inconsistent privacy settings (both epsilon and
            noise_multiplier, delta >= 1/N, a stage-1 model that saw private rows, ...).
        ValueError: ``cfg.out`` holds a run with a different configuration, or a global batch that
            does not split evenly over the processes.
        fer_core.training.distributed.DistributedError: an impossible launch, or ranks whose weights diverged.
    """
    t_invocation = time.perf_counter()
    strategy_cls = strategy_for(cfg)
    strategy_cls.check(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    command = command or f"fer_core.training.main(TrainConfig(out={cfg.out!r}, ...))"
    with distributed_session(strategy_cls.session_device(cfg)) as ctx:
        return _run(cfg, command, ctx, strategy_cls, t_invocation)


def _run(cfg: TrainConfig, command: str, ctx: DistContext, strategy_cls, t_invocation: float) -> dict:
    device = ctx.device if ctx.distributed else cfg.torch_device()
    out = Path(cfg.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)

    # data and rows
    ds = load_data(cfg)
    train_x, train_y, rows = select_train_rows(cfg, ds, strategy_cls.rows(cfg))
    val_x, val_y = ds.split(cfg.val_split)
    val_x, val_y = shard(val_x, ctx), shard(val_y, ctx)  # each rank validates its share

    # model, then the strategy around it (optimizer, EMA, wrappers, DP engine)
    model_args = model_arguments(cfg.arch, **{"num_classes": len(class_names(cfg)), **cfg.model_args})
    model = build_model(cfg.arch, **model_args)
    if cfg.init_from:
        init_weights(model, cfg, model_args, ds.sha256)
    strategy = strategy_cls(cfg, model, model_args, train_x, train_y, val_x, val_y, device, ctx, ds.sha256,
                            library=ds.images)

    # resume
    history: list[dict] = []
    best: dict = {"val_accuracy": -1.0}
    commands: list[str] = []
    elapsed_before, start_epoch = 0.0, 0
    state_path = out / STATE_FILE
    frozen = json.loads(json.dumps(cfg.to_dict()))  # as stored (tuples become lists)
    state = load_resume_state(state_path, frozen, ds.sha256, ctx)
    if state is not None:
        model.load_state_dict(state["model"])
        if strategy.ema is not None:
            strategy.ema.load_state_dict(state["ema"])
        strategy.load_state(state)
        history, best = json.loads(state["history"]), json.loads(state["best"])
        commands = json.loads(state["commands"])
        elapsed_before, start_epoch = float(state["elapsed_s"]), int(state["epoch"])
        if ctx.is_main:
            print(f"resuming {out} after epoch {start_epoch}", file=sys.stderr)
    commands.append(command)
    if ctx.is_main and strategy.describe():
        print(strategy.describe(), file=sys.stderr, flush=True)

    # epochs: step, selection on the validation split, state
    epochs_this_run = 0
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.stop_after is not None and epochs_this_run >= cfg.stop_after:
            break
        row = strategy.train_epoch(epoch)
        best = validate_and_select(row, strategy.validate, model, strategy.ema, best, epoch, out, ctx)
        history.append(row)
        epochs_this_run += 1
        if not ctx.is_main:
            continue
        elapsed = elapsed_before + time.perf_counter() - t_invocation
        atomic_torch_save(run_state(model, strategy.optimizer_state(), strategy.ema, epoch, history, best, commands,
                                    frozen, ds.sha256, elapsed, **strategy.extra_state()), state_path)
        write_history(history, out / HISTORY_FILE)
        print(f"epoch {epoch + 1}/{cfg.epochs} loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} "
              f"| {cfg.val_split} acc {row['val_accuracy']:.4f}"
              + (f" ema {row['val_accuracy_ema']:.4f}" if strategy.ema is not None else "")
              + strategy.log_suffix(row)
              + f" | {row['samples_per_s']:.0f} samples/s, {row['seconds']:.0f} s", file=sys.stderr, flush=True)

    finished = len(history) >= cfg.epochs
    result = {"out": str(out), "history": history, "best": best, "finished": finished,
              "checkpoint": None, "metrics": None, **strategy.result()}
    if not finished or not ctx.is_main:
        return result

    # final evaluation, card, export
    final, metrics = evaluate_chosen(cfg, model_args, ds, out)
    state = torch.load(state_path, map_location="cpu", weights_only=True)  # the invocations that trained
    card = build_card(cfg, final, model_args, ds, metrics, best, history, commands, json.loads(state["config"]),
                      float(state["elapsed_s"]), device, train_rows=len(train_y),
                      privacy=strategy.privacy(rows, len(train_y)), rows=rows, processes=ctx.describe())
    card.update(strategy.card_blocks())
    result["metrics"] = metrics
    if cfg.export:
        save_checkpoint(cfg.export, final, card)
        result["checkpoint"] = cfg.export
    (out / FINAL_CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return result
