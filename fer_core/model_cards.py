"""Reading model cards into table rows for the app and reports."""

from __future__ import annotations

from collections.abc import Iterable


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
            "labels": {"ferplus": "FER+ (8)"}.get(c.get("label_set"), "FER2013 (7)"),
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


def history_rows(card: dict) -> list[dict]:
    """Per-epoch training rows of a model card (``epoch``, ``train_accuracy``, ``val_accuracy``...), or []."""
    return list(card.get("history") or [])
