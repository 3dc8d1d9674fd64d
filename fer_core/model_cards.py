"""Reading model cards into table rows for the app and reports."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from fer_core.checkpoints import HISTORY_FILE


def summary_rows(cards: Iterable[dict]) -> list[dict]:
    """One flat row per model card: name, arch, parameters, MACs, privacy and test metrics (shares 0-1)."""
    rows = []
    for c in cards:
        m = c.get("metrics", {})
        pub, priv = m.get("PublicTest", {}), m.get("PrivateTest", {})
        p = c.get("privacy", {})
        rows.append({
            "model": c.get("name"),
            "arch": c.get("arch"),
            "parameters": c.get("parameters"),
            "MACs": c.get("macs"),
            "private": bool(p.get("private")),
            "epsilon": p.get("epsilon"),
            "delta": p.get("delta"),
            "PublicTest accuracy": pub.get("accuracy"),
            "PrivateTest accuracy": priv.get("accuracy"),
            "PrivateTest macro_f1": priv.get("macro_f1"),
            "PrivateTest accuracy (dedup)": priv.get("accuracy_dedup"),
            "negative-vs-other F1": priv.get("negative_vs_other", {}).get("f1"),
            "ECE": priv.get("ece"),
        })
    return rows


def history_rows(checkpoint_dir: str | Path) -> list[dict]:
    """Rows of a checkpoint's ``history.csv`` (values as strings), or [] if it has none."""
    f = Path(checkpoint_dir) / HISTORY_FILE
    if not f.is_file():
        return []
    with open(f, newline="") as fh:
        return list(csv.DictReader(fh))
