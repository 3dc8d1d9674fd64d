"""Privacy audit: membership-inference attacks on each shipped model's recipe, measured on audit twins (members
and non-members from one distribution), and the epsilon they prove it leaks; the older shifted audit below."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import audit_roc_figure, twin_leakage_figure
from fer_core.app.support import through_app
from fer_core.audit.verdict import (
    ATTACK_NAMES,
    TWIN_METRICS,
    attack_order,
    audit_sample_text,
    audit_table_rows,
    audit_verdict,
    roc_curves,
    shifted_audit_note,
    twin_leakage_points,
    twin_recipe_notes,
    twin_table_rows,
    twin_verdicts,
    usable_audit_rows,
    usable_twin_rows,
)
from fer_core.results.files import audit_path, audit_results, twin_audit_path, twin_audit_results

through_app()  # a page URL opened before app.py ran: app.py runs it

#: How each verdict kind is shown.
SHOW = {"exceeds": st.error, "consistent": st.success, "unchecked": st.warning, "shifted": st.warning,
        "no promise": st.markdown}
ATTACK_HELP = ("LiRA online (Carlini et al. 2022) compares each face's confidence under the target twin with the "
               "other twins that did and did not train on it; the loss threshold (Yeom et al. 2018) only looks at "
               "how well the target fits it.")



def show_roc(rocs: dict, shown: list[dict], attack: str, title: str, key: str, file: str) -> None:
    """The log-log ROC of ``attack`` for the models of ``shown``, or a caption naming the missing ``file``."""
    curves = roc_curves(rocs, shown, attack)
    if not curves:
        st.caption(f"No ROC points for this attack (`{file}` beside the CSV is missing or lacks them).")
        return
    st.plotly_chart(audit_roc_figure(curves, attack, title), key=key)
    st.caption("Both axes are logarithmic, so the low-FPR corner, where an attacker is confident, is visible. "
               "A curve on the dashed diagonal is a coin flip; the higher above it, the more the model leaks.")


st.title("Privacy audit")
st.markdown(
    """
Privacy is measured here, not just claimed. **What was audited: the recipe of each shipped model.** A
shipped model was trained on all of its training rows, so its only non-members come from the test splits,
and an attack could then tell the *splits* apart rather than the faces the model learned. So each recipe is
audited through **audit twins**: K models trained exactly like the shipped one, each on a seeded random half
of that model's training rows. A twin's members and non-members are the two halves of one split, the same
distribution by construction; every twin is attacked in turn, the other twins serving as the attack's shadow
models. A **blind baseline**, a classifier that never sees any model and only looks at the images, tries to
tell the halves apart: it is at chance (AUC ≈ 0.5), so **any AUC above 0.5 here is leakage, not split shift**.

How to read the numbers: a **membership-inference attack** is given a face and the model, and guesses
whether that face was in the training set. Its **AUC** says how well it ranks members above non-members:
**0.5 is a coin flip** (the model gives nothing away about any one person), higher values mean the model
remembers its training faces. An average hides the worst case, so what matters most is the **true positive
rate at a very low false positive rate (0.1%)**: can the attacker be *sure* about a few people? Finally,
the attack's best threshold gives an **empirical ε lower bound**: an ε the recipe provably leaks *at least*
(with 95% confidence), to set beside the **claimed ε** of each differentially private model. If the
measured ε is at most the claimed one, the evidence is consistent with the promise (an audit can refute a
promise, never prove it); the non-private baseline makes no promise to check, its numbers show what the
private models protect against.
"""
)

twin_raw, twin_rocs = twin_audit_results(twin_audit_path())
twin_rows = usable_twin_rows(twin_raw)
st.subheader("Leakage of each recipe, measured on its twins")
if not twin_rows:
    st.info(f"No twin audit yet (looked for `{twin_audit_path()}`). Produce it, one model at a time, with "
            "`python -m fer_core audit --twins 16 --checkpoint checkpoints/<model>`: it trains 16 twins of the "
            "model's recipe (cached under `runs/twins/`), attacks them and writes that CSV and the ROC points "
            "beside it.")
else:
    if len(twin_rows) < len(twin_raw):
        st.warning(f"Skipped {len(twin_raw) - len(twin_rows)} malformed row(s) of `{twin_audit_path()}` "
                   "(no model, attack or AUC).")
    st.dataframe(pd.DataFrame(twin_table_rows(twin_rows)), hide_index=True, width="stretch", key="twin_table")
    st.caption("One row per model and attack; intervals are 95% (Hanley-McNeil for the attack AUCs, bootstrap "
               "for the blind AUC, Clopper-Pearson for the TPRs). The blind AUC is the model-free baseline on the "
               "same halves: near 0.5 means the attack's members and non-members differ only in whether the twin "
               "trained on them.")
    for note in twin_recipe_notes(twin_rows):
        st.caption(f"{note} (changed from the shipped recipe).")

    left, right = st.columns(2)
    twin_attack = left.selectbox("Attack", attack_order(twin_rows), index=0, key="twin_attack",
                                 format_func=lambda a: ATTACK_NAMES.get(a, a), help=ATTACK_HELP)
    metric = right.radio("Leakage measure", list(TWIN_METRICS), index=0, key="twin_metric", horizontal=True,
                         format_func=lambda m: TWIN_METRICS[m][0])
    label, chance = TWIN_METRICS[metric]
    name = ATTACK_NAMES.get(twin_attack, twin_attack)
    st.plotly_chart(twin_leakage_figure(twin_leakage_points(twin_rows, twin_attack, metric), label, chance,
                                        f"{name}: {label} against the claimed ε", percent=metric != "auc"),
                    key="twin_leakage")
    st.caption(f"Each point is one shipped model's recipe (error bars: 95% intervals); a dotted line is a non-private "
               f"model, the dashed gray line a coin flip ({label} = {chance:g}).")

    shown = [r for r in twin_rows if r["attack"] == twin_attack]
    show_roc(twin_rocs, shown, twin_attack, f"ROC of the {name} attack on the twins", "twin_roc",
             "audit_twins_roc.json")

    st.subheader("Measured against the promise")
    for verdict in twin_verdicts(twin_rows):
        SHOW[verdict.kind](verdict.text)

with st.expander("Older audit: Training members vs test-split non-members (shifted; measures the split as much as "
                 "the model)"):
    st.markdown("This audit attacks the shipped models themselves, with members drawn from Training and "
                "non-members from the test splits. Those sets differ in distribution, so an AUC above 0.5 can be "
                "the attack telling the splits apart rather than the faces a model learned; the twin audit above "
                "is the measurement of leakage.")
    raw_rows, rocs = audit_results()
    rows = usable_audit_rows(raw_rows)
    if not raw_rows:
        st.info(f"No shifted audit results (looked for `{audit_path()}`). Produce them with "
                "`python -m fer_core audit`: it attacks every checkpoint and writes that CSV and the ROC points "
                "beside it.")
    elif len(rows) < len(raw_rows):
        st.warning(f"Skipped {len(raw_rows) - len(rows)} malformed row(s) of `{audit_path()}` "
                   "(no model, attack or AUC).")
    if rows:
        attack = st.selectbox("Attack", attack_order(rows), index=0, key="audit_attack",
                              format_func=lambda a: ATTACK_NAMES.get(a, a),
                              help="RMIA (Zarifzadeh et al. 2024) compares the model with reference models trained "
                                   "without the face; the loss threshold (Yeom et al. 2018) only looks at how well "
                                   "the model fits it.")
        shown = [r for r in rows if r["attack"] == attack]
        show_roc(rocs, shown, attack, f"ROC of the {ATTACK_NAMES.get(attack, attack)} attack", "audit_roc",
                 "audit_roc.json")
        st.dataframe(pd.DataFrame(audit_table_rows(shown)), hide_index=True, width="stretch", key="audit_table",
                     column_config={
                         "AUC": st.column_config.NumberColumn(format="%.3f"),
                         "TPR@1% FPR": st.column_config.NumberColumn(format="%.4f"),
                         "TPR@0.1% FPR": st.column_config.NumberColumn(format="%.4f"),
                         "balanced accuracy": st.column_config.NumberColumn(format="%.3f"),
                     })
        note = shifted_audit_note(shown)
        if note:
            (st.warning if any(r.get("blind_shifted") for r in shown) else st.caption)(note)
        sample = audit_sample_text(shown, attack)
        if sample is not None:
            st.caption(f"{sample}. The ε bound uses a threshold chosen on one half of them and measured on the "
                       "other half.")
        st.markdown("**Measured against the promise (shifted audit)**")
        for verdict in map(audit_verdict, shown):
            SHOW[verdict.kind](verdict.text)
