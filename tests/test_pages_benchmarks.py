"""The Benchmarks page, driven headless with streamlit.testing (AppTest), on the committed result files.

The table is checked against the model cards, ``audit.csv``, ``speed.csv`` and ``peers.csv``; the live benchmark runs
on a tiny time budget and its figures must appear beside the committed ones.
"""

import json

import pandas as pd
import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

from fer_core.app.support import available_checkpoints
from fer_core.models.checkpoint import DEFAULT_CHECKPOINT
from fer_core.results.files import (
    PEERS_ENV,
    PEERS_RESULTS,
    SPEED_RESULTS,
    audit_results,
    read_peers,
    read_speed,
    read_twin_audit,
    write_peers,
)
from fer_core.results.speed import describe_machine, machine_info
from fer_core.results.tables import arch_label

APP = str(REPO / "app.py")
PAGE = "pages/benchmarks.py"


@pytest.fixture
def app():
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def same(shown, expected) -> bool:
    """A table cell equals the file's figure, or is empty where the file has none."""
    return pd.isna(shown) if expected is None else shown == pytest.approx(expected)


def charts(app) -> dict:
    return {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
            for c in app.get("plotly_chart")}


def test_table_is_read_from_the_committed_files(app):
    assert app.title[0].value == "Benchmarks"
    cards = {c["name"]: c for c in available_checkpoints().values()}
    table = app.dataframe[0].value.set_index("model")
    assert set(table.index) == set(cards)
    audit = {(r["model"], r["attack"]): r["auc"] for r in audit_results()[0]}
    twins = {(r["model"], r["attack"]): r["auc"] for r in read_twin_audit()}
    speed = {r["model"]: r for r in read_speed(SPEED_RESULTS)}
    peers = {r["model"]: r for r in read_peers(PEERS_RESULTS) if not r["peer"]}
    for name, c in cards.items():
        row, m = table.loc[name], c["metrics"]["PrivateTest"]
        assert row["PrivateTest accuracy"] == pytest.approx(m["accuracy"])
        assert row["PrivateTest macro-F1"] == pytest.approx(m["macro_f1"])
        assert row["PrivateTest accuracy (dedup)"] == pytest.approx(m["accuracy_dedup"])
        assert row["negative-vs-other F1"] == pytest.approx(m["negative_vs_other"]["f1"])
        assert row["ECE"] == pytest.approx(m["ece"])
        assert row["parameters"] == c["parameters"] and row["MACs"] == c["macs"] and row["arch"] == arch_label(c)
        assert row["label set"].startswith(c.get("label_set", "fer2013"))
        assert bool(row["private"]) == c["privacy"]["private"]
        if c["privacy"]["private"]:
            assert row["ε"] == pytest.approx(c["privacy"]["epsilon"])
            assert f"ε = {c['privacy']['epsilon']:g}" in row["privacy"]
        else:
            assert row["privacy"] == "not private"
        assert same(row["audit AUC (RMIA)"], audit.get((name, "rmia")))
        assert same(row["twin audit AUC (LiRA)"], twins.get((name, "lira")))
        assert same(row["faces/s batch 1"], speed.get(name, {}).get("faces_per_s_batch1"))
        assert same(row["photo ms"], speed.get(name, {}).get("photo_ms"))
        assert same(row["× fer batch 1"], peers.get(name, {}).get("ratio_to_fer_batch1"))
        assert same(row["× fer batch 64"], peers.get(name, {}).get("ratio_to_fer_batch64"))
    caption = " ".join(c.value for c in app.caption)
    assert "speed.csv" in caption and "audit.csv" in caption and "audit_twins.csv" in caption
    assert "python -m fer_core bench" in caption
    assert "peers.csv" in caption and "one run, one process, one thread" in caption
    if not peers:
        assert "not measured yet (`pip install -r requirements-bench.txt --no-deps && python " \
               "benchmarks/bench_peers.py --write`)" in caption

    figs = charts(app)
    eps, spd = figs["Accuracy against privacy"], figs["Accuracy against speed"]
    assert eps["layout"]["xaxis"]["type"] == "log"
    non_private = [n for n, c in cards.items() if not c["privacy"]["private"]]
    assert len(eps["layout"]["shapes"]) == len(non_private)  # dashed lines: no ε
    methods = {c["privacy"]["method"] for c in cards.values() if c["privacy"]["private"]}
    assert {t["name"] for t in eps["data"]} == methods
    assert sum(len(t["x"]) for t in spd["data"]) == len(speed.keys() & cards.keys())  # models with committed speed
    assert "measured here (live)" not in {t["name"] for t in spd["data"]}


def test_filters(app):
    n_all = len(app.dataframe[0].value)
    app.multiselect(key="bench_privacy").set_value(["not private"]).run()
    table = app.dataframe[0].value
    assert 0 < len(table) < n_all and not table["private"].any()
    app.multiselect(key="bench_privacy").set_value(["private", "not private"]).run()
    app.text_input(key="bench_search").set_value("scatternet").run()
    table = app.dataframe[0].value
    assert len(table) > 0 and set(table["arch"]) == {"scatternet"}
    app.text_input(key="bench_search").set_value("no such model").run()
    assert not app.exception and not app.dataframe
    assert any("No model matches" in i.value for i in app.info)


def test_live_benchmark_on_a_tiny_budget(app):
    assert [m for m in app.multiselect(key="bench_models").value] == [
        p for p in available_checkpoints() if p.endswith(DEFAULT_CHECKPOINT)]
    app.number_input(key="bench_budget").set_value(0.3)
    app.button(key="bench_run").click().run()
    assert not app.exception, app.exception
    assert not app.error and not app.warning
    live = app.session_state["bench_live"]
    (res,) = live["results"]
    assert res["model"] == DEFAULT_CHECKPOINT and res["budget_s"] == 0.3 and res["threads"] == 1
    table = app.dataframe[-1].value.set_index("model")
    committed = {r["model"]: r for r in read_speed(SPEED_RESULTS)}[DEFAULT_CHECKPOINT]
    for key, col in (("faces_per_s_batch1", "faces/s batch 1"), ("faces_per_s_batch64", "faces/s batch 64"),
                     ("photo_ms", "photo ms")):
        assert table.loc[DEFAULT_CHECKPOINT, f"{col} (here)"] == pytest.approx(res[key]) and res[key] > 0
        assert table.loc[DEFAULT_CHECKPOINT, f"{col} (committed)"] == pytest.approx(committed[key])
    here = describe_machine({**machine_info(), "threads": 1})
    assert any(here in m.value for m in app.markdown if m.value.startswith("Measured here"))
    live_trace = next(t for t in charts(app)["Accuracy against speed"]["data"] if t["name"] == "measured here (live)")
    assert live_trace["x"] == [pytest.approx(res["faces_per_s_batch1"])] and live_trace["text"] == [DEFAULT_CHECKPOINT]
    # The figures stay when another widget reruns the page.
    app.selectbox(key="bench_speed_axis").set_value("photo ms").run()
    assert app.dataframe[-1].value.set_index("model").loc[DEFAULT_CHECKPOINT, "photo ms (here)"] == pytest.approx(
        res["photo_ms"])


def test_live_benchmark_one_session_at_a_time(app):
    from fer_core.app.support import bench_lock

    lock = bench_lock()  # the same process-wide lock the page uses
    assert lock.acquire(blocking=False)
    try:
        app.number_input(key="bench_budget").set_value(0.1)
        app.button(key="bench_run").click().run()
    finally:
        lock.release()
    assert not app.exception
    assert any("another session is running a benchmark" in w.value for w in app.warning)
    assert "bench_live" not in app.session_state


def test_live_benchmark_refuses_a_run_over_the_limit(app):
    app.multiselect(key="bench_models").set_value(list(available_checkpoints()))
    app.number_input(key="bench_budget").set_value(30.0)
    app.button(key="bench_run").click().run()
    assert not app.exception
    assert any("choose fewer models or a smaller budget" in e.value for e in app.error)
    assert "bench_live" not in app.session_state


def test_page_without_speed_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_SPEED_RESULTS", str(tmp_path / "missing.csv"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert len(table) == len(available_checkpoints()) and table["faces/s batch 1"].isna().all()
    assert any("none yet (`python -m fer_core bench --write`)" in c.value for c in at.caption)
    assert not charts(at)["Accuracy against speed"]["data"]


def test_page_shows_the_ratios_to_fer_from_a_peers_file(tmp_path, monkeypatch):
    path = tmp_path / "peers.csv"
    machine = {"cpu": "Peer Test CPU", "cpu_count": 4, "threads": 1, "torch": "9.9", "python": "3.x", "platform": "p"}
    common = {"private": False, "budget_s": 0.5, "faces": "256 FER2013 PrivateTest faces", "privatetest_accuracy": 0.5}
    write_peers([{"model": "fer (mini-Xception, int8 TFLite)", "peer": True, "runtime": "tflite",
                  "faces_per_s_batch1": 400.0, "faces_per_s_batch64": 800.0, "ratio_to_fer_batch1": 1.0,
                  "ratio_to_fer_batch64": 1.0, **common},
                 {"model": DEFAULT_CHECKPOINT, "peer": False, "runtime": "onnx", "faces_per_s_batch1": 1000.0,
                  "faces_per_s_batch64": 1200.0, "ratio_to_fer_batch1": 2.5, "ratio_to_fer_batch64": 1.5, **common}],
                machine, path, command="python benchmarks/bench_peers.py --write --budget-s 0.5")
    monkeypatch.setenv(PEERS_ENV, str(path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("model")
    assert table.loc[DEFAULT_CHECKPOINT, "× fer batch 1"] == pytest.approx(2.5)
    assert table.loc[DEFAULT_CHECKPOINT, "× fer batch 64"] == pytest.approx(1.5)
    others = table.drop(index=DEFAULT_CHECKPOINT)
    assert len(others) and others["× fer batch 1"].isna().all() and others["× fer batch 64"].isna().all()
    assert "fer (mini-Xception, int8 TFLite)" not in table.index  # the peer is no row of ours
    caption = next(c.value for c in at.caption if c.value.startswith("× fer"))
    assert str(path) in caption and "Peer Test CPU" in caption
    assert "`python benchmarks/bench_peers.py --write --budget-s 0.5`" in caption and "not measured yet" not in caption
