"""The comparison with the peer package ``fer``: ``peers.csv`` (files.py), the README's ratio columns and
subsection (report.py), and ``benchmarks/bench_peers.py --write``."""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from fer_core.models.checkpoint import CHECKPOINT_DIR, list_checkpoints, read_card
from fer_core.results.files import PEERS_COLUMNS, PEERS_ENV, peers_path, read_peers, write_peers
from fer_core.results.report import PEERS_MISSING, benchmarks_table, peers_table, render_results
from fer_core.results.speed import describe_machine
from fer_core.results.tables import RATIO_COLUMNS, benchmark_rows

SCRIPT = REPO / "benchmarks" / "bench_peers.py"
MACHINE = {"cpu": "Test CPU", "cpu_count": 4, "threads": 1, "torch": "9.9", "python": "3.x", "platform": "p"}
PEER = "fer (mini-Xception, int8 TFLite)"


def peer_rows(model="fer2013_resnet"):
    """One run as ``bench_peers.py`` hands it to :func:`write_peers`: fer, one of ours, one without accuracy."""
    common = {"budget_s": 0.5, "faces": "64 FER2013 PrivateTest faces"}
    return [
        {"model": "other_model", "private": True, "peer": False, "runtime": "torch", "faces_per_s_batch1": 50.0,
         "faces_per_s_batch64": 300.0, "ratio_to_fer_batch1": 0.125, "ratio_to_fer_batch64": 0.5,
         "privatetest_accuracy": None, **common},
        {"model": PEER, "private": False, "peer": True, "runtime": "tflite", "faces_per_s_batch1": 400.0,
         "faces_per_s_batch64": 600.0, "ratio_to_fer_batch1": 1.0, "ratio_to_fer_batch64": 1.0,
         "privatetest_accuracy": 0.5312, **common},
        {"model": model, "private": False, "peer": False, "runtime": "onnx", "faces_per_s_batch1": 1000.0,
         "faces_per_s_batch64": 1500.6, "ratio_to_fer_batch1": 2.5, "ratio_to_fer_batch64": 2.501,
         "privatetest_accuracy": 0.681, **common},
    ]


def test_write_and_read_peers_round_trip(tmp_path):
    path = tmp_path / "results" / "peers.csv"
    written = write_peers(peer_rows(), MACHINE, path, command="python benchmarks/bench_peers.py --write")
    assert [r["model"] for r in written] == [PEER, "fer2013_resnet", "other_model"]  # the peer first
    with open(path, newline="") as fh:
        assert next(csv.reader(fh)) == PEERS_COLUMNS
    back = read_peers(path)
    assert [r["model"] for r in back] == [r["model"] for r in written]
    by_model = {r["model"]: r for r in back}
    given = {r["model"]: r for r in peer_rows()}
    for name, r in by_model.items():
        assert set(r) == set(PEERS_COLUMNS)
        for k in ("private", "peer"):
            assert r[k] is given[name][k]  # bools, not "True"/"False"
        for k in ("faces_per_s_batch1", "faces_per_s_batch64", "ratio_to_fer_batch1", "ratio_to_fer_batch64",
                  "privatetest_accuracy", "budget_s"):
            assert r[k] == given[name][k]  # None stays None
        assert r["runtime"] == given[name]["runtime"] and r["faces"] == given[name]["faces"]
        assert r["cpu"] == "Test CPU" and r["cpu_count"] == 4.0 and r["threads"] == 1.0
        assert r["command"] == "python benchmarks/bench_peers.py --write" and r["measured"].endswith("Z")
    assert by_model["other_model"]["privatetest_accuracy"] is None
    # A second run replaces the whole file: only same-run ratios are claims.
    write_peers(peer_rows("dp_scatternet_eps1")[1:], MACHINE, path, command="run two")
    assert [(r["model"], r["command"]) for r in read_peers(path)] == [(PEER, "run two"),
                                                                       ("dp_scatternet_eps1", "run two")]
    assert read_peers(tmp_path / "missing.csv") == []


def test_peers_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(PEERS_ENV, str(tmp_path / "elsewhere.csv"))
    assert peers_path() == tmp_path / "elsewhere.csv"
    write_peers(peer_rows(), MACHINE)  # default path: the environment's
    assert [r["model"] for r in read_peers()] == [PEER, "fer2013_resnet", "other_model"]
    monkeypatch.delenv(PEERS_ENV)
    assert peers_path() == CHECKPOINT_DIR / "results" / "peers.csv"


def test_benchmark_rows_take_the_ratios_by_model_name():
    cards = [{"name": "fer2013_resnet", "arch": "resnet", "privacy": {"private": False}, "metrics": {}},
             {"name": "no_ratio", "arch": "resnet", "privacy": {"private": False}, "metrics": {}},
             {"name": PEER, "arch": "x", "privacy": {"private": False}, "metrics": {}}]
    rows = {r["model"]: r for r in benchmark_rows(cards, peer_rows=peer_rows())}
    assert rows["fer2013_resnet"]["× fer batch 1"] == 2.5 and rows["fer2013_resnet"]["× fer batch 64"] == 2.501
    assert rows["no_ratio"]["× fer batch 1"] is None and rows["no_ratio"]["× fer batch 64"] is None
    assert rows[PEER]["× fer batch 1"] is None  # the peer's own row never fills one of ours
    assert set(RATIO_COLUMNS.values()) <= set(rows["no_ratio"])


def test_report_renders_the_ratios_and_the_peer_section(tmp_path):
    path = tmp_path / "peers.csv"
    written = write_peers(peer_rows(), MACHINE, path, command="python benchmarks/bench_peers.py --write --budget-s 0.5")
    lines = benchmarks_table(peers_path=path).splitlines()
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert header[-2:] == ["× fer (batch 1)", "× fer (batch 64)"]
    shipped = [read_card(d)["name"] for d in list_checkpoints()]
    for name in shipped:
        cells = [c.strip() for c in next(x for x in lines if x.startswith(f"| `{name}` |")).split("|")[1:-1]]
        assert len(cells) == len(header)
        if name == "fer2013_resnet":
            assert cells[-2:] == ["2.50", "2.50"]  # 2.5 and 2.501 at two decimals
        else:
            assert cells[-2:] == ["–", "–"]

    text = peers_table(path)
    assert "one run, one process, one thread" in text
    table = [x for x in text.splitlines() if x.startswith("| ") and not x.startswith("| model")]
    assert len(table) == len(written)
    assert table[0] == f"| {PEER} (peer) | tflite | 400 | 600 | 1.00 | 1.00 | 53.12 |"
    assert table[1] == "| `fer2013_resnet` | onnx | 1000 | 1501 | 2.50 | 2.50 | 68.10 |"
    assert table[2] == "| `other_model` | torch | 50 | 300 | 0.12 | 0.50 | – |"
    assert describe_machine(MACHINE) in text and "`python benchmarks/bench_peers.py --write --budget-s 0.5`" in text
    assert "64 FER2013 PrivateTest faces" in text and "0.5 s per model and batch size" in text

    assert peers_table(tmp_path / "missing.csv") == PEERS_MISSING
    header_only = tmp_path / "empty.csv"
    header_only.write_text(path.read_text().splitlines()[0] + "\n")
    assert peers_table(header_only) == PEERS_MISSING
    assert "pip install -r requirements-bench.txt --no-deps && python benchmarks/bench_peers.py --write" in (
        PEERS_MISSING)
    text = render_results()
    assert text.index("### Benchmarks") < text.index("#### Against the peer package fer")


def load_script():
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_peers_skips_without_the_extras(tmp_path, monkeypatch, capsys):
    bench = load_script()
    monkeypatch.setitem(sys.modules, "fer", None)  # find_spec("fer") is None: as if it were not installed
    monkeypatch.setenv(PEERS_ENV, str(tmp_path / "peers.csv"))
    assert bench.main(["--write", "--json"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("skipped: the peer benchmark needs fer") and len(out.splitlines()) == 1
    assert not (tmp_path / "peers.csv").exists()


def test_bench_peers_write(tmp_path, synthetic_npz):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("fer")
    out_csv = tmp_path / "peers.csv"
    models = ["checkpoints/fer2013_resnet", "checkpoints/dp_scatternet_eps1"]  # ScatterNet: no ONNX export
    args = ["--checkpoint", *models, "--budget-s", "0.2", "--data", str(synthetic_npz), "--write", "--json"]
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "OMP_NUM_THREADS": "1", PEERS_ENV: str(out_csv)}, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"written to {out_csv}" in r.stderr
    out = json.loads(r.stdout)
    assert out["machine"]["threads"] == 1 and out["budget_s"] == 0.2 and out["faces"].startswith("64 ")
    res = {x["model"]: x for x in out["results"]}
    assert [x["runtime"] for x in out["results"]] == ["tflite", "onnx", "torch"]  # the runtime that ran each
    rows = read_peers(out_csv)
    assert [x["model"] for x in rows] == [out["results"][0]["model"], "dp_scatternet_eps1", "fer2013_resnet"]
    fer = rows[0]
    assert fer["peer"] and not fer["private"] and fer["runtime"] == "tflite"
    assert fer["ratio_to_fer_batch1"] == 1.0 and fer["ratio_to_fer_batch64"] == 1.0
    assert 0 <= fer["privatetest_accuracy"] <= 1  # measured on the synthetic PrivateTest faces
    for row in rows:
        want = res[row["model"]]
        assert row["runtime"] == want["runtime"] and row["private"] == want["private"]
        for b in (1, 64):
            assert row[f"faces_per_s_batch{b}"] == want[f"faces_per_s_batch{b}"] > 0
            if not row["peer"]:  # against fer timed call by call beside this model; fer's row: their median
                assert row[f"ratio_to_fer_batch{b}"] == pytest.approx(
                    want[f"faces_per_s_batch{b}"] / want[f"fer_faces_per_s_batch{b}"], abs=1e-3)
        assert row["budget_s"] == 0.2 and row["faces"] == out["faces"] and row["threads"] == 1
        assert row["command"] == "python benchmarks/bench_peers.py " + " ".join(args)
    for b in (1, 64):  # fer's row: the median (of two: the mean) of its figures timed beside each model
        pairs = [res[m][f"fer_faces_per_s_batch{b}"] for m in ("fer2013_resnet", "dp_scatternet_eps1")]
        assert fer[f"faces_per_s_batch{b}"] == pytest.approx(sum(pairs) / 2, abs=0.1)
    for name in ("fer2013_resnet", "dp_scatternet_eps1"):
        row = next(x for x in rows if x["model"] == name)
        card = read_card(CHECKPOINT_DIR / name)
        assert not row["peer"] and row["private"] == card["privacy"]["private"]
        assert row["privatetest_accuracy"] == pytest.approx(card["metrics"]["PrivateTest"]["accuracy"])
