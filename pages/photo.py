"""Photo: upload photos (or use the sample), see every face's emotion; nothing is stored."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import probabilities_figure
from fer_core.app.support import cached_detector, selected_checkpoint, through_app
from fer_core.data.images import encode_png
from fer_core.inference.pipeline import SAMPLE_PHOTO, analyze_photo, records_to_csv, records_to_json, records_to_rows

through_app()  # a page URL opened before app.py ran: app.py runs it

st.title("Photo")
st.caption("Photos are analysed in memory and never written to disk or logs.")

checkpoint = selected_checkpoint()
if checkpoint is None:
    st.warning("No model is shipped in `checkpoints/`.")
    st.stop()

files = st.file_uploader(
    "Photos", type=["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"], accept_multiple_files=True,
    help="One or several images; every face in each is analysed.",
)
c1, c2, c3 = st.columns(3)
use_sample = c1.toggle("Use the sample photo", value=not files)
blur = c2.toggle("Blur faces", help="Anonymise the faces in the displayed and downloaded image.")
detector_kind = c3.selectbox("Face detector", ["yunet", "haar"], help="YuNet finds turned heads; Haar is the classic.")

inputs = [(f.name, f.getvalue()) for f in files or []]
if use_sample and not inputs:
    inputs = [(SAMPLE_PHOTO.name, SAMPLE_PHOTO.read_bytes())]
if not inputs:
    st.info("Upload a photo, or switch on the sample.")
    st.stop()

detector = cached_detector(detector_kind)
results = [analyze_photo(data, name, checkpoint, detector, blur=blur) for name, data in inputs]

for res in results:
    st.subheader(res.name)
    if res.error:
        st.error(f"This file could not be analysed: {res.error}")
        continue
    if not res.records:
        st.image(res.annotated, width="stretch")
        st.info("No face found in this image. Try a photo where faces are larger or turned to the camera.")
        continue
    if res.negative_faces:
        faces = ", ".join(f"face {i} ({res.records[i - 1]['label']})" for i in res.negative_faces)
        st.error(f"Negative emotion detected: {faces}", icon=":material/sentiment_dissatisfied:")
    else:
        st.success(f"{len(res.records)} face(s), no negative emotion detected.")
    left, right = st.columns([3, 2])
    left.image(res.annotated, width="stretch")
    right.plotly_chart(probabilities_figure(res.records), width="stretch")
    right.dataframe(pd.DataFrame(records_to_rows([res]))[["face", "label", "confidence", "negative"]],
                    hide_index=True)
    if res.annotated is not None:
        st.download_button("Download annotated image", encode_png(res.annotated),
                           file_name=f"annotated_{res.name.rsplit('.', 1)[0]}.png", mime="image/png",
                           key=f"img_{res.name}")

ok = [r for r in results if r.records]
if ok:
    d1, d2 = st.columns(2)
    d1.download_button("Results as CSV", records_to_csv(ok), file_name="emotions.csv", mime="text/csv")
    d2.download_button("Results as JSON", records_to_json(ok), file_name="emotions.json", mime="application/json")
