"""TODO docstring."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from fer_core import EMOTIONS
from fer_core.models.checkpoint import CHECKPOINT_DIR

SWEEP_RESULTS = CHECKPOINT_DIR / "results" / "sweep.csv"

#: Environment variable that points the app at another ``sweep.csv`` (tests, other result sets).
SWEEP_ENV = "FER_SWEEP_RESULTS"


def sweep_path() -> Path:
    """Where the app reads the sweep: ``$FER_SWEEP_RESULTS``, else :data:`fer_core.results.sweep.SWEEP_RESULTS`."""

    env = os.environ.get(SWEEP_ENV)
    return Path(env).expanduser() if env else SWEEP_RESULTS


def sweep_rows() -> list[dict]:
    """Rows of the sweep CSV at :func:`sweep_path` (see :func:`fer_core.results.sweep.read_sweep`); [] if there is none."""

    return read_sweep(sweep_path())


def finite_or_none(v) -> float | None:
    """``float(v)`` if that is a finite number, else None (CSV cells: empty, "nan", text)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None




SWEEP_COLUMNS = [
    "method", "epsilon", "target_epsilon", "delta", "accountant", "noise_multiplier", "max_grad_norm",
    "batch_size", "sample_rate", "epochs", "steps", "trainable", "private_rows", "public_rows",
    "publictest_accuracy", "privatetest_accuracy", "privatetest_macro_f1",
    *[f"recall_{e}" for e in EMOTIONS], "train_seconds", "run", "checkpoint", "command",
]


def read_sweep(path: Path = SWEEP_RESULTS) -> list[dict]:
    """Rows of ``sweep.csv`` as dicts (numbers as floats where they parse); [] if there is none."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = float(v)
            except (TypeError, ValueError):
                pass
    return rows
