"""Privacy audit: membership-inference attacks on every model, and the epsilon they prove each one leaks."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import audit_roc_figure
from fer_core.audit.verdict import (
    ATTACK_NAMES,
    attack_order,
    audit_sample_text,
    audit_table_rows,
    audit_verdict,
    roc_curves,
    usable_audit_rows,
)
from fer_core.results.files import audit_path, audit_results

#: How each verdict kind is shown.
SHOW = {"exceeds": st.error, "consistent": st.success, "unchecked": st.warning, "no promise": st.markdown}

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

raw_rows, rocs = audit_results()
if not raw_rows:
    st.info(f"No audit results yet (looked for `{audit_path()}`). Produce them with `python -m fer_core audit`: "
            "it attacks every checkpoint and writes that CSV and the ROC points beside it.")
    st.stop()

rows = usable_audit_rows(raw_rows)
if len(rows) < len(raw_rows):
    st.warning(f"Skipped {len(raw_rows) - len(rows)} malformed row(s) of `{audit_path()}` "
               "(no model, attack or AUC).")
if not rows:
    st.stop()

attacks = attack_order(rows)
attack = st.selectbox("Attack", attacks, index=0, key="audit_attack",
                      format_func=lambda a: ATTACK_NAMES.get(a, a),
                      help="RMIA (Zarifzadeh et al. 2024) compares the model with reference models trained without "
                           "the face; the loss threshold (Yeom et al. 2018) only looks at how well the model fits it.")
shown = [r for r in rows if r["attack"] == attack]

curves = roc_curves(rocs, shown, attack)
if curves:
    st.plotly_chart(audit_roc_figure(curves, attack, f"ROC of the {ATTACK_NAMES.get(attack, attack)} attack"),
                    key="audit_roc")
    st.caption("Both axes are logarithmic, so the low-FPR corner, where an attacker is confident, is visible. "
                "A curve on the dashed diagonal is a coin flip; the higher above it, the more the model leaks.")
else:
    st.caption("No ROC points for this attack (`audit_roc.json` beside the CSV is missing or lacks them).")

table = pd.DataFrame(audit_table_rows(shown))
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "AUC": st.column_config.NumberColumn(format="%.3f"),
    "TPR@1% FPR": st.column_config.NumberColumn(format="%.4f"),
    "TPR@0.1% FPR": st.column_config.NumberColumn(format="%.4f"),
    "balanced accuracy": st.column_config.NumberColumn(format="%.3f"),
})
sample = audit_sample_text(shown, attack)
if sample is not None:
    st.caption(f"{sample}. The ε bound uses a threshold chosen on one half of them and measured on the other half.")

st.subheader("Measured against the promise")
for verdict in map(audit_verdict, shown):
    SHOW[verdict.kind](verdict.text)
