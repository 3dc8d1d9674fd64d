"""The architecture comparison: every architecture trained with one recipe and budget, one row each in
``checkpoints/results/architectures.csv`` (written through :mod:`fer_core.results.files`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from fer_core.models.architectures import ARCHITECTURES
from fer_core.results.files import ARCH_RESULTS, write_architectures
from fer_core.training.card import FINAL_CARD_FILE
from fer_core.training.lifecycle import main


def compare_architectures(
    base, archs=ARCHITECTURES, results_path=ARCH_RESULTS, command: str = "", arch_args: dict | None = None
) -> list[dict]:
    """Train each architecture with the same recipe and budget; write one CSV row per architecture.

    Args:
        base: a :class:`fer_core.training.config.TrainConfig`; ``out`` is the parent run folder (one
            sub-folder per architecture, each resumable) and ``model_args`` is ignored.
        archs: architecture names.
        results_path: CSV to (re)write.
        command: the command line, recorded in each row.
        arch_args: optional ``{arch: model_args}``; architectures not named use their defaults.

    Returns:
        The rows written (dicts with :data:`fer_core.results.files.ARCH_COLUMNS`); rows of runs that ``stop_after`` left
        unfinished are not written.
    """
    rows = []
    for arch in archs:
        cfg = dataclasses.replace(base, arch=arch, model_args=dict((arch_args or {}).get(arch, {})),
                                  out=str(Path(base.out) / arch), export=None, name=f"compare_{arch}")
        res = main(cfg, command=command)
        if not res["finished"]:
            continue
        card = json.loads((Path(cfg.out) / FINAL_CARD_FILE).read_text())
        pub, priv = card["metrics"][cfg.val_split], card["metrics"].get(cfg.test_split, {})
        hist = res["history"]
        rows.append({
            "arch": arch,
            "model_args": json.dumps(card["model_args"], sort_keys=True),
            "parameters": card["parameters"],
            "macs": card["macs"],
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "train_seconds": round(sum(h["seconds"] for h in hist), 1),
            "samples_per_s": round(sum(h["samples_per_s"] for h in hist) / len(hist), 1),
            "best_epoch": card["selection"]["epoch"],
            "publictest_accuracy": round(pub["accuracy"], 4),
            "privatetest_accuracy": round(priv.get("accuracy", float("nan")), 4),
            "privatetest_macro_f1": round(priv.get("macro_f1", float("nan")), 4),
            "privatetest_accuracy_dedup": round(priv.get("accuracy_dedup", float("nan")), 4),
            "privatetest_accuracy_flip_tta": round(priv.get("accuracy_flip_tta", float("nan")), 4),
            "privatetest_ece": round(priv.get("ece", float("nan")), 4),
            "command": command,
        })
    if rows:
        write_architectures(rows, results_path)
    return rows
