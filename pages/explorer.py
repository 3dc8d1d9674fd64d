"""Dataset explorer: class balance, sample faces, FER2013 vs FER+ labels, duplicates and leakage, image statistics."""

import pandas as pd
import streamlit as st

from fer_core import EMOTIONS, FERPLUS_EMOTIONS
from fer_core.app.plots import agreement_figure, class_distribution_figure, histogram_figure
from fer_core.app.support import explorer_dataset, through_app
from fer_core.data.explore import agreement, class_distribution, duplicates, image_statistics, montage, sample_faces

through_app()  # a page URL opened before app.py ran: app.py runs it

st.title("Dataset explorer")
st.caption("The data decides the accuracy: see FER2013's balance, its noisy labels and its duplicates.")

path = st.text_input("Dataset file or folder", value="", placeholder="default: $FER_DATA or ../shared/data/fer2013.npz",
                     help="A FER2013 .npz (with FER+ votes), Kaggle's fer2013.csv or its image-folder copy.")
ds, problem = explorer_dataset(path.strip() or None)
if ds is None:
    st.info(problem)
    st.stop()

has_votes = ds.ferplus_votes is not None
c1, c2, c3 = st.columns(3)
c1.metric("faces", f"{len(ds):,}")
c2.metric("splits", ", ".join(ds.splits))
c3.metric("FER+ votes", "yes" if has_votes else "no")

st.header("Class distribution")
dist = class_distribution(ds)
tabs = st.tabs(["FER2013 labels", "FER+ labels"] if has_votes else ["FER2013 labels"])
for tab, name in zip(tabs, ["FER2013", "FER+"], strict=False):
    with tab:
        st.plotly_chart(class_distribution_figure(dist, name), width="stretch", key=f"dist_{name}")
        wide = dist[dist["label_set"] == name].pivot(index="emotion", columns="split", values="count")
        st.dataframe(wide.reindex(EMOTIONS if name == "FER2013" else FERPLUS_EMOTIONS), width="stretch")

st.header("Sample faces")
c1, c2 = st.columns(2)
split = c1.selectbox("Split", ["all", *ds.splits])
seed = c2.number_input("Sample seed", min_value=0, value=0, step=1, help="Draw another sample.")
samples = sample_faces(ds, per_class=10, split=None if split == "all" else split, seed=int(seed))
for emotion, faces in samples.items():
    st.image(montage(faces, columns=10), caption=f"{emotion} ({len(faces)} shown)", clamp=True)

st.header("FER2013 vs FER+ labels")
if has_votes:
    ag = agreement(ds)
    st.markdown(
        f"FER+ asked 10 annotators about every image. On the **{ag['n']:,}** faces that keep a FER+ label, the two "
        f"label sets agree on **{100 * ag['overall']:.1f}%**. Share of each FER2013 class that FER+ labels the same:"
    )
    st.dataframe(pd.DataFrame([{"FER2013 class": e, "same FER+ label": v} for e, v in ag["agreement"].items()]),
                 hide_index=True, column_config={"same FER+ label": st.column_config.ProgressColumn(
                     format="percent", min_value=0.0, max_value=1.0)})
    st.plotly_chart(agreement_figure(ag["row_share"], ag["matrix"], EMOTIONS, FERPLUS_EMOTIONS),
                    width="stretch")
else:
    st.info("This file has no FER+ votes (`ferplus_votes`); `../shared/data/fer2013.npz` has them.")

st.header("Duplicates and train/test leakage")
dup = duplicates(ds)
c1, c2, c3, c4 = st.columns(4)
c1.metric("duplicate groups", f"{dup['groups']:,}", help=f"{dup['rows']:,} rows are in a group of identical images")
c2.metric("groups across Training and a test split", f"{dup['leaking_groups']:,}")
c3.metric("test rows also in Training", f"{dup['leaking_test_rows']:,}",
          help=", ".join(f"{k}: {v}" for k, v in dup["by_split"].items()) or None)
c4.metric("groups with conflicting labels", f"{dup['conflicting_groups']:,}")
st.caption(f"{dup['blank_rows']} images are a single grey level (no face). The models' cards report PrivateTest "
           "accuracy with the leaking rows removed beside the official figure.")
for ex in dup["examples"]:
    st.image([ds.images[r] for r in ex["rows"][:12]], width=72, clamp=True,
             caption=[f"{s} · {lab}" for s, lab in zip(ex["splits"][:12], ex["labels"][:12], strict=True)])

st.header("Image statistics")
stats = image_statistics(ds)
c1, c2 = st.columns(2)
c1.plotly_chart(histogram_figure(stats, "brightness", title="Brightness (mean grey level)"), width="stretch")
c2.plotly_chart(histogram_figure(stats, "contrast", title="Contrast (grey-level standard deviation)"),
                width="stretch")
st.dataframe(stats.groupby("emotion")[["brightness", "contrast"]].mean().reindex(EMOTIONS).round(1),
             width="stretch")
