"""The resumable state of a run folder (``<out>/state.pt``) and its checks.

After every epoch the lifecycle writes ``state.pt`` atomically (model, EMA, optimizer, history, best,
the commands that ran, the frozen config, the data's sha256, elapsed time, and what a strategy adds,
e.g. the privacy accountant's history); a later invocation with the same ``out`` resumes after the
last finished epoch, and refuses a folder made with another configuration or data file.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from fer_core.training.card import FINAL_CARD_FILE
from fer_core.training.config import FREE_OPTIONS, TrainConfig
from fer_core.training.distributed import SINGLE, DistContext, broadcast_from_main

STATE_FILE = "state.pt"


HISTORY_FILE = "history.csv"  # in the run folder; the model card holds the same rows


def atomic_torch_save(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: a crash never leaves half a state file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_history(history: list[dict], path: Path) -> None:
    """The per-epoch rows as ``history.csv`` in the run folder (atomic; the model card holds the same rows)."""
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


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




def finished_card(cfg: TrainConfig) -> dict | None:
    """The final card of a finished run of exactly this configuration in ``cfg.out`` (options in
    :data:`~fer_core.training.config.FREE_OPTIONS` may differ), else None: read back instead of rerunning."""
    path = Path(cfg.out) / FINAL_CARD_FILE
    if not path.exists():
        return None
    card = json.loads(path.read_text())
    want = json.loads(json.dumps(cfg.to_dict()))
    same = all(card.get("config", {}).get(k, v) == v for k, v in want.items() if k not in FREE_OPTIONS)
    return card if same else None
