"""Home: what the system does and how it protects privacy."""

import streamlit as st

from fer_core import EMOTIONS, NEGATIVE_EMOTIONS
from fer_core.app.support import available_checkpoints, checkpoint_label, through_app

through_app()  # a page URL opened before app.py ran: app.py runs it

st.title("Privacy-conscious facial emotion recognition")
st.markdown(
    f"""
This app recognises the emotion on each face — **{", ".join(EMOTIONS)}** — with models trained on
FER2013 (FER+ models add **contempt**, from FER+'s 10-annotator votes), and calls out the negative ones
(**{", ".join(sorted(NEGATIVE_EMOTIONS))}**).

**How privacy is protected**

- *Training privacy*: besides the baseline, models are trained with DP-SGD (Opacus); each DP model
  card carries its (ε, δ), accountant and settings, and a membership-inference audit measures what
  each model leaks.
- *Inference privacy*: a photo or frame you give the app is processed in memory and never written to
  disk or logs.
- *Honest accuracy*: trained on FER2013 `Training`, chosen on `PublicTest`, reported on `PrivateTest`
  once; the figures below are read from the model cards the training command wrote.
"""
)
cards = available_checkpoints()
st.subheader("Shipped models")
if cards:
    for card in cards.values():
        st.markdown(f"- {checkpoint_label(card)}")
else:
    st.info("No checkpoint is shipped yet: train one with `python -m fer_core train --export checkpoints/NAME`.")
