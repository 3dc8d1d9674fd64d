"""Models: every shipped checkpoint's model card, metrics and training curves."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import confusion_matrix_figure, history_figure
from fer_core.app.support import available_checkpoints, through_app
from fer_core.results.tables import (
    distillation_text,
    history_rows,
    public_data_text,
    randomness_warning,
    summary_rows,
)

through_app()  # a page URL opened before app.py ran: app.py runs it

st.title("Models")
cards = available_checkpoints()
if not cards:
    st.info("No checkpoint found in `checkpoints/`.")
    st.stop()

st.dataframe(pd.DataFrame(summary_rows(cards.values())), hide_index=True, width="stretch")

path = st.session_state.get("checkpoint") or next(iter(cards))
card = cards.get(path) or next(iter(cards.values()))
st.subheader(f"`{card.name}`")
if randomness_warning(card):
    st.warning(randomness_warning(card))
if distillation_text(card):
    st.info(distillation_text(card))
if public_data_text(card):
    st.info(public_data_text(card))
test = card.metrics("PrivateTest")
if test:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("PrivateTest accuracy", f"{100 * test['accuracy']:.2f}%")
    c2.metric("macro-F1", f"{100 * test['macro_f1']:.2f}%")
    c3.metric("dedup accuracy", f"{100 * test.get('accuracy_dedup', float('nan')):.2f}%")
    c4.metric("ECE", f"{100 * test['ece']:.2f}%")
    st.plotly_chart(
        confusion_matrix_figure(test["confusion_matrix"], test["classes"], "PrivateTest confusion matrix"),
        width="stretch",
    )
    st.dataframe(pd.DataFrame(test["per_class"]).T, width="stretch")
hist = history_rows(card)
if hist:
    st.plotly_chart(history_figure(hist, "Training curves"), width="stretch")
with st.expander("Full model card (JSON)"):
    st.json(card)
