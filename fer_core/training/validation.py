"""Model selection on the validation split (PublicTest) and the final evaluation of a run.

After every epoch both the raw and the EMA weights are validated; the better one, if it beats the
best so far, is saved as ``<out>/best.safetensors``. Choosing on PublicTest, which is not a training
row, is post-processing: it costs no privacy. When training ends the chosen weights are evaluated on
the selection split and, once, on PrivateTest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel

from fer_core.data.datasets import FERDataset
from fer_core.data.preprocess import to_model_input
from fer_core.evaluation.evaluate import evaluate_split
from fer_core.models.architectures import build_model, split_for_finetune
from fer_core.training.config import TrainConfig
from fer_core.training.distributed import SINGLE, DistContext, check_in_sync, reduce_metrics
from fer_core.training.features import cached_features
from fer_core.training.rows import class_names

BEST_FILE = "best.safetensors"
CPU = torch.device("cpu")


@torch.no_grad()
def evaluate(module: nn.Module, inputs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
             raw: bool = True, batch_size: int = 512, device: torch.device = CPU) -> dict:
    """Loss and accuracy on held-out rows (no augmentation).

    Args:
        module: the model, or the trainable tail of a model whose frozen prefix was precomputed.
        inputs: ``uint8 (N, 48, 48)`` faces when ``raw``, else ``float32 (N, ...)`` precomputed
            prefix outputs (e.g. ``(N, 81, 12, 12)`` scattering features).
        labels: ``int (N,)`` class ids.

    Returns:
        ``{"loss": mean cross-entropy (nats), "accuracy": share correct in [0, 1], "n"}``.
    """
    was_training = module.training
    module.eval()
    y_all = torch.as_tensor(labels, dtype=torch.int64)
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y_all), batch_size):
        x = inputs[i: i + batch_size]
        x = (to_model_input(x) if raw else x).to(device)  # (B, 1, 48, 48) or (B, ...) features
        y = y_all[i: i + batch_size].to(device)
        logits = module(x)  # (B, K)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    module.train(was_training)
    n = len(y_all)
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1), "n": n}


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
              str(out / (BEST_FILE + ".tmp")))
    os.replace(out / (BEST_FILE + ".tmp"), out / BEST_FILE)
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


def evaluate_chosen(cfg: TrainConfig, model_args: dict, ds: FERDataset, out: Path) -> tuple[torch.nn.Module, dict]:
    """The final evaluation of a finished run: the chosen weights (``out/best.safetensors``) on the
    selection split and, once, on the test split.

    Returns:
        ``(model in eval mode, {split: evaluate_split report})``.
    """
    final = build_model(cfg.arch, **model_args)
    final.load_state_dict(load_file(str(out / BEST_FILE)))
    final.eval()
    names = class_names(cfg)
    predict = cached_head_predictor(final, cfg, ds.sha256, library=ds.images)
    metrics = {cfg.val_split: evaluate_split(final, ds, cfg.val_split, class_names=names, predict=predict)}
    if cfg.test_split in ds.splits:
        metrics[cfg.test_split] = evaluate_split(final, ds, cfg.test_split, class_names=names, predict=predict)
    return final, metrics


def cached_head_predictor(model: nn.Module, cfg: TrainConfig, data_sha256: str, library: np.ndarray | None = None):
    """For a tail over a frozen public backbone (a prefix with ``cache_identity``, e.g. facex): faces ->
    probabilities through the on-disk feature cache (:mod:`fer_core.training.features`; the same prefix
    and weights as a full forward pass, which ``python -m fer_core evaluate`` runs), else None."""
    if cfg.trainable not in ("head", "last-block") or not cfg.dp_method:
        return None  # only private runs train a head (or the last blocks and a head) over a frozen prefix
    prefix, tail = split_for_finetune(model, cfg.trainable)
    if not hasattr(prefix, "cache_identity"):
        return None

    @torch.no_grad()
    def predict(faces: np.ndarray) -> np.ndarray:
        feats = cached_features(prefix, faces, data_sha256, progress=cfg.progress, library=library)
        tail.eval()
        return torch.cat([F.softmax(tail(feats[i: i + 4096]), 1) for i in range(0, len(feats), 4096)]).numpy()

    return predict
