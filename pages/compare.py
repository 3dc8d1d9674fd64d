"""Compare: two models side by side, on a photo and on FER2013's PrivateTest split."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import confusion_matrix_figure, paired_probabilities_figure, recall_comparison_figure
from fer_core.app.support import (
    available_checkpoints,
    baseline_card,
    cached_checkpoint,
    cached_detector,
    checkpoint_label,
    default_pair,
    picker_order,
    split_comparison,
    through_app,
)
from fer_core.data.datasets import DatasetError
from fer_core.evaluation.compare import compare_photo_annotated, photo_table
from fer_core.inference.pipeline import SAMPLE_PHOTO
from fer_core.results.tables import public_data_text
from fer_core.results.views import recall_comparison, split_faces

through_app()  # a page URL opened before app.py ran: app.py runs it

st.title("Compare")
st.caption("Two models on the same faces: what does privacy cost, and where do the models disagree?")

cards = available_checkpoints()
if not cards:
    st.warning("No model is shipped in `checkpoints/`.")
    st.stop()
paths = picker_order(cards)
default_a, default_b = default_pair(cards)
c1, c2 = st.columns(2)
path_a = c1.selectbox("Model A", paths, index=paths.index(default_a), key="compare_a",
                      format_func=lambda p: checkpoint_label(cards[p]))
path_b = c2.selectbox("Model B", paths, index=paths.index(default_b), key="compare_b",
                      format_func=lambda p: checkpoint_label(cards[p]))
for column, path in ((c1, path_a), (c2, path_b)):
    if public_data_text(cards[path]):
        column.caption(public_data_text(cards[path]))
name_a, name_b = f"A: {cards[path_a].name}", f"B: {cards[path_b].name}"
if path_a == path_b:
    st.info("Model A and model B are the same checkpoint; choose another one to compare.")
ckpt_a, ckpt_b = cached_checkpoint(path_a), cached_checkpoint(path_b)

st.header("On a photo")
st.caption("Photos are processed in memory only and never written to disk or logs.")
upload = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"],
                          help="Every face is detected once and classified by both models.")
if upload is None:
    st.caption(f"No photo uploaded: showing the sample photo ({SAMPLE_PHOTO.name}).")
    data, photo_name = SAMPLE_PHOTO.read_bytes(), SAMPLE_PHOTO.name
else:
    data, photo_name = upload.getvalue(), upload.name
res = compare_photo_annotated(data, ckpt_a, ckpt_b, cached_detector("yunet"), name=photo_name)
if res.error:
    st.error(f"This file could not be analysed: {res.error}")
elif not res.records:
    st.image(res.annotated_a, width="stretch")
    st.info("No face found in this image. Try a photo where faces are larger or turned to the camera.")
else:
    agree = sum(r["agree"] for r in res.records)
    st.markdown(f"**{len(res.records)} face(s)**; the two models agree on **{agree}**.")
    left, right = st.columns(2)
    left.image(res.annotated_a, caption=name_a, width="stretch")
    right.image(res.annotated_b, caption=name_b, width="stretch")
    st.dataframe(pd.DataFrame(photo_table(res.records, "A", "B")), hide_index=True, width="stretch")
    for r in res.records[:4]:
        with st.expander(f"Face {r['face']}: A says {r['label_a']}, B says {r['label_b']}"):
            st.plotly_chart(paired_probabilities_figure(r["probabilities_a"], r["probabilities_b"], name_a, name_b),
                            key=f"probs_{r['face']}")

st.header("On the test set")
n_test = split_faces(baseline_card(cards), "PrivateTest")
st.markdown(f"Both models on FER2013's **PrivateTest** split{f' ({n_test:,} faces)' if n_test else ''}; this takes "
            "10–20 s on a CPU the first time (a few minutes for a model on the 200-px and 112-px public backbones), "
            "then the result is cached.")
if st.button("Compare on PrivateTest", type="primary"):
    st.session_state["compare_split_pair"] = (path_a, path_b)
if st.session_state.get("compare_split_pair") == (path_a, path_b):
    try:
        cmp = split_comparison(path_a, path_b)
    except DatasetError as exc:
        st.warning(f"The test set is not available: {exc}. Put FER2013 as `fer2013.npz` in `../shared/data/` "
                   "beside the repository, or set the `FER_DATA` environment variable to its path.")
        st.stop()
    except ValueError as exc:  # e.g. a model over other classes than FER2013's seven
        st.error(f"These two models cannot be compared on the test set: {exc}")
        st.stop()
    a, b = cmp["a"], cmp["b"]
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("A accuracy", f"{100 * a['accuracy']:.2f}%")
    m2.metric("B accuracy", f"{100 * b['accuracy']:.2f}%", delta=f"{100 * (b['accuracy'] - a['accuracy']):+.2f} pt")
    m3.metric("A macro-F1", f"{100 * a['macro_f1']:.2f}%")
    m4.metric("B macro-F1", f"{100 * b['macro_f1']:.2f}%", delta=f"{100 * (b['macro_f1'] - a['macro_f1']):+.2f} pt")
    m5.metric("Agreement", f"{100 * cmp['agreement']:.1f}%",
              help=f"Share of the {cmp['n']} faces on which both models predict the same emotion.")
    st.caption(f"{cmp['n']} faces of {cmp['split']} from `{cmp['data']}`; the models disagree on "
               f"{cmp['n_disagree']} of them.")
    left, right = st.columns(2)
    left.plotly_chart(confusion_matrix_figure(a["confusion_matrix"], a["classes"], name_a), key="cm_a")
    right.plotly_chart(confusion_matrix_figure(b["confusion_matrix"], b["classes"], name_b), key="cm_b")
    st.subheader("Recall per emotion")
    st.plotly_chart(recall_comparison_figure(a["recall"], b["recall"], name_a, name_b), key="recall")
    st.dataframe(pd.DataFrame(recall_comparison(a["recall"], b["recall"])), width="stretch")
    st.subheader("Where they disagree")
    if not cmp["disagreements"]:
        st.success("The two models agree on every face.")
    else:
        st.caption(f"The {len(cmp['disagreements'])} disagreements where the models are most confident; "
                   "captions read true / A / B.")
        faces = list(cmp["faces"])
        captions = [f"{d['true']} / {d['label_a']} / {d['label_b']}" for d in cmp["disagreements"]]
        per_row = 8
        for i in range(0, len(faces), per_row):
            cols = st.columns(per_row)
            for col, face, cap in zip(cols, faces[i: i + per_row], captions[i: i + per_row], strict=False):
                col.image(face, caption=cap, width="stretch")
