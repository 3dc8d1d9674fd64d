"""What the audits say about each model: the rows fit to show, the Privacy audit page's tables, figure
data and verdicts of the empirical epsilon lower bound against the claimed epsilon.

Two audits, two kinds of rows:

* **twin audit** (``audit_twins.csv``, :func:`fer_core.results.files.read_twin_audit`: numbers as floats or
  None, ``private`` and ``blind_shifted`` bools): one row per shipped model and attack (``lira``, ``loss``),
  measured on K twins trained with the model's recipe on random halves of its training rows. Members and
  non-members are two halves of one split, so what an attack finds is leakage; the blind baseline checks it.
* **shifted audit** (``audit.csv``, :func:`fer_core.results.files.read_audit`): one row per model and attack
  (``rmia``, ``loss``), members from Training, non-members from the test splits; its AUC measures the split
  as much as the model.

A measured bound above the claimed epsilon refutes the claim; one at or below it is consistent with it (an
audit can refute a promise, never prove it); a non-private model makes no promise to check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from fer_core.training.config import FREE_OPTIONS

#: Display names of the attacks in the ``attack`` column of ``audit.csv`` and ``audit_twins.csv``.
ATTACK_NAMES = {"lira": "LiRA online (twin shadows)", "lira_offline": "LiRA offline (OUT shadows only)",
                "rmia": "RMIA (reference models)", "loss": "Loss threshold"}

#: Columns of :func:`audit_table_rows`, in display order.
AUDIT_TABLE_COLUMNS = ["model", "private", "method", "claimed ε", "attack", "AUC", "TPR@1% FPR", "TPR@0.1% FPR",
                       "balanced accuracy", "empirical ε lower bound", "blind AUC [95%]"]


@dataclass(frozen=True)
class Verdict:
    """``kind``: ``"exceeds"`` (the bound refutes the claim), ``"consistent"``, ``"unchecked"`` (a private model
    whose measured or claimed ε is missing), ``"no promise"`` (not private) or, for a twin audit only,
    ``"shifted"`` (its blind baseline tells the halves apart: it measured a split); ``text``: one Markdown line."""

    model: str
    kind: str
    text: str


def usable_audit_rows(rows: Iterable[dict]) -> list[dict]:
    """The rows with a model, an attack and an AUC (the others are malformed and not shown)."""
    return [r for r in rows if r.get("model") and r.get("attack") and r.get("auc") is not None]


def _attack_rank(attack: str) -> tuple:
    return attack != "lira", attack != "lira_offline", attack != "rmia", attack != "loss", attack


def attack_order(rows: Iterable[dict]) -> list[str]:
    """The attacks in ``rows``, strongest first: LiRA online, offline, RMIA, the loss threshold, then any other."""
    return sorted({r["attack"] for r in rows}, key=_attack_rank)


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
        "blind AUC [95%]": (_with_interval(r, "blind_auc", ".3f") if r.get("blind_auc") is not None else "not run")
        + (" (shifted)" if r.get("blind_shifted") else ""),
    } for r in rows]


def shifted_audit_note(rows: Iterable[dict]) -> str | None:
    """What the blind baselines of the shifted audit (``audit.csv``) say, in one Markdown sentence: how many of
    its models' member/non-member sets a model-free classifier tells apart, with the range of its AUC; None
    when no row has a blind AUC."""
    by_model = {r["model"]: r for r in rows if r.get("blind_auc") is not None}
    if not by_model:
        return None
    aucs = [r["blind_auc"] for r in by_model.values()]
    flagged = sum(bool(r.get("blind_shifted")) for r in by_model.values())
    return (f"The blind baseline, which never sees a model, tells this audit's members from its non-members with AUC "
            f"{min(aucs):.3f}–{max(aucs):.3f}; {flagged} of {len(by_model)} models' audit sets are flagged as shifted "
            "(members and non-members differ in distribution, so an attack's AUC there measures the split too).")


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


# --- the twin audit (audit_twins.csv) -------------------------------------------------------------------------------

#: Columns of :func:`twin_table_rows`, in display order (intervals are 95 %: Hanley-McNeil for the attack AUCs,
#: bootstrap for the blind AUC, Clopper-Pearson for the TPRs).
TWIN_TABLE_COLUMNS = ["model", "method", "claimed ε", "attack", "twins", "rows", "AUC [95%]", "TPR@1% FPR [95%]",
                      "TPR@0.1% FPR [95%]", "empirical ε lower bound", "blind AUC [95%]"]

#: Leakage measures :func:`twin_leakage_points` can draw: ``{column: (label, value of a coin flip)}``.
TWIN_METRICS = {"auc": ("AUC", 0.5), "tpr_at_0.1pct_fpr": ("TPR @ 0.1% FPR", 0.001)}


def usable_twin_rows(rows: Iterable[dict]) -> list[dict]:
    """The twin-audit rows with a model, an attack and an AUC, ordered by model (in file order) and attack
    (:func:`attack_order`); the others are malformed and not shown."""
    rows = usable_audit_rows(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    return sorted(rows, key=lambda r: (models.index(r["model"]), _attack_rank(r["attack"])))


def _with_interval(row: dict, key: str, spec: str) -> str:
    """``"0.712 [0.701, 0.723]"`` from ``row[key]`` and ``row[key + "_low"/"_high"]`` (just the value when the
    interval is missing; ``"—"`` without a value)."""
    v, lo, hi = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if v is None:
        return "—"
    return format(v, spec) if lo is None or hi is None else f"{v:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def _claimed(row: dict) -> str:
    return _fmt(row.get("claimed_epsilon"), "g", "unknown" if row.get("private") else "— (no promise)")


def twin_table_rows(rows: Iterable[dict]) -> list[dict]:
    """One display row per twin-audit row (:data:`TWIN_TABLE_COLUMNS`): the model, its privacy method
    (``"none (not private)"`` for the baseline), the claimed ε as text, the attack, the number of twins and of
    audited rows, the AUC and the TPRs at 1 % and 0.1 % FPR (as percentages) each with its 95 % interval, the
    empirical ε lower bound (two decimals) and the blind baseline's AUC with its interval, marked
    ``(shifted)`` when it flags the halves as different."""
    return [{
        "model": r["model"],
        "method": r.get("method") or ("unknown" if r.get("private") else "none (not private)"),
        "claimed ε": _claimed(r),
        "attack": r["attack"],
        "twins": None if r.get("twins") is None else int(r["twins"]),
        "rows": None if r.get("n_rows") is None else int(r["n_rows"]),
        "AUC [95%]": _with_interval(r, "auc", ".3f"),
        "TPR@1% FPR [95%]": _with_interval(r, "tpr_at_1pct_fpr", ".2%"),
        "TPR@0.1% FPR [95%]": _with_interval(r, "tpr_at_0.1pct_fpr", ".2%"),
        "empirical ε lower bound": _fmt(r.get("epsilon_lower_bound"), ".2f"),
        "blind AUC [95%]": _with_interval(r, "blind_auc", ".3f") + (" (shifted)" if r.get("blind_shifted") else ""),
    } for r in rows]


def _strongest(rows: list[dict]) -> dict:
    """The row whose attack proves the largest ε (ties: the stronger attack, :func:`attack_order`)."""
    return min(rows, key=lambda r: (-(r.get("epsilon_lower_bound") or 0.0), _attack_rank(r["attack"])))


def twin_verdicts(rows: Iterable[dict]) -> list[Verdict]:
    """One verdict per model of the twin audit (models in the order of ``rows``).

    Each judges the attack that proves the largest ε: a DP model whose bound exceeds its claimed ε is
    ``"exceeds"`` (on one distribution that is leakage, not split shift: a bug to find), one at or below it
    ``"consistent"``; a non-private model gets ``"no promise"`` with what it leaks (AUC and TPR at 0.1 % FPR).
    A model whose blind baseline is flagged shifted in any row gets ``"shifted"`` instead: its audit
    measured a split, not the model, so its figures are no evidence either way.
    """
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    return [_twin_verdict(model, rs) for model, rs in by_model.items()]


def _twin_verdict(model: str, rows: list[dict]) -> Verdict:
    label, r = f"**{model}**", _strongest(rows)
    lb, claimed = r.get("epsilon_lower_bound"), r.get("claimed_epsilon")
    attack = ATTACK_NAMES.get(r["attack"], r["attack"])
    shifted = next((s for s in rows if s.get("blind_shifted")), None)
    if shifted is not None:
        return Verdict(model, "shifted", (
            f"{label}: the blind baseline, which never sees the model, tells the twins' members from their "
            f"non-members (AUC {_with_interval(shifted, 'blind_auc', '.3f')}): this audit measured a split, not "
            f"the model, and its figures (measured ε ≥ {_fmt(lb, '.2f', '?')}) are no evidence either way. "
            "The halves should be random halves of one split: check the twins' membership."))
    if not r.get("private"):
        auc_low = r.get("auc_low") if r.get("auc_low") is not None else r.get("auc")
        tpr = _with_interval(r, "tpr_at_0.1pct_fpr", ".2%")
        if auc_low is not None and auc_low > 0.5:
            return Verdict(model, "no promise", (
                f"{label} is not private, and it leaks: {attack} AUC {_with_interval(r, 'auc', '.3f')}, "
                f"TPR@0.1% FPR {tpr} (a coin flip finds 0.1%), measured ε ≥ {_fmt(lb, '.2f', '?')}. "
                "No promise to check: this is what the private recipes protect against."))
        return Verdict(model, "no promise", (
            f"{label} is not private; this audit measured no leakage (AUC {_with_interval(r, 'auc', '.3f')}, "
            f"TPR@0.1% FPR {tpr}), and there is no promise to check."))
    if lb is None or claimed is None:
        return Verdict(model, "unchecked",
                       f"{label}: the measured or the claimed ε is missing, so the promise cannot be checked.")
    if lb > claimed:
        return Verdict(model, "exceeds", (
            f"{label}: measured ε ≥ {lb:.2f} ({attack}) vs claimed ε = {claimed:g}: exceeds the claim! Members and "
            "non-members come from one distribution, so this is leakage, not split shift: a bug to find (in the "
            "privacy accounting, the clipping, the sampling or rows used outside DP-SGD)."))
    return Verdict(model, "consistent", (
        f"{label}: measured ε ≥ {lb:.2f} ({attack}) vs claimed ε = {claimed:g}: consistent "
        f"(AUC {_with_interval(r, 'auc', '.3f')})"))


def twin_leakage_points(rows: Iterable[dict], attack: str, metric: str = "auc") -> dict:
    """The data of the leakage-against-ε figure for one attack and one :data:`TWIN_METRICS` column.

    Returns:
        ``{"methods": {method: [point, ...]}, "reference": [point, ...]}``: the private models' points per
        method (methods by name), ordered by claimed ε (rows without a claimed ε or a value are left out),
        and the non-private models' (references, with ``epsilon`` None). A point is ``{"model", "epsilon",
        "value", "low", "high"}`` (interval bounds None where the file has none).
    """
    methods: dict[str, list[dict]] = {}
    reference = []
    for r in rows:
        if r["attack"] != attack or r.get(metric) is None:
            continue
        point = {"model": r["model"], "epsilon": r.get("claimed_epsilon"), "value": r[metric],
                 "low": r.get(f"{metric}_low"), "high": r.get(f"{metric}_high")}
        if not r.get("private"):
            reference.append({**point, "epsilon": None})
        elif point["epsilon"] is not None:
            methods.setdefault(r.get("method") or "unknown", []).append(point)
    return {"methods": {m: sorted(methods[m], key=lambda q: q["epsilon"]) for m in sorted(methods)},
            "reference": reference}


def twin_recipe_notes(rows: Iterable[dict]) -> list[str]:
    """``"dp_x: twins trained with epochs=3"`` for each model whose twins changed the shipped recipe
    (``twin_overrides``, a JSON object; empty or unreadable ones are no change, and so are options that do
    not change what is trained, :data:`~fer_core.training.config.FREE_OPTIONS` such as ``threads``), one per
    model."""
    notes = {}
    for r in rows:
        try:
            changes = json.loads(r.get("twin_overrides") or "{}")
        except ValueError:
            continue
        if isinstance(changes, dict):
            changes = {k: v for k, v in changes.items() if k not in FREE_OPTIONS}
        if isinstance(changes, dict) and changes and r["model"] not in notes:
            notes[r["model"]] = f"`{r['model']}`: twins trained with " + ", ".join(
                f"{k}={v}" for k, v in sorted(changes.items()))
    return list(notes.values())
