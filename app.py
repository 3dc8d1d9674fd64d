"""Streamlit entry point: ``streamlit run app.py``.

Pages lay out widgets and call ``fer_core``; the model chosen in the sidebar is shared through
``st.session_state["checkpoint"]``.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Private FER", page_icon=":performing_arts:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/photo.py", title="Photo", icon=":material/photo_camera:"),
    st.Page("pages/video.py", title="Video", icon=":material/movie:"),
    st.Page("pages/webcam.py", title="Webcam", icon=":material/videocam:", url_path="webcam"),
    st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
    st.Page("pages/explorer.py", title="Dataset explorer", icon=":material/dataset:", url_path="dataset-explorer"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/privacy.py", title="Privacy trade-off", icon=":material/shield:"),
    st.Page("pages/audit.py", title="Privacy audit", icon=":material/policy:"),
    st.Page("pages/benchmarks.py", title="Benchmarks", icon=":material/speed:", url_path="benchmarks"),
]
nav = st.navigation(pages)

from fer_core.app.support import entry_point, model_picker  # noqa: E402  (after set_page_config)

model_picker()
with entry_point():
    nav.run()
