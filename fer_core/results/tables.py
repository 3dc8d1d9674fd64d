"""Reading model cards into table rows for the app and reports."""

from __future__ import annotations

from collections.abc import Iterable

from fer_core.results.files import finite_or_none


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


#: Columns of :func:`benchmark_rows`, in display order.
BENCHMARK_COLUMNS = [
    "model", "arch", "label set", "parameters", "MACs", "training data", "private", "method", "privacy", "ε", "δ",
    "PrivateTest accuracy", "PrivateTest macro-F1", "PrivateTest accuracy (dedup)", "negative-vs-other F1", "ECE",
    "audit AUC (RMIA)", "audit AUC (loss)", "faces/s batch 1", "faces/s batch 64", "photo ms",
]


#: :data:`FIGURES` -> their column in :func:`benchmark_rows`.
FIGURE_COLUMNS = {"faces_per_s_batch1": "faces/s batch 1", "faces_per_s_batch64": "faces/s batch 64",
                  "photo_ms": "photo ms"}


def privacy_text(privacy: dict | None) -> str:
    """``"ε = 0.977, δ = 1e-05"`` for a private model card's ``privacy`` block, else ``"not private"``."""
    p = privacy or {}
    if not p.get("private"):
        return "not private"
    eps, delta = finite_or_none(p.get("epsilon")), finite_or_none(p.get("delta"))
    return f"ε = {'?' if eps is None else format(eps, 'g')}, δ = {'?' if delta is None else format(delta, 'g')}"


def benchmark_rows(cards: Iterable[dict], audit_rows: Iterable[dict] = (), speed_rows: Iterable[dict] = (),
                   split: str = "PrivateTest") -> list[dict]:
    """One row per model card with its architecture, data, privacy, test metrics, audit AUC and speed.

    Args:
        cards: model cards (``model.json``), e.g. from :func:`fer_core.app.support.available_checkpoints`.
        audit_rows: rows of ``audit.csv`` (``model``, ``attack``, ``auc``; strings or numbers).
        speed_rows: rows of a speed CSV (:func:`read_speed`).
        split: the test split whose metrics are shown.

    Returns:
        Dicts with :data:`BENCHMARK_COLUMNS`: ``parameters``/``MACs`` ints, ``label set`` the card's
        ``label_set`` (``"fer2013"`` when absent) with its class count, ``training data`` the card's
        data description, ``private`` bool, ``method`` the DP method or ``"not private"``, ``privacy``
        :func:`privacy_text`, ``ε``/``δ`` floats or None (not private), metrics as
        shares in [0, 1] or None, audit AUCs (0-1) and speed figures (faces/s, ms) or None when the
        files have no row for the model. Cards without a name are skipped.
    """
    auc: dict[tuple[str, str], float] = {}
    for r in audit_rows:
        v = finite_or_none(r.get("auc"))
        if r.get("model") and r.get("attack") and v is not None:
            auc[(str(r["model"]).strip(), str(r["attack"]).strip())] = v
    speed = {str(r.get("model")).strip(): r for r in speed_rows if r.get("model")}
    rows = []
    for c in cards:
        name = c.get("name")
        if not name:
            continue
        m = (c.get("metrics") or {}).get(split) or {}
        p = c.get("privacy") or {}
        data = c.get("data") or {}
        classes = c.get("classes") or []
        s = speed.get(name, {})
        rows.append({
            "model": name,
            "arch": c.get("arch"),
            "label set": f"{c.get('label_set') or 'fer2013'} ({len(classes)} classes)",
            "parameters": c.get("parameters"),
            "MACs": c.get("macs"),
            "training data": data.get("description") or data.get("source") or "unknown",
            "private": bool(p.get("private")),
            "method": p.get("method") if p.get("private") else "not private",
            "privacy": privacy_text(p),
            "ε": finite_or_none(p.get("epsilon")) if p.get("private") else None,
            "δ": finite_or_none(p.get("delta")) if p.get("private") else None,
            "PrivateTest accuracy": finite_or_none(m.get("accuracy")),
            "PrivateTest macro-F1": finite_or_none(m.get("macro_f1")),
            "PrivateTest accuracy (dedup)": finite_or_none(m.get("accuracy_dedup")),
            "negative-vs-other F1": finite_or_none((m.get("negative_vs_other") or {}).get("f1")),
            "ECE": finite_or_none(m.get("ece")),
            "audit AUC (RMIA)": auc.get((name, "rmia")),
            "audit AUC (loss)": auc.get((name, "loss")),
            **{col: finite_or_none(s.get(key)) for key, col in FIGURE_COLUMNS.items()},
        })
    return rows
