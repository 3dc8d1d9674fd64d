"""The plain (non-private) strategy of the training lifecycle: SGD/AdamW over augmented batches.

Recipe: SGD with Nesterov momentum (or AdamW), linear warm-up then cosine decay per step, label
smoothing (Szegedy et al. 2016), weight EMA (``torch.optim.swa_utils.AveragedModel``), batched
tensor augmentation (:mod:`fer_core.data.augment`), fixed seeds. Data parallel under ``torchrun``:
the model is wrapped in ``DistributedDataParallel`` and rank ``r`` of ``W`` takes its
``batch_size / W`` slice of every global batch of the epoch's seeded permutation.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from fer_core.data.augment import augment_batch
from fer_core.data.preprocess import MEAN, STD, to_model_input
from fer_core.training.config import TrainConfig
from fer_core.training.distill import Teacher, TeacherViews, distillation_loss
from fer_core.training.distributed import SINGLE, DistContext, all_reduce_sum, per_rank_batch, rank_seed
from fer_core.training.optim import lr_at, make_ema, make_optimizer
from fer_core.training.rows import class_names
from fer_core.training.validation import CPU, evaluate


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
    teacher: Teacher | None = None,
    views: TeacherViews | None = None,
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
        teacher: distil from it (:func:`~fer_core.training.distill.distillation_loss` with ``cfg.kd_temperature``
            and ``cfg.kd_alpha``; the teacher sees the same augmented batch) instead of plain cross-entropy.
        views: with ``teacher``: the epoch's inputs are the stored view ``epoch mod V`` (already augmented) and
            the targets the teacher's stored probabilities on it.

    Returns:
        ``{"epoch", "train_loss", "train_accuracy", "lr", "seconds", "samples_per_s"}`` over all
        ranks (the same on every rank).
    """
    model.train()
    base = cfg.epoch_seed(epoch)
    g = torch.Generator().manual_seed(base)  # the permutation: the same on every rank
    g_aug = torch.Generator().manual_seed(rank_seed(base, ctx)) if ctx.distributed else g
    torch.manual_seed(rank_seed(base, ctx))  # dropout: same masks after a resume
    n = len(labels)
    perm = torch.randperm(n, generator=g)
    local = per_rank_batch(cfg.batch_size, ctx)
    steps_per_epoch = plain_steps_per_epoch(n, cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    aug = cfg.augment_config
    view_x, view_p = views.epoch(epoch) if views is not None else (None, None)
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
        if view_x is not None:
            x = view_x[idx]  # (B / W, 1, 48, 48), augmented when the view was drawn
        else:
            x = to_model_input(images[idx])  # (B / W, 1, 48, 48)
            if cfg.augment:  # an empty dict switches augmentation off
                x = augment_batch(x, aug, g_aug)
        y = labels[idx]
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = step_model(x)  # (B, K)
        if teacher is None:
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        else:
            soft = view_p[idx] if view_p is not None else teacher.probabilities(x, cfg.kd_temperature)  # (B, K)
            loss = distillation_loss(logits, soft, y, cfg.kd_temperature, cfg.kd_alpha, cfg.label_smoothing)
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


def plain_steps_per_epoch(rows: int, batch_size: int) -> int:
    """Optimizer steps per epoch of the plain recipe: full batches only (the last partial one is dropped)."""
    return rows // batch_size


class PlainStrategy:
    """What the lifecycle needs from a plain run: the epoch step, validation and the optimizer state.

    Built by the lifecycle once the model exists (weights initialised, on its device); wraps it in
    ``DistributedDataParallel`` when data-parallel and in ``torch.compile`` when configured.
    """

    private = False

    @staticmethod
    def check(cfg: TrainConfig) -> None:
        """Refuse distillation settings without a teacher.

        Raises:
            ValueError: ``kd_views`` without ``teacher``.
        """
        if cfg.kd_views and not cfg.teacher:
            raise ValueError("--kd-views needs a --teacher")

    @staticmethod
    def rows(cfg: TrainConfig) -> str:
        return cfg.train_rows

    @staticmethod
    def session_device(cfg: TrainConfig) -> torch.device:
        return cfg.torch_device()

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, model_args: dict, train_x, train_y, val_x, val_y,
                 device: torch.device, ctx: DistContext, sha256: str = "", library=None) -> None:
        self.cfg, self.model, self.device, self.ctx = cfg, model, device, ctx
        per_rank_batch(cfg.batch_size, ctx)  # fail early on a batch that does not split over the ranks
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        model.to(device)
        train_model: torch.nn.Module = model
        if ctx.distributed:  # broadcasts rank 0's weights, then averages gradients in every backward pass

            train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = make_optimizer(model, cfg)
        self.ema = make_ema(model, cfg)
        self.step_model = torch.compile(train_model) if cfg.compile else train_model
        self.train_x, self.train_y = torch.from_numpy(train_x), torch.from_numpy(train_y)
        self.val_x, self.val_y = val_x, val_y
        self.teacher = Teacher.from_config(cfg, list(class_names(cfg)), MEAN, STD, device) if cfg.teacher else None
        self.views = None
        if self.teacher is not None and cfg.kd_views > 0:
            self.views = TeacherViews(self.teacher, self.train_x, cfg, Path(cfg.out) if ctx.is_main else None,
                                      progress=cfg.progress and ctx.is_main)

    def describe(self) -> str | None:
        lines = []
        if self.ctx.distributed:
            w, b = self.ctx.world_size, self.cfg.batch_size
            lines.append(f"data parallel: {w} processes ({self.ctx.backend}), global batch {b} = {w} x {b // w}")
        if self.teacher is not None:
            names = " + ".join(ck.name for ck in self.teacher.checkpoints)
            lines.append(f"distilling from {names} (T = {self.cfg.kd_temperature}, alpha = {self.cfg.kd_alpha}"
                         + (", teacher flip-averaged" if self.cfg.teacher_flip else "") + ")")
        return "\n".join(lines) or None

    def train_epoch(self, epoch: int) -> dict:
        return train_one_epoch(self.model, self.step_model, self.optimizer, self.train_x, self.train_y, self.cfg,
                               epoch, self.ema, self.device, self.ctx, self.teacher, self.views)

    def validate(self, which: str) -> dict:
        module = self.model if which == "raw" else self.ema.module
        return evaluate(module, self.val_x, self.val_y, raw=True, device=self.device)

    def optimizer_state(self) -> dict:
        return self.optimizer.state_dict()

    def load_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])

    def extra_state(self) -> dict:
        return {}

    def log_suffix(self, row: dict) -> str:
        return ""

    def privacy(self, rows: dict, train_rows: int) -> dict | None:
        return None

    def card_blocks(self) -> dict:
        """Blocks this strategy adds to the model card: ``distillation`` when a teacher taught the run."""
        return {"distillation": self.teacher.describe(self.cfg)} if self.teacher is not None else {}

    def result(self) -> dict:
        return {}
