"""Webcam: live emotions from the browser's camera; frames are analysed in memory and never stored."""

import time

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from fer_core.app.plots import timeline_figure
from fer_core.app.support import (
    cached_detector,
    selected_checkpoint,
    session_live_analyzer,
    session_live_timeline,
    through_app,
    webrtc_configuration,
)
from fer_core.inference.live import DETECT_EVERY, LIVE_DETECTOR_SIDE, compact_faces_text

through_app()  # a page URL opened before app.py ran: app.py runs it

st.title("Webcam")
st.caption(
    "Press START and allow the camera. Each frame is analysed in memory on the server as it arrives "
    "and then dropped: no frame is stored, and only labels and timings reach this page."
)
checkpoint = selected_checkpoint()
if checkpoint is None:
    st.warning("No model is shipped in `checkpoints/`.")
    st.stop()
try:
    rtc = webrtc_configuration()
except ValueError as exc:
    st.error(f"The STUN/TURN settings are not valid: {exc}")
    st.stop()

c1, c2 = st.columns(2)
blur = c1.toggle("Blur faces", help="Anonymise the faces in the returned video.")
detect_every = c2.slider("Detect faces every n-th frame", 1, 10, DETECT_EVERY,
                         help="In between, faces are followed by optical flow: higher is lighter on the CPU.")
analyzer = session_live_analyzer(checkpoint, cached_detector("yunet", LIVE_DETECTOR_SIDE), blur=blur,
                                 detect_every=detect_every)
timeline = session_live_timeline()

ctx = webrtc_streamer(
    key="webcam",
    mode=WebRtcMode.SENDRECV,
    rtc_configuration=rtc,
    media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
    video_frame_callback=analyzer.callback,
    async_processing=True,
)

readouts = st.container(key="live_readouts").empty()  # replaced on every update
chart = st.empty()


def show(with_chart: bool = True) -> None:
    """Fill the readouts (and the chart) from the timeline."""
    r = timeline.readouts()
    with readouts.container():
        m1, m2, m3 = st.columns(3)
        m1.metric("Frames per second", "–" if r["fps"] is None else f"{r['fps']:.1f}")
        m2.metric("Latency p50 / p95", "–" if r["latency_ms_p50"] is None
                  else f"{r['latency_ms_p50']:.0f} / {r['latency_ms_p95']:.0f} ms")
        m3.metric("Faces", len(r["faces"]))
        if timeline.error:
            st.error(f"The analysis failed on a frame: {timeline.error}")
        if r["negative"]:
            st.error("Negative emotion now: " + compact_faces_text(r["negative"]),
                     icon=":material/sentiment_dissatisfied:")
        elif r["faces"]:
            st.success("No negative emotion now.")
        st.markdown(f"**Faces now:** {compact_faces_text(r['faces']) or 'none'}")
    track = timeline.summary()["dominant_track"] if with_chart else None
    if track is not None:
        chart.plotly_chart(timeline_figure(timeline.rows(), checkpoint.classes, track=track,
                                           title=f"Face #{track}, last {timeline.window_s:.0f} s"),
                           width="stretch")


if not ctx.state.playing:
    analyzer.reset()  # the stream stopped: forget the faces and the last frame's grayscale copy
    if timeline.latest is None:  # in the readouts' place, so that no stale message stays below them
        readouts.info("Press START to analyse your camera. On a remote server, STUN/TURN may be needed "
                      "(see the README).")
    else:
        show()
    st.stop()

readouts.info("Waiting for frames from the camera…")
last_chart = 0.0
while ctx.state.playing:  # readouts ~4 times a second, the chart once a second
    if timeline.drain(analyzer.results, timeout=1.0):
        chart_due = time.monotonic() - last_chart >= 1.0
        show(with_chart=chart_due)
        if chart_due:
            last_chart = time.monotonic()
    time.sleep(0.25)
