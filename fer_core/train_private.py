"""Private training recipes: DP-SGD (Abadi et al. 2016) with Opacus, resumable, with honest selection.

Three methods (``TrainConfig.dp_method``), one loop:

* ``dp-sgd`` - end-to-end DP-SGD from random initialisation (the reference point).
* ``scatternet`` - DP-SGD on fixed wavelet-scattering features (Tramer & Boneh 2021): the
  scattering has no parameters and depends on no data, so it is computed once for every row and
  DP-SGD trains only the small CNN on top.
* ``two-stage`` - stage 1 is an ordinary run on the declared public share of ``Training``
  (``--train-rows public``); stage 2 (this loop) starts from that checkpoint and trains the head or
  the last block with DP-SGD on the remaining private rows. The frozen part was trained on public
  rows only, so its outputs are precomputed once, like the scattering.

Privacy: Poisson sampling (Opacus ``DPDataLoader``), per-sample clipping to ``max_grad_norm``,
Gaussian noise ``noise_multiplier * max_grad_norm``; the noise multiplier comes from a target
``epsilon`` via Opacus's accountant over all planned steps; the epsilon actually spent is read
from the engine's accountant at the end and written to the model card with every setting.
Selection (epoch, raw or EMA weights) uses ``PublicTest``, which is not a training row:
post-processing that costs no privacy. Logical batches larger than memory allows are split by
Opacus's ``BatchMemoryManager``.

Distributed (under ``torchrun``, on CPU with ``gloo``): Opacus's distributed DP-SGD - the model in
``DifferentiallyPrivateDistributedDataParallel``, each rank Poisson-samples its shard of the rows
at the global sample rate, clips its own per-sample gradients, rank 0 alone adds the noise, and
the sums are all-reduced (:func:`fer_core.privacy.make_private`). ``batch_size`` is the global
expected batch, so the accountant sees the same sample rate and steps as a single process would
and epsilon does not depend on the number of processes. Frozen-prefix features are precomputed by
every rank.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from fer_core.augment import AugmentConfig, augment_batch
from fer_core.checkpoints import save_checkpoint
from fer_core.distributed import (
    SINGLE,
    DistContext,
    all_reduce_sum,
    distributed_session,
    rank_seed,
    shard,
)
from fer_core.models import build_model, model_arguments, split_for_finetune
from fer_core.preprocess import to_model_input
from fer_core.privacy import (
    DP_METHODS,
    PrivacyError,
    PrivateLoader,
    make_private,
    noise_multiplier_for,
    privacy_block,
    spent_epsilon,
)
from fer_core.train import (
    HISTORY_FILE,
    STATE_FILE,
    TrainConfig,
    _atomic_torch_save,
    _device,
    _load_data,
    _write_history,
    build_card,
    class_names,
    evaluate_chosen,
    load_resume_state,
    lr_at,
    make_optimizer,
    run_state,
    select_train_rows,
    validate_and_select,
)


def _check_config(cfg: TrainConfig) -> None:
    if cfg.dp_method not in DP_METHODS:
        raise PrivacyError(f"unknown dp_method {cfg.dp_method!r}; choose one of {', '.join(DP_METHODS)}")
    if (cfg.epsilon is None) == (cfg.noise_multiplier is None):
        raise PrivacyError("give exactly one of a target epsilon (--epsilon) or --noise-multiplier")
    if cfg.dp_method == "scatternet" and cfg.arch != "scatternet":
        raise PrivacyError(f"dp_method 'scatternet' trains the scatternet architecture, not {cfg.arch!r}")
    if cfg.dp_method == "two-stage" and not cfg.init_from:
        raise PrivacyError(
            "two-stage needs its stage-1 model: train one on the public share (--train-rows public) "
            "and pass it with --init-from"
        )
    if cfg.target != "majority":
        raise PrivacyError("private runs train on one label per face; use --target majority")
    if cfg.train_rows != "all":
        raise PrivacyError("private runs choose their rows themselves (two-stage: the private share); "
                           "leave --train-rows at 'all'")


def _check_stage1(cfg: TrainConfig, card: dict, sha256: str) -> None:
    """Stage 1 must have seen only the public share that stage 2 excludes."""
    data = card.get("data", {})
    problems = []
    if data.get("train_rows") != "public":
        problems.append(f"it was trained on train_rows={data.get('train_rows', 'all')!r}, not 'public'")
    if data.get("public_fraction") != cfg.public_fraction or data.get("public_seed") != cfg.public_seed:
        problems.append(f"its public share is {data.get('public_fraction')}/seed {data.get('public_seed')}, "
                        f"this run's is {cfg.public_fraction}/seed {cfg.public_seed}")
    if data.get("sha256") != sha256:
        problems.append("it was trained on another data file")
    if card.get("privacy", {}).get("private"):
        problems.append("it is already a private model")
    if problems:
        raise PrivacyError(f"--init-from {cfg.init_from} cannot be stage 1 of this two-stage run: "
                           + "; ".join(problems))


@torch.no_grad()
def precompute(prefix: nn.Module, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """Outputs of a frozen prefix for every face.

    Args:
        prefix: a module from :func:`fer_core.models.split_for_finetune` (eval mode is set here).
        images: ``uint8 (N, 48, 48)`` faces.

    Returns:
        ``float32 (N, ...)``: the prefix's output for each face (e.g. ``(N, 81, 12, 12)`` scattering).
    """
    prefix.eval()
    parts = [prefix(to_model_input(images[i: i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(parts).contiguous()


_FEATURE_CACHE: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def _cached_features(cfg: TrainConfig, model_args: dict, sha256: str, prefix: nn.Module, train_x: np.ndarray,
                     val_x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Precomputed prefix outputs, reused within one process when they cannot differ (a sweep).

    The frozen prefix is either ScatterNet's scattering (no parameters: its outputs depend on the
    data and the architecture alone) or a two-stage trunk, whose outputs also depend on the stage-1
    weights: those are part of the key (the checkpoint's path and its weights file's size and mtime).
    """
    weights = None
    if cfg.init_from:
        from fer_core.checkpoints import WEIGHTS_FILE, resolve

        st = (resolve(cfg.init_from) / WEIGHTS_FILE).stat()
        weights = [str(resolve(cfg.init_from).resolve()), st.st_size, st.st_mtime_ns]
    key = json.dumps([cfg.arch, model_args, cfg.trainable, weights, sha256, cfg.dp_method, cfg.train_split,
                      cfg.val_split, cfg.public_fraction, cfg.public_seed, cfg.limit_train, len(train_x)])
    if key not in _FEATURE_CACHE:
        _FEATURE_CACHE.clear()  # one set at a time (about 1.5 GB for FER2013's scattering)
        _FEATURE_CACHE[key] = (precompute(prefix, train_x), precompute(prefix, val_x))
    return _FEATURE_CACHE[key]


@torch.no_grad()
def evaluate_inputs(module: nn.Module, inputs: torch.Tensor, labels: np.ndarray, raw: bool,
                    batch_size: int = 512) -> dict:
    """Loss and accuracy of ``module`` on faces (``raw``: uint8 images) or precomputed features."""
    was_training = module.training
    module.eval()
    y_all = torch.as_tensor(labels, dtype=torch.int64)
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y_all), batch_size):
        x = inputs[i: i + batch_size]
        x = to_model_input(x) if raw else x
        logits = module(x)
        y = y_all[i: i + batch_size]
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    module.train(was_training)
    n = len(y_all)
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1), "n": n}


def train_one_epoch_private(
    dp: PrivateLoader,
    generator: torch.Generator,
    cfg: TrainConfig,
    epoch: int,
    total_steps: int,
    raw: bool,
    model: nn.Module,
    ema: AveragedModel | None = None,
    ctx: DistContext = SINGLE,
) -> dict:
    """One pass of DP-SGD over the private rows (Poisson batches; about 1 / sample_rate steps).

    Args:
        dp: from :func:`fer_core.privacy.make_private` (wrapped tail, DP optimizer, Poisson loader).
        generator: the generator the Poisson sampler draws from; reseeded with ``(seed, epoch)``
            so a resumed run draws the same batches (the noise uses torch's seeded global RNG).
        raw: inputs are ``uint8`` faces (preprocessed, and augmented if configured, per batch)
            rather than precomputed features.
        model: the full unwrapped model (for EMA).
        total_steps: planned logical steps of the whole run (learning-rate schedule).
        ctx: the distributed context; each rank draws its Poisson batches from its own seed and
            takes a step for every logical batch, an empty one included, so all ranks step together.

    Returns:
        ``{"epoch", "train_loss", "train_accuracy", "lr", "steps", "seconds", "samples_per_s"}``
        (loss and accuracy on the sampled, noised-over batches of all ranks, before the step).
    """
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    seed = rank_seed(cfg.seed * 100_003 + epoch, ctx)
    generator.manual_seed(seed)
    torch.manual_seed(seed)  # DP noise (rank 0 only when distributed) and dropout
    g_aug = torch.Generator().manual_seed(seed + 1)
    aug = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment.items()})
    steps_per_epoch = len(dp.data_loader)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    step = epoch * steps_per_epoch
    dp.model.train()
    loss_sum, correct, seen, steps = 0.0, 0, 0, 0
    start = time.perf_counter()
    lr = lr_at(step, total_steps, warmup, cfg.lr)
    with warnings.catch_warnings(), BatchMemoryManager(
        data_loader=dp.data_loader, max_physical_batch_size=cfg.physical_batch_size, optimizer=dp.optimizer
    ) as batches:
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs} (DP)", leave=False,
                   disable=not (cfg.progress and ctx.is_main), mininterval=5.0, file=sys.stderr)
        # Opacus's backward hooks on a tail whose inputs need no gradient: expected, harmless.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for x, y in bar:
            if len(y) == 0 and not ctx.distributed:  # Poisson sampling can draw an empty batch
                continue  # (distributed: every rank must step, so an empty local batch goes through)
            lr = lr_at(step + steps, total_steps, warmup, cfg.lr)
            for group in dp.optimizer.param_groups:
                group["lr"] = lr
            if raw:
                x = to_model_input(x)  # (B, 1, 48, 48)
                if cfg.augment and len(x):  # (an empty local batch of a distributed run has nothing to augment)
                    x = augment_batch(x, aug, g_aug)
            logits = dp.model(x)  # (B, K)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            dp.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            dp.optimizer.step()
            if not dp.optimizer._is_last_step_skipped:  # a logical (noised) step was taken
                steps += 1
                if ema is not None:
                    ema.update_parameters(model)
            if len(y):  # the mean loss of an empty batch is NaN
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.detach().argmax(1) == y).sum())
                seen += len(y)
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], ctx)
    return {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "lr": lr, "steps": steps, "seconds": seconds, "samples_per_s": seen / max(seconds, 1e-9)}


def main_private(cfg: TrainConfig, command: str | None = None) -> dict:
    """Train (or resume) a DP model as configured, then evaluate and export the chosen weights.

    Same contract as :func:`fer_core.train.main` (resumable ``cfg.out``; ``stop_after``); the model
    card's ``privacy`` block holds epsilon spent (accountant), delta, noise_multiplier,
    max_grad_norm, sample_rate, steps, epochs, and which rows are private.

    Under ``torchrun`` every process calls this (distributed DP-SGD on CPU, ``gloo``); rank 0 writes
    the files and returns ``checkpoint``/``metrics`` (None on other ranks); ``epsilon`` is on all.

    Raises:
        fer_core.privacy.PrivacyError: inconsistent privacy settings (e.g. both epsilon and
            noise_multiplier, delta >= 1/N, a stage-1 model that saw private rows).
        fer_core.data.DatasetError: missing or malformed dataset.
        ValueError: ``cfg.out`` holds a run with another configuration.
    """
    t_invocation = time.perf_counter()
    _check_config(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = _device(cfg)
    with distributed_session(torch.device("cpu")) as ctx:
        if device.type != "cpu" and ctx.is_main:
            print("note: private training runs on the CPU path of this loop", file=sys.stderr)
        return _main_private(cfg, command, ctx, device, t_invocation)


def _main_private(cfg: TrainConfig, command: str | None, ctx: DistContext, device: torch.device,
                  t_invocation: float) -> dict:
    out = Path(cfg.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    command = command or f"fer_core.train.main(TrainConfig(out={cfg.out!r}, dp_method={cfg.dp_method!r}, ...))"

    ds = _load_data(cfg)
    train_x, train_y, rows = select_train_rows(cfg, ds)
    n = len(train_y)
    if cfg.delta >= 1.0 / n:
        raise PrivacyError(f"delta={cfg.delta} is not below 1/N = {1.0 / n:.2e} for {n} private rows")
    val_x, val_y = ds.split(cfg.val_split)
    val_x, val_y = shard(val_x, ctx), shard(val_y, ctx)  # each rank validates its share

    model_args = model_arguments(cfg.arch, **{"num_classes": len(class_names(cfg)), **cfg.model_args})
    model = build_model(cfg.arch, **model_args)
    if cfg.init_from:
        from fer_core.checkpoints import load_checkpoint

        init = load_checkpoint(cfg.init_from)
        if init.card["arch"] != cfg.arch or init.card["model_args"] != model_args:
            raise ValueError(f"--init-from {cfg.init_from} is a {init.card['arch']} with "
                             f"{init.card['model_args']}; this run builds a {cfg.arch} with {model_args}")
        if cfg.dp_method == "two-stage":
            _check_stage1(cfg, init.card, ds.sha256)
        model.load_state_dict(init.model.state_dict())
    model = model.to(memory_format=torch.contiguous_format)
    prefix, tail = split_for_finetune(model, cfg.trainable)
    trainable = {id(p) for p in tail.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)

    raw = isinstance(prefix, nn.Identity)
    t_features = time.perf_counter()
    if raw:
        train_in, val_in = torch.from_numpy(train_x), torch.from_numpy(val_x)
    else:
        train_in, val_in = _cached_features(cfg, model_args, ds.sha256, prefix, train_x, val_x)
    feature_s = time.perf_counter() - t_features

    generator = torch.Generator()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train_in, torch.from_numpy(train_y)),
        batch_size=cfg.batch_size, generator=generator,
    )
    # Opacus's Poisson loader samples each row with q = 1 / len(loader) (len = ceil(N / batch)) and
    # yields len(loader) batches per epoch; the accountant records exactly these (sigma, q, steps).
    # Distributed: the same q and steps; each rank samples its shard, the expected global batch is qN.
    sample_rate = 1.0 / len(loader)
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.noise_multiplier is not None:
        sigma = float(cfg.noise_multiplier)
    else:
        sigma = noise_multiplier_for(cfg.epsilon, cfg.delta, sample_rate, total_steps, cfg.accountant)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
           if cfg.ema_decay > 0 else None)
    ema_tail = split_for_finetune(ema.module, cfg.trainable)[1] if ema is not None else None
    optimizer = make_optimizer(tail, cfg)
    tail.train()
    dp = make_private(tail, optimizer, loader, noise_multiplier=sigma, max_grad_norm=cfg.max_grad_norm,
                      accountant=cfg.accountant, grad_sample_mode=cfg.grad_sample_mode,
                      distributed=ctx.distributed)
    if ema is not None and ctx.distributed:  # the tail now holds rank 0's weights: so does the EMA
        ema.module.load_state_dict(model.state_dict())

    history: list[dict] = []
    best: dict = {"val_accuracy": -1.0}
    commands: list[str] = []
    elapsed_before, start_epoch = 0.0, 0
    state_path = out / STATE_FILE
    frozen = json.loads(json.dumps(cfg.to_dict()))
    state = load_resume_state(state_path, frozen, ds.sha256, ctx)
    if state is not None:
        model.load_state_dict(state["model"])
        dp.optimizer.original_optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        dp.engine.accountant.history = [tuple(h) for h in json.loads(state["accountant_history"])]
        history, best = json.loads(state["history"]), json.loads(state["best"])
        commands = json.loads(state["commands"])
        elapsed_before, start_epoch = float(state["elapsed_s"]), int(state["epoch"])
        if ctx.is_main:
            print(f"resuming {out} after epoch {start_epoch}", file=sys.stderr)
    commands.append(command)
    if ctx.is_main:
        print(f"{cfg.dp_method}: {n:,} private rows, sample_rate {sample_rate:.5f}, noise_multiplier {sigma:.4f}, "
              f"max_grad_norm {cfg.max_grad_norm}, {total_steps} steps ({cfg.accountant})"
              + (f", features precomputed in {feature_s:.0f} s" if not raw else "")
              + (f", data parallel over {ctx.world_size} processes ({ctx.backend})" if ctx.distributed else ""),
              file=sys.stderr, flush=True)

    epochs_this_run = 0
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.stop_after is not None and epochs_this_run >= cfg.stop_after:
            break
        row = train_one_epoch_private(dp, generator, cfg, epoch, total_steps, raw, model, ema, ctx)
        row["epsilon"] = spent_epsilon(dp.engine, cfg.delta)
        best = validate_and_select(
            row, lambda which: evaluate_inputs(tail if which == "raw" else ema_tail, val_in, val_y, raw),
            model, ema, best, epoch, out, ctx)
        history.append(row)
        epochs_this_run += 1
        if not ctx.is_main:
            continue
        _atomic_torch_save(
            run_state(model, dp.optimizer.original_optimizer.state_dict(), ema, epoch, history, best, commands,
                      frozen, ds.sha256, elapsed_before + time.perf_counter() - t_invocation,
                      accountant_history=json.dumps([list(h) for h in dp.engine.accountant.history])),
            state_path)
        _write_history(history, out / HISTORY_FILE)
        print(f"epoch {epoch + 1}/{cfg.epochs} loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} "
              f"| {cfg.val_split} acc {row['val_accuracy']:.4f}"
              + (f" ema {row['val_accuracy_ema']:.4f}" if ema is not None else "")
              + f" | epsilon {row['epsilon']:.3f} | {row['samples_per_s']:.0f} samples/s, {row['seconds']:.0f} s",
              file=sys.stderr, flush=True)

    finished = len(history) >= cfg.epochs
    result = {"out": str(out), "history": history, "best": best, "finished": finished,
              "checkpoint": None, "metrics": None, "epsilon": spent_epsilon(dp.engine, cfg.delta)}
    if not finished or not ctx.is_main:
        return result

    final, metrics = evaluate_chosen(cfg, model_args, ds, out)
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    steps = sum(int(h[2]) for h in dp.engine.accountant.history)
    privacy = privacy_block(
        method=cfg.dp_method, epsilon=result["epsilon"], delta=cfg.delta, accountant=cfg.accountant,
        noise_multiplier=sigma, max_grad_norm=cfg.max_grad_norm, sample_rate=sample_rate,
        batch_size=round(sample_rate * n), steps=steps, epochs=cfg.epochs, private_rows=n,
        rows_description=rows["description"], target_epsilon=cfg.epsilon, trainable=cfg.trainable,
        public_rows=rows.get("public_rows", 0),
    )
    if cfg.dp_method == "two-stage":
        privacy["stage1_checkpoint"] = str(cfg.init_from)
    card = build_card(cfg, final, model_args, ds, metrics, best, history, commands, json.loads(state["config"]),
                      float(state["elapsed_s"]), device, train_rows=n, privacy=privacy, rows=rows,
                      processes=ctx.describe())
    result["metrics"] = metrics
    if cfg.export:
        save_checkpoint(cfg.export, final, card)
        result["checkpoint"] = cfg.export
    (out / "final_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return result
