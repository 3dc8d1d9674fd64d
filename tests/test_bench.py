"""fer_core.results.speed (speed measurement, speed.csv, the Benchmarks table) and ``python -m fer_core bench``."""

import csv
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from fer_core.models.checkpoint import list_checkpoints, read_card
from fer_core.results import speed, tables
from fer_core.results.files import FIGURES, SPEED_COLUMNS, SPEED_RESULTS, read_speed, write_speed
from fer_core.results.speed import machine_info, measure_model, timed_runs
from fer_core.results.tables import benchmark_rows


class FakeClock:
    """A ``perf_counter`` that only moves when the timed work says so."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def work(self, seconds):
        self.now += seconds


def test_timed_runs_stops_after_its_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(speed.time, "perf_counter", clock)
    ticks = []
    times = timed_runs(lambda: clock.work(0.125), budget_s=1.0, tick=ticks.append)
    # warm-up 0.125 s, then timed calls until 1.0 s has passed since the start: 7 of them.
    assert times == [0.125] * 7
    assert ticks and all(0 < t < 1 for t in ticks) and ticks == sorted(ticks)
    # A call longer than the budget is still timed once (after the warm-up).
    assert timed_runs(lambda: clock.work(5.0), budget_s=1.0) == pytest.approx([5.0])


def test_measure_model_figures_and_progress(random_ckpt):
    before = torch.get_num_threads()
    seen = []
    out = measure_model(random_ckpt, budget_s=0.3, threads=1, progress=lambda f, t: seen.append((f, t)))
    assert out["model"] == random_ckpt.name
    for key in FIGURES:
        assert math.isfinite(out[key]) and out[key] > 0
        assert out["runs"][key] >= 1
    assert out["faces_in_photo"] == 1  # the sample portrait has one face
    assert out["budget_s"] == 0.3 and out["threads"] == 1
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1
    assert {t.split(": ", 1)[1] for _, t in seen} >= {
        "classifier, batch 1", "classifier, batch 64", "1 MP photo end to end", "done"}
    assert torch.get_num_threads() == before  # restored


@pytest.mark.parametrize("budget, threads", [(0, 1), (-1, 1), (float("nan"), 1), (1, 0)])
def test_measure_model_rejects_bad_arguments(random_ckpt, budget, threads):
    with pytest.raises(ValueError, match="budget_s|threads"):
        measure_model(random_ckpt, budget_s=budget, threads=threads)


def test_machine_info():
    info = machine_info()
    assert set(info) == {"cpu", "cpu_count", "threads", "torch", "python", "platform"}
    assert info["torch"] == torch.__version__ and info["threads"] == torch.get_num_threads()
    assert info["cpu_count"] == os.cpu_count() and info["cpu"]


def result(model, b1, b64, ms):
    return {"model": model, "faces_per_s_batch1": b1, "faces_per_s_batch64": b64, "photo_ms": ms,
            "faces_in_photo": 1, "budget_s": 2.0, "threads": 1}


def test_write_speed_replaces_rows_of_the_same_models(tmp_path):
    path = tmp_path / "results" / "speed.csv"
    machine = {"cpu": "Test CPU", "cpu_count": 4, "threads": 1, "torch": "9.9", "python": "3.x", "platform": "p"}
    write_speed([result("b", 10, 100, 50.0), result("a", 20, 200, 40.0)], machine, path, command="cmd one")
    row_a = next(line for line in path.read_text().splitlines() if line.startswith("a,"))
    rows = write_speed([result("b", 11.04, 110, 55.54)], machine, path, command="cmd two")
    assert [r["model"] for r in rows] == ["a", "b"]
    with open(path, newline="") as fh:
        raw = list(csv.DictReader(fh))
    assert list(raw[0]) == SPEED_COLUMNS
    assert row_a in path.read_text().splitlines()  # another model's row is kept as written, ints not turned floats
    assert ",4,1," in row_a  # cpu_count and threads
    back = {r["model"]: r for r in read_speed(path)}
    assert back["a"]["faces_per_s_batch1"] == 20 and back["a"]["command"] == "cmd one"
    assert back["b"]["faces_per_s_batch1"] == 11.0 and back["b"]["photo_ms"] == 55.5
    assert back["b"]["command"] == "cmd two" and back["b"]["cpu"] == "Test CPU" and back["b"]["cpu_count"] == 4
    assert read_speed(tmp_path / "missing.csv") == []


def card(name, private, label_set=None, classes=7, **metrics):
    c = {"name": name, "arch": "resnet", "parameters": 1000, "macs": 5000, "classes": [f"c{i}" for i in range(classes)],
         "data": {"description": f"{name} rows"},
         "privacy": {"private": True, "method": "scatternet", "epsilon": 2.0, "delta": 1e-5} if private
         else {"private": False},
         "metrics": {"PrivateTest": {"accuracy": 0.5, "macro_f1": 0.4, "accuracy_dedup": 0.45, "ece": 0.1,
                                     "negative_vs_other": {"f1": 0.6}, **metrics}}}
    if label_set:
        c["label_set"] = label_set
    return c


def test_benchmark_rows_join_cards_audit_and_speed():
    cards = [card("plain", False), card("dp", True, accuracy=0.3), card("plus", False, "ferplus", 8), {"arch": "x"}]
    audit = [{"model": "dp", "attack": "rmia", "auc": "0.51"}, {"model": "dp", "attack": "loss", "auc": "0.505"},
             {"model": "plain", "attack": "rmia", "auc": "not a number"}]
    speed = [{"model": "dp", "faces_per_s_batch1": 30.0, "faces_per_s_batch64": 300.0, "photo_ms": 60.0}]
    twins = [{"model": "dp", "attack": "loss", "auc": 0.49, "epsilon_lower_bound": 0.0},
             {"model": "dp", "attack": "lira", "auc": 0.503, "epsilon_lower_bound": 0.1}]
    rows = {r["model"]: r for r in benchmark_rows(cards, audit, speed, twin_rows=twins)}
    assert set(rows) == {"plain", "dp", "plus"}  # the card without a name is skipped
    assert list(rows["dp"]) == tables.BENCHMARK_COLUMNS
    dp, plain, plus = rows["dp"], rows["plain"], rows["plus"]
    assert dp["private"] and dp["ε"] == 2.0 and dp["δ"] == 1e-5 and dp["privacy"] == "ε = 2, δ = 1e-05"
    assert dp["PrivateTest accuracy"] == 0.3 and dp["audit AUC (RMIA)"] == 0.51 and dp["audit AUC (loss)"] == 0.505
    assert (dp["faces/s batch 1"], dp["faces/s batch 64"], dp["photo ms"]) == (30.0, 300.0, 60.0)
    assert dp["twin audit AUC (LiRA)"] == 0.503 and dp["twin audit ε lower bound"] == 0.1
    assert rows["plain"]["twin audit AUC (LiRA)"] is None
    assert not plain["private"] and plain["ε"] is None and plain["privacy"] == "not private"
    assert plain["method"] == "not private" and plain["audit AUC (RMIA)"] is None and plain["faces/s batch 1"] is None
    assert plain["negative-vs-other F1"] == 0.6 and plain["training data"] == "plain rows"
    assert plain["label set"] == "fer2013 (7 classes)" and plus["label set"] == "ferplus (8 classes)"


def test_committed_speed_covers_every_shipped_model():
    rows = read_speed(SPEED_RESULTS)
    shipped = {read_card(d)["name"] for d in list_checkpoints()}
    assert {r["model"] for r in rows} >= shipped, "run `python -m fer_core bench --write`"
    for r in rows:
        assert all(r[k] is not None and r[k] > 0 for k in FIGURES) and r["cpu"] and r["command"]


def test_benchmarks_table_shows_the_committed_files():
    from fer_core.results.report import benchmarks_table

    lines = benchmarks_table().splitlines()
    speed_at = [c.strip() for c in lines[0].split("|")[1:-1]].index("faces/s, batch 1")
    for r in read_speed(SPEED_RESULTS):
        line = next(x for x in lines if x.startswith(f"| `{r['model']}` |"))
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert cells[speed_at:speed_at + 3] == [f"{r['faces_per_s_batch1']:.0f}", f"{r['faces_per_s_batch64']:.0f}",
                                                f"{r['photo_ms']:.1f}"]
        c = read_card(r["model"])
        assert cells[4] == f"{100 * c['metrics']['PrivateTest']['accuracy']:.2f}"


def test_benchmark_scatter_figure():
    from fer_core.app.plots import benchmark_scatter_figure

    rows = [{"model": "a", "method": "scatternet", "ε": 1.0, "acc": 0.4},
            {"model": "b", "method": "scatternet", "ε": 4.0, "acc": 0.5},
            {"model": "c", "method": "two-stage", "ε": 2.0, "acc": 0.45},
            {"model": "base", "method": "none", "ε": None, "acc": 0.67},
            {"model": "broken", "method": "none", "ε": 3.0, "acc": None}]
    fig = benchmark_scatter_figure(rows, "ε", "acc", log_x=True, reference_lines=True, symbols={"two-stage": "x"})
    assert [t.name for t in fig.data] == ["scatternet", "two-stage"]
    assert list(fig.data[0].x) == [1.0, 4.0] and list(fig.data[0].text) == ["a", "b"]
    assert fig.data[1].marker.symbol == "x" and fig.layout.xaxis.type == "log"
    assert [s.y0 for s in fig.layout.shapes] == [0.67]  # the model without ε as a dashed line
    assert len(benchmark_scatter_figure(rows, "ε", "acc").layout.shapes) == 0


# --- the command line -----------------------------------------------------------------------------------------------


def run(*args):
    return subprocess.run([sys.executable, "-m", "fer_core", "bench", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


def test_cli_bench_json_and_write(random_ckpt, tmp_path):
    out_csv = tmp_path / "speed.csv"
    r = run("--checkpoint", str(random_ckpt.path), "--budget-s", "0.3", "--json", "--no-progress", "--write",
            "--results", str(out_csv))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["machine"]) >= {"cpu", "cpu_count", "threads", "torch"} and out["machine"]["threads"] == 1
    (res,) = out["results"]
    assert res["model"] == random_ckpt.name
    for key in FIGURES:
        assert res[key] > 0
    (row,) = read_speed(out_csv)
    assert row["model"] == random_ckpt.name and row["faces_per_s_batch1"] == round(res["faces_per_s_batch1"], 1)
    assert row["command"].startswith("python -m fer_core bench --checkpoint")


def test_cli_bench_help_and_errors(tmp_path):
    r = run("--help")
    assert r.returncode == 0 and "usage: python -m fer_core bench" in r.stdout and "--budget-s" in r.stdout
    for args, needle in ((("--budget-s", "0"), "--budget-s must be a positive"),
                         (("--checkpoint", str(tmp_path / "nope")), "checkpoint not found")):
        r = run(*args, "--no-progress")
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.strip().startswith("error: ") and needle in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
