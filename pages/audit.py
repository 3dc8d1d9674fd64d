"""Privacy audit: membership-inference attacks on every model, and the epsilon they prove each one leaks."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import audit_roc_figure
from fer_core.app.support import audit_path, audit_results

ATTACK_NAMES = {"rmia": "RMIA (reference models)", "loss": "Loss threshold"}

st.title("Privacy audit")
st.markdown(
    """
Privacy is measured here, not just claimed. A **membership-inference attack** is given a face and the
model, and guesses whether that face was in the training set. Its **AUC** says how well it ranks
members above non-members: **0.5 is a coin flip** (the model gives nothing away about any one
person), higher values mean the model remembers its training faces. An average hides the worst
case, so what matters most is the **true positive rate at a very low false positive rate (0.1%)**:
can the attacker be *sure* about a few people? Finally, the attack's best threshold gives an
**empirical ε lower bound**: an ε the model provably leaks *at least* (with 95% confidence), to set
beside the **claimed ε** of each differentially private model. If the measured ε is at most the
claimed one, the evidence is consistent with the promise (an audit can refute a promise, never prove
it); the non-private baseline makes no promise to check, its numbers show what the private models
protect against.
"""
)


def _valid(r: dict) -> bool:
    return bool(r.get("model")) and bool(r.get("attack")) and r.get("auc") is not None


raw_rows, rocs = audit_results()
if not raw_rows:
    st.info(f"No audit results yet (looked for `{audit_path()}`). Produce them with `python -m fer_core audit`: "
            "it attacks every checkpoint and writes that CSV and the ROC points beside it.")
    st.stop()

rows = [r for r in raw_rows if _valid(r)]
if len(rows) < len(raw_rows):
    st.warning(f"Skipped {len(raw_rows) - len(rows)} malformed row(s) of `{audit_path()}` "
               "(no model, attack or AUC).")
if not rows:
    st.stop()

attacks = sorted({r["attack"] for r in rows}, key=lambda a: (a != "rmia", a != "loss", a))
attack = st.selectbox("Attack", attacks, index=0, key="audit_attack",
                      format_func=lambda a: ATTACK_NAMES.get(a, a),
                      help="RMIA (Zarifzadeh et al. 2024) compares the model with reference models trained without "
                           "the face; the loss threshold (Yeom et al. 2018) only looks at how well the model fits it.")
shown = [r for r in rows if r["attack"] == attack]
models = list(dict.fromkeys(r["model"] for r in shown))

curves = {m: rocs[m] for m in models if m in rocs and attack in rocs[m]}
if curves:
    st.plotly_chart(audit_roc_figure(curves, attack, f"ROC of the {ATTACK_NAMES.get(attack, attack)} attack"),
                    key="audit_roc")
    st.caption("Both axes are logarithmic, so the low-FPR corner, where an attacker is confident, is visible. "
                "A curve on the dashed diagonal is a coin flip; the higher above it, the more the model leaks.")
else:
    st.caption("No ROC points for this attack (`audit_roc.json` beside the CSV is missing or lacks them).")


def _fmt(v, spec: str, none: str = "—") -> str:
    return none if v is None else format(v, spec)


table = pd.DataFrame([{
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
} for r in shown])
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "AUC": st.column_config.NumberColumn(format="%.3f"),
    "TPR@1% FPR": st.column_config.NumberColumn(format="%.4f"),
    "TPR@0.1% FPR": st.column_config.NumberColumn(format="%.4f"),
    "balanced accuracy": st.column_config.NumberColumn(format="%.3f"),
})
n = next((r for r in shown if r.get("n_members")), None)
if n is not None:
    refs = f", {n['references']:.0f} reference models" if attack == "rmia" and n.get("references") else ""
    st.caption(f"{n['n_members']:.0f} members and {_fmt(n.get('n_nonmembers'), '.0f')} non-members per model{refs}. "
               "The ε bound uses a threshold chosen on one half of them and measured on the other half.")

st.subheader("Measured against the promise")
for r in shown:
    label = f"**{r['model']}**"
    lb, claimed = r["epsilon_lower_bound"], r["claimed_epsilon"]
    if not r["private"]:
        st.markdown(f"{label} is not private: measured ε ≥ {_fmt(lb, '.2f', '?')}, with no promise to check.")
    elif lb is None or claimed is None:
        st.warning(f"{label}: the measured or the claimed ε is missing, so the promise cannot be checked.")
    elif lb > claimed:
        st.error(f"{label}: measured ε ≥ {lb:.2f} vs claimed ε = {claimed:g}: exceeds the claim! "
                 "The training leaks more than its privacy guarantee allows (or the guarantee was mis-accounted).")
    else:
        st.success(f"{label}: measured ε ≥ {lb:.2f} vs claimed ε = {claimed:g}: consistent")
