"""Privacy trade-off: accuracy against epsilon from the sweep, who pays for privacy, and a budget planner."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import epsilon_history_figure, history_figure, recall_vs_epsilon_figure, tradeoff_figure
from fer_core.app.support import (
    available_checkpoints,
    baseline_card,
    cached_budget,
    explorer_dataset,
    private_cards,
    through_app,
)
from fer_core.privacy.accounting import ACCOUNTANTS, DELTA, PrivacyError
from fer_core.privacy.engine import METHOD_NOTES
from fer_core.results.files import reference_rows, sweep_path, sweep_rows
from fer_core.results.tables import (
    card_row,
    history_rows,
    privacy_details,
    public_pretrained_card,
    randomness_warning,
)
from fer_core.results.views import class_sizes, expected_accuracy_rows, privacy_cost_rows, training_faces

through_app()  # a page URL opened before app.py ran: app.py runs it

rows = sweep_rows()
references = reference_rows()
cards = available_checkpoints()
base = baseline_card(cards)
n_train = training_faces(base)

st.title("Privacy trade-off")
st.markdown(
    f"""
The private models are trained with **differential privacy** (DP-SGD). Their guarantee is a pair
**(ε, δ)**: for any single face in the training set, adding or removing it changes the probability of
anything the trained model does by at most a factor **e^ε** — except with probability **δ = {DELTA:g}**,
far below one in the {f"{n_train:,}" if n_train else "thousands of"} training faces. A smaller ε means a
stronger guarantee (ε = 1: at most 2.7×), and costs accuracy, because the training must add noise that
hides each face's contribution.
"""
)

methods = list(dict.fromkeys(r["method"] for r in rows))

st.header("Accuracy against ε")
if not rows:
    st.info(f"No privacy sweep results yet (looked for `{sweep_path()}`). Produce them with "
            "`python -m fer_core sweep`: it trains each private method at several ε and writes that CSV.")
else:
    base_acc = card_row(base)["PrivateTest accuracy"] if base is not None else None
    public = public_pretrained_card(cards.values())
    public_acc = public.metrics("PrivateTest").get("accuracy") if public is not None else None
    st.plotly_chart(tradeoff_figure(rows, baseline_accuracy=base_acc, references=references,
                                    public_pretrained_accuracy=public_acc), key="tradeoff")
    for m in methods:
        if m in METHOD_NOTES:
            st.markdown(f"- **{m}**: {METHOD_NOTES[m]}")
    st.dataframe(pd.DataFrame(rows).drop(columns=["command"], errors="ignore"), hide_index=True, width="stretch")

    st.subheader("What privacy costs each method")
    cost = privacy_cost_rows(rows, references, end_to_end=public_acc)
    if cost:
        st.markdown("Each method's **non-private reference** (dotted line) is the same model, trained on the same "
                    "rows with the same features and loop, without noise or clipping (learning rate chosen on "
                    "PublicTest): the gap to it is what differential privacy costs that method. The dashed line is "
                    "the FER2013-only baseline, a different model."
                    + (f" The dash-dot line is **{public.name}**, a non-private model with the same public "
                       "pretraining as the public-data methods but every layer fine-tuned on Training: the gap to "
                       "it is what privacy and a frozen backbone cost together." if public is not None else ""))
        st.dataframe(pd.DataFrame(cost), hide_index=True, width="stretch")
    else:
        st.info("No non-private references yet: `python -m fer_core sweep --reference` trains one per method "
                "and writes `checkpoints/results/reference.csv`.")

    st.header("Who pays for privacy")
    sizes = sorted(class_sizes(ds), key=lambda c: c["count"]) if (ds := explorer_dataset()[0]) else []
    smallest = (f"**{sizes[0]['emotion'].capitalize()}** is the smallest class ({sizes[0]['count']:,} training "
                f"faces, {sizes[0]['share']:.1%} of FER2013's Training split)" if sizes
                else "**Disgust** is the smallest class")
    largest = f"**{sizes[-1]['emotion']}**" if sizes else "**happy**"
    st.markdown("Privacy is usually not paid evenly: clipping and noise hide the patterns that few training faces "
                f"share first. {smallest} and **fear** the one most often confused with others (surprise, sad), so "
                f"they tend to lose recall first as ε shrinks, while {largest}, the largest and most distinctive "
                "class, keeps most of it. The chart shows each emotion's PrivateTest recall for the chosen method.")
    method = st.selectbox("Method", methods, key="recall_method")
    st.plotly_chart(recall_vs_epsilon_figure(rows, method), key="recall_eps")

st.header("Training curves of a private model")
dp_cards = private_cards(cards)
if not dp_cards:
    st.info("No differentially private checkpoint is shipped in `checkpoints/` yet.")
else:
    dp_path = st.selectbox("Private model", list(dp_cards), key="dp_model",
                           format_func=lambda p: dp_cards[p].get("name", p))
    card = dp_cards[dp_path]
    st.markdown(privacy_details(card))
    if randomness_warning(card):
        st.warning(randomness_warning(card))
    hist = history_rows(card)
    if hist:
        st.plotly_chart(history_figure(hist, "Accuracy per epoch"), key="dp_history")
        if any(h.get("epsilon") is not None for h in hist):
            st.plotly_chart(epsilon_history_figure(hist, "ε spent after each epoch"), key="dp_epsilon")
    else:
        st.caption("This model card has no training history.")

st.header("Budget planner")
st.markdown("How much privacy does a DP-SGD run spend? Batches are Poisson-sampled with rate q = batch / N, "
            "for epochs × ⌊N / batch⌋ steps.")
c1, c2, c3, c4, c5 = st.columns(5)
n_rows = c1.number_input("Private rows N", min_value=1, value=n_train or 10_000, step=1, key="plan_n")
batch = c2.number_input("Batch size", min_value=1, value=1024, step=1, key="plan_batch")
epochs = c3.number_input("Epochs", min_value=1, value=20, step=1, key="plan_epochs")
delta = c4.number_input("δ", min_value=1e-12, max_value=0.5, value=DELTA, step=1e-6, format="%.1e", key="plan_delta")
accountant = c5.selectbox("Accountant", list(ACCOUNTANTS), key="plan_accountant",
                          help="PRV (Gopi et al. 2021) is tighter; RDP (Mironov 2017) is the classic bound.")
mode = st.radio("Compute", ["noise multiplier → ε", "target ε → noise multiplier"], horizontal=True, key="plan_mode")
if mode.startswith("noise"):
    sigma = st.number_input("Noise multiplier σ", min_value=0.01, value=1.0, step=0.1, key="plan_sigma")
    kwargs = {"noise_multiplier": float(sigma)}
else:
    target = st.number_input("Target ε", min_value=0.01, value=4.0, step=0.5, key="plan_target")
    kwargs = {"target_epsilon": float(target)}
try:
    plan = cached_budget(int(n_rows), int(batch), int(epochs), float(delta), accountant, **kwargs)
except PrivacyError as exc:
    st.error(str(exc))
else:
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("ε", f"{plan['epsilon']:.2f}")
    m2.metric("Noise multiplier σ", f"{plan['noise_multiplier']:.3f}")
    m3.metric("Steps", f"{plan['steps']:,}")
    m4.metric("Sample rate q", f"{plan['sample_rate']:.4f}")
    if rows:
        st.dataframe(pd.DataFrame(expected_accuracy_rows(rows, methods, plan["epsilon"])), hide_index=True)
        st.caption("Interpolated in log ε between the sweep's runs of each method, with that method's own recipe "
                   "(batch size, epochs); a different recipe at the same ε can do better or worse.")
    else:
        st.caption("Run the sweep to see the accuracy to expect at this ε.")
