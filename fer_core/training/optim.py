"""Optimizers, the learning-rate schedule and the weight EMA shared by every training strategy."""

from __future__ import annotations

import math

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fer_core.training.config import TrainConfig


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


def make_ema(model: torch.nn.Module, cfg: TrainConfig) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights (decay ``cfg.ema_decay`` per step), or None if 0."""
    if cfg.ema_decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
