"""Video: upload a short clip; every n-th frame is analysed in memory, with a per-face timeline."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import timeline_figure
from fer_core.app.support import cached_detector, selected_checkpoint, through_app
from fer_core.inference.video import MAX_BYTES, MAX_DURATION_S, VideoError, analyze_video

through_app()  # a page URL opened before app.py ran: app.py runs it

st.title("Video")
st.caption(
    f"Up to {MAX_BYTES // 2**20} MB and {MAX_DURATION_S:.0f} s. The video is decoded in memory; "
    "no frame is written to disk."
)
checkpoint = selected_checkpoint()
if checkpoint is None:
    st.warning("No model is shipped in `checkpoints/`.")
    st.stop()

file = st.file_uploader("Video", type=["mp4", "mov", "avi", "webm", "mkv"])
c1, c2 = st.columns(2)
every_n = c1.slider("Analyse every n-th frame", 1, 30, 5, help="Higher is faster; boxes are held in between.")
blur = c2.toggle("Blur faces in the output video")
if file is None:
    st.info("Upload a short video to see each face's emotion over time.")
    st.stop()

bar = st.progress(0.0, text="Analysing…")
try:
    result = analyze_video(file.getvalue(), checkpoint, cached_detector("yunet"), every_n=every_n, blur=blur,
                           progress=lambda share: bar.progress(share, text=f"Analysing… {100 * share:.0f}%"))
except VideoError as exc:
    bar.empty()
    st.error(f"This video could not be analysed: {exc}")
    st.stop()
bar.empty()

st.write(f"{result.frames} frames at {result.fps:.1f} fps ({result.duration_s:.1f} s), "
         f"{result.frames_analyzed} analysed.")
if result.video:
    st.video(result.video, format="video/mp4")
if not result.timeline:
    st.info("No face found in the analysed frames.")
    st.stop()

summary = result.summary()
tracks = summary["tracks"]
track = st.selectbox("Face track", list(tracks), index=list(tracks).index(summary["dominant_track"]),
                     format_func=lambda t: f"face #{t} ({tracks[t]['frames']} analysed frames)"
                     + (" — dominant" if t == summary["dominant_track"] else ""))
info = tracks[track]
m1, m2 = st.columns(2)
m1.metric("Most frequent emotion", next(iter(info["share"])))
m2.metric("Time in a negative emotion", f"{100 * info['negative_share']:.0f}%")
if info["negative_share"] > 0:
    st.error(f"Face #{track} shows a negative emotion in {100 * info['negative_share']:.0f}% of the analysed frames.")
st.plotly_chart(timeline_figure(result.timeline, checkpoint.classes, track=track), width="stretch")
st.dataframe(pd.DataFrame({"emotion": list(info["share"]), "share of time": list(info["share"].values())}),
             hide_index=True)
st.download_button("Timeline as CSV", pd.DataFrame(result.timeline).to_csv(index=False), file_name="timeline.csv",
                   mime="text/csv")
