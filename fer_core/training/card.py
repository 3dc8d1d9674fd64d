"""The model card of a finished run: what it is, what it was trained on, how well it does, what it cost.

Written by the lifecycle into ``<out>/final_card.json`` and, with ``export``, beside the weights
(:func:`fer_core.models.checkpoint.save_checkpoint`). Paths in a card are relative to the
repository when they lie inside it (:func:`fer_core.models.checkpoint.repo_relative`), so a card
says the same on every machine.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from fer_core import __version__
from fer_core.data.datasets import FERDataset
from fer_core.data.preprocess import MEAN, STD, preprocessing_spec
from fer_core.models.architectures import count_macs, count_parameters
from fer_core.models.checkpoint import NOT_PRIVATE, ModelCard, read_card, repo_relative
from fer_core.training.config import TrainConfig
from fer_core.training.rows import class_names

FINAL_CARD_FILE = "final_card.json"  # in the run folder: the card of the finished run, exported or not


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
    """The model card of a finished run (see :mod:`fer_core.models.checkpoint`).

    A non-private model standing on public pretrained weights (``model.provenances()``, e.g.
    :class:`~fer_core.models.mobilenet.MobileNetV2`) lists them as ``public_backbones``; a private one lists them in
    its ``privacy`` block, which its strategy builds.

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
        "privacy": privacy or dict(NOT_PRIVATE),
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
        card["init_from"] = lineage(read_card(cfg.init_from), cfg.init_from)
    if privacy is None and (public := getattr(model, "provenances", list)()):
        card["public_backbones"] = public  # a private card lists them in its privacy block
    return card


def lineage(card: ModelCard, path: str) -> dict:
    """What a fine-tuned model started from: the parent card's name, command, data, cost and result.

    Recorded so that a model's total training compute and provenance stay visible after its parent
    checkpoint is replaced (the parent's own ``init_from`` is kept, recursively).
    """
    test = card.get("metrics", {}).get("PrivateTest", {})
    return {
        "path": repo_relative(path), "name": card.get("name"), "command": card.get("command"),
        "resumed_with": card.get("resumed_with", []), "data_sha256": card.get("data", {}).get("sha256"),
        "train_rows": card.get("data", {}).get("train_rows", "all"), "epochs": card.get("config", {}).get("epochs"),
        "wall_time_s": card.get("wall_time_s"), "hardware": card.get("hardware"),
        "classes": card.get("classes"), "label_set": card.label_set,
        "selection": card.get("selection"), "privatetest_accuracy": test.get("accuracy"),
        "created": card.get("created"), "init_from": card.get("init_from"),
    }
