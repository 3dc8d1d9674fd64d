"""What the audit says about each model: the rows of ``audit.csv`` fit to show, the page's table, and the
verdict of the empirical epsilon lower bound against the claimed epsilon.

Rows are :func:`fer_core.results.files.read_audit`'s (floats or None, ``private`` a bool). A measured
bound above the claimed epsilon refutes the claim; one at or below it is consistent with it (an audit
can refute a promise, never prove it); a non-private model makes no promise to check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Display names of the attacks in ``audit.csv``'s ``attack`` column.
ATTACK_NAMES = {"rmia": "RMIA (reference models)", "loss": "Loss threshold"}

#: Columns of :func:`audit_table_rows`, in display order.
AUDIT_TABLE_COLUMNS = ["model", "private", "method", "claimed ε", "attack", "AUC", "TPR@1% FPR", "TPR@0.1% FPR",
                       "balanced accuracy", "empirical ε lower bound"]


@dataclass(frozen=True)
class Verdict:
    """``kind``: ``"exceeds"`` (the bound refutes the claim), ``"consistent"``, ``"unchecked"`` (a private model
    whose measured or claimed ε is missing) or ``"no promise"`` (not private); ``text``: one Markdown line."""

    model: str
    kind: str
    text: str


def usable_audit_rows(rows: Iterable[dict]) -> list[dict]:
    """The rows with a model, an attack and an AUC (the others are malformed and not shown)."""
    return [r for r in rows if r.get("model") and r.get("attack") and r.get("auc") is not None]


def attack_order(rows: Iterable[dict]) -> list[str]:
    """The attacks in ``rows``, RMIA first, then the loss threshold, then any other by name."""
    return sorted({r["attack"] for r in rows}, key=lambda a: (a != "rmia", a != "loss", a))


def roc_curves(rocs: dict, rows: Iterable[dict], attack: str) -> dict:
    """``{model: {attack: curve}}`` of :func:`fer_core.results.files.read_audit_roc` narrowed to the models of
    ``rows`` (in their order) that have a curve for ``attack``."""
    models = dict.fromkeys(r["model"] for r in rows)
    return {m: rocs[m] for m in models if m in rocs and attack in rocs[m]}


def _fmt(v, spec: str, none: str = "—") -> str:
    return none if v is None else format(v, spec)


def audit_table_rows(rows: Iterable[dict]) -> list[dict]:
    """One display row per audit row (:data:`AUDIT_TABLE_COLUMNS`): the claimed ε as text (``"— (no
    promise)"`` for a non-private model, ``"unknown"`` for a private one without it) and the bound with two
    decimals; AUC, TPRs and balanced accuracy stay numbers."""
    return [{
        "model": r["model"],
        "private": r["private"],
        "method": r.get("method") or "—",
        "claimed ε": _fmt(r["claimed_epsilon"], "g", "— (no promise)" if not r["private"] else "unknown"),
        "attack": r["attack"],
        "AUC": r["auc"],
        "TPR@1% FPR": r["tpr_at_1pct_fpr"],
        "TPR@0.1% FPR": r["tpr_at_0.1pct_fpr"],
        "balanced accuracy": r["balanced_accuracy"],
        "empirical ε lower bound": _fmt(r["epsilon_lower_bound"], ".2f"),
    } for r in rows]


def audit_verdict(row: dict) -> Verdict:
    """The empirical ε lower bound of one audit row against the model's claimed ε."""
    label = f"**{row['model']}**"
    lb, claimed = row.get("epsilon_lower_bound"), row.get("claimed_epsilon")
    if not row.get("private"):
        return Verdict(row["model"], "no promise",
                       f"{label} is not private: measured ε ≥ {_fmt(lb, '.2f', '?')}, with no promise to check.")
    if lb is None or claimed is None:
        return Verdict(row["model"], "unchecked",
                       f"{label}: the measured or the claimed ε is missing, so the promise cannot be checked.")
    if lb > claimed:
        return Verdict(row["model"], "exceeds",
                       f"{label}: measured ε ≥ {lb:.2f} vs claimed ε = {claimed:g}: exceeds the claim! "
                       "The training leaks more than its privacy guarantee allows (or the guarantee was "
                       "mis-accounted).")
    return Verdict(row["model"], "consistent", f"{label}: measured ε ≥ {lb:.2f} vs claimed ε = {claimed:g}: consistent")


def audit_sample_text(rows: Iterable[dict], attack: str) -> str | None:
    """``"2000 members and 2000 non-members per model, 4 reference models"`` from the first row that has its
    sample sizes (reference models for RMIA only); None when no row has them."""
    n = next((r for r in rows if r.get("n_members")), None)
    if n is None:
        return None
    refs = f", {n['references']:.0f} reference models" if attack == "rmia" and n.get("references") else ""
    return f"{n['n_members']:.0f} members and {_fmt(n.get('n_nonmembers'), '.0f')} non-members per model{refs}"
