"""The Compare and Privacy trade-off pages, driven headless with streamlit.testing (AppTest).

The checkpoint list is patched to the shipped baseline plus a tiny untrained "private" checkpoint,
the dataset to a small synthetic .npz ($FER_DATA) and the sweep to a synthetic CSV
($FER_SWEEP_RESULTS), so the pages' numbers can be checked against the library's.
"""

import csv
import json

import pytest
import torch
from conftest import REPO, TINY_RESNET, write_npz
from streamlit.testing.v1 import AppTest

from fer_core import EMOTIONS
from fer_core.models.checkpoint import CHECKPOINT_DIR, DEFAULT_CHECKPOINT, load_checkpoint, read_card
from fer_core.results.files import SWEEP_COLUMNS

APP = str(REPO / "app.py")
BASELINE = CHECKPOINT_DIR / DEFAULT_CHECKPOINT


@pytest.fixture(scope="module")
def dp_ckpt(tmp_path_factory):
    """A tiny untrained checkpoint whose card says it is private (with ε per epoch in its history)."""
    from fer_core.models.architectures import build_model, model_arguments
    from fer_core.models.checkpoint import save_checkpoint

    torch.manual_seed(3)
    d = tmp_path_factory.mktemp("ck") / "dp_tiny_eps2"
    args = model_arguments("resnet", **TINY_RESNET)
    history = [{"epoch": i, "train_loss": 2.0 - 0.1 * i, "train_accuracy": 0.2 + 0.02 * i,
                "val_accuracy": 0.25 + 0.02 * i, "epsilon": 0.5 * i} for i in range(1, 5)]
    card = {"name": "dp_tiny_eps2", "arch": "resnet", "model_args": args, "classes": list(EMOTIONS),
            "preprocessing": {"mean": 0.5, "std": 0.25},
            "metrics": {"PrivateTest": {"accuracy": 0.3, "macro_f1": 0.2}},
            "privacy": {"private": True, "method": "scatternet", "epsilon": 2.0, "delta": 1e-5, "accountant": "prv",
                        "noise_multiplier": 1.1, "max_grad_norm": 0.1, "steps": 56, "rows": "all 28,709 rows",
                        "method_note": "test"},
            "history": history}
    save_checkpoint(d, build_model("resnet", **args), card)
    return d


@pytest.fixture
def app(monkeypatch, dp_ckpt):
    import fer_core.app.support as support

    monkeypatch.setattr(support, "list_checkpoints", lambda: [BASELINE, dp_ckpt])
    return AppTest.from_file(APP, default_timeout=60)


def open_page(app, page):
    app.run()
    app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def chart_traces(app) -> list[list[str]]:
    """Trace names of every plotly chart on the page."""
    return [[t.get("name") for t in json.loads(c.proto.spec)["data"]] for c in app.get("plotly_chart")]


# --- Compare ------------------------------------------------------------------------------------------------------


def test_compare_sample_photo_both_models(app, dp_ckpt):
    from fer_core.evaluation.compare import compare_photo
    from fer_core.inference.detect import FaceDetector
    from fer_core.inference.pipeline import SAMPLE_PHOTO

    open_page(app, "pages/compare.py")
    assert app.selectbox(key="compare_a").value.endswith(DEFAULT_CHECKPOINT)
    assert app.selectbox(key="compare_b").value == str(dp_ckpt)  # the private one by default
    assert len(app.get("imgs")) == 2 or len(app.get("image")) == 2
    table = app.dataframe[0].value
    assert len(table) == 1
    ref = compare_photo(SAMPLE_PHOTO, load_checkpoint(BASELINE), load_checkpoint(dp_ckpt), FaceDetector("yunet"))[0]
    assert table["A label"].iloc[0] == ref["label_a"] and table["B label"].iloc[0] == ref["label_b"]
    assert table["A confidence"].iloc[0] == pytest.approx(ref["confidence_a"], abs=1e-3)
    assert bool(table["agree"].iloc[0]) == ref["agree"]
    assert any("1 face(s)" in m.value for m in app.markdown)


def test_compare_bad_upload_is_an_error(app):
    open_page(app, "pages/compare.py")
    app.get("file_uploader")[0].set_value(("fake.jpg", b"not an image at all", "image/jpeg")).run()
    assert not app.exception
    assert any("could not be analysed" in e.value for e in app.error)
    assert len(app.dataframe) == 0


def test_compare_on_test_split(app, dp_ckpt, tmp_path, monkeypatch):
    from fer_core.data.datasets import load_dataset
    from fer_core.evaluation.compare import compare_on_split

    npz = write_npz(tmp_path / "tiny.npz", n_train=16, n_val=16, n_test=64)
    monkeypatch.setenv("FER_DATA", str(npz))
    open_page(app, "pages/compare.py")
    assert not app.metric  # nothing computed before the button
    app.button[0].click().run()
    assert not app.exception, app.exception
    ref = compare_on_split(load_checkpoint(BASELINE), load_checkpoint(dp_ckpt), load_dataset(npz))
    assert ref["n_disagree"] > 0  # a trained and an untrained model
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["A accuracy"] == f"{100 * ref['a']['accuracy']:.2f}%"
    assert metrics["B accuracy"] == f"{100 * ref['b']['accuracy']:.2f}%"
    assert metrics["B macro-F1"] == f"{100 * ref['b']['macro_f1']:.2f}%"
    assert metrics["Agreement"] == f"{100 * ref['agreement']:.1f}%"
    assert any(f"disagree on {ref['n_disagree']} of them" in c.value for c in app.caption)
    assert len(app.get("plotly_chart")) >= 3  # two confusion matrices and the recall bars
    recall = app.dataframe[1].value
    assert recall["B recall"].to_dict() == pytest.approx(ref["b"]["recall"])
    n_images = len(app.get("imgs")) + len(app.get("image"))
    assert n_images >= 2 + min(24, ref["n_disagree"])
    # The result stays on screen when another widget reruns the page.
    app.get("file_uploader")[0].set_value(None).run()
    assert {m.label: m.value for m in app.metric}["Agreement"] == metrics["Agreement"]


def test_compare_without_dataset_warns(app, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(tmp_path / "missing.npz"))
    open_page(app, "pages/compare.py")
    app.button[0].click().run()
    assert not app.exception
    assert any("FER_DATA" in w.value and "fer2013.npz" in w.value for w in app.warning)
    assert not app.metric


# --- Privacy trade-off -------------------------------------------------------------------------------------------


def write_sweep(path, methods=(("scatternet", 0.45), ("two-stage", 0.55))):
    rows = []
    for method, base in methods:
        for i, eps in enumerate((0.5, 1.0, 2.0, 4.0, 8.0)):
            row = {c: "" for c in SWEEP_COLUMNS}
            row.update(method=method, epsilon=eps * 0.98, target_epsilon=eps, delta=1e-5, accountant="prv",
                       noise_multiplier=round(3.0 / (i + 1), 3), batch_size=1024, epochs=20,
                       privatetest_accuracy=round(base + 0.03 * i, 4), publictest_accuracy=round(base + 0.03 * i, 4),
                       run=f"dp_{method}_eps{eps:g}")
            row.update({f"recall_{e}": round(0.1 * k / 7 + 0.05 * i, 3) for k, e in enumerate(EMOTIONS)})
            rows.append(row)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SWEEP_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return rows


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    path = tmp_path / "sweep.csv"
    rows = write_sweep(path)
    monkeypatch.setenv("FER_SWEEP_RESULTS", str(path))
    monkeypatch.setenv("FER_REFERENCE_RESULTS", str(tmp_path / "no_reference.csv"))
    return rows


def test_privacy_page_draws_each_methods_non_private_reference_and_its_cost(app, sweep, tmp_path, monkeypatch):
    from fer_core.results.files import REFERENCE_COLUMNS, write_reference

    open_page(app, "pages/privacy.py")
    assert any("sweep --reference" in i.value for i in app.info)  # no reference file: how to make one
    ref = {c: "" for c in REFERENCE_COLUMNS}
    write_reference([{**ref, "method": "scatternet", "privatetest_accuracy": 0.6}], tmp_path / "ref.csv")
    monkeypatch.setenv("FER_REFERENCE_RESULTS", str(tmp_path / "ref.csv"))
    open_page(app, "pages/privacy.py")
    tradeoff = next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                    if "scatternet" in [t["name"] for t in json.loads(c.proto.spec)["data"]])
    traces = {t["name"]: t for t in tradeoff["data"]}
    assert list(traces) == ["scatternet", "scatternet, non-private reference", "two-stage"]
    line = traces["scatternet, non-private reference"]
    assert line["y"] == [0.6, 0.6] and line["line"]["dash"] == "dot"
    assert line["line"]["color"] == traces["scatternet"]["line"]["color"] != traces["two-stage"]["line"]["color"]
    assert line["x"] == [min(traces["scatternet"]["x"]), max(traces["scatternet"]["x"])]
    cost = next(d.value for d in app.dataframe if "cost of privacy" in d.value.columns)
    mine = [r for r in sweep if r["method"] == "scatternet"]
    assert list(cost["method"]) == ["scatternet"] * len(mine)  # two-stage has no reference
    assert list(cost["cost of privacy"]) == [f"{100 * (0.6 - r['privatetest_accuracy']):.1f} points" for r in mine]


@pytest.fixture(scope="module")
def e2e_ckpt(tmp_path_factory):
    """A tiny non-private mobilenetv2 checkpoint that started from facex's public weights (its card as a plain run
    writes it: top-level ``public_backbones``)."""
    from fer_core.models.architectures import build_model, model_arguments
    from fer_core.models.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("ck") / "fer2013_mobilenetv2"
    args = model_arguments("mobilenetv2", input_size=32)
    model = build_model("mobilenetv2", **args)
    card = {"name": "fer2013_mobilenetv2", "arch": "mobilenetv2", "model_args": args, "classes": list(EMOTIONS),
            "metrics": {"PublicTest": {"accuracy": 0.66}, "PrivateTest": {"accuracy": 0.67, "macro_f1": 0.6}},
            "public_backbones": model.provenances()}
    save_checkpoint(d, model, card)
    return d


def test_privacy_page_draws_the_end_to_end_public_pretrained_model_and_the_gap_to_it(app, e2e_ckpt, dp_ckpt, tmp_path,
                                                                                      monkeypatch):
    import fer_core.app.support as support
    from fer_core.results.files import REFERENCE_COLUMNS, write_reference
    from fer_core.results.views import END_TO_END_COLUMN

    monkeypatch.setattr(support, "list_checkpoints", lambda: [BASELINE, dp_ckpt, e2e_ckpt])
    rows = write_sweep(tmp_path / "sweep.csv", (("scatternet", 0.45), ("public-features", 0.57)))
    ref = {c: "" for c in REFERENCE_COLUMNS}
    write_reference([{**ref, "method": m, "privatetest_accuracy": 0.64} for m in ("scatternet", "public-features")],
                    tmp_path / "ref.csv")
    monkeypatch.setenv("FER_SWEEP_RESULTS", str(tmp_path / "sweep.csv"))
    monkeypatch.setenv("FER_REFERENCE_RESULTS", str(tmp_path / "ref.csv"))
    open_page(app, "pages/privacy.py")
    tradeoff = next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                    if "public-features" in [t["name"] for t in json.loads(c.proto.spec)["data"]])
    shapes = {s["line"]["dash"]: s["y0"] for s in tradeoff["layout"]["shapes"]}
    assert shapes["dashdot"] == pytest.approx(0.67)  # the end-to-end model's PrivateTest accuracy
    assert shapes["dash"] == pytest.approx(read_card(BASELINE)["metrics"]["PrivateTest"]["accuracy"])
    assert any("fer2013_mobilenetv2" in m.value and "dash-dot" in m.value for m in app.markdown)
    cost = next(d.value for d in app.dataframe if END_TO_END_COLUMN in d.value.columns)
    got = {(m, e): v for m, e, v in zip(cost["method"], cost["ε"], cost[END_TO_END_COLUMN], strict=True)}
    want = {(r["method"], round(r["epsilon"], 2)): f"{100 * (0.67 - r['privatetest_accuracy']):.1f} points"
            if r["method"] == "public-features" else "—" for r in rows}
    assert got == want  # the gap for the methods that stand on public weights only


def test_privacy_page_tradeoff_and_table(app, sweep):
    open_page(app, "pages/privacy.py")
    traces = chart_traces(app)
    assert ["scatternet", "two-stage"] in traces  # the trade-off figure, one line per method
    assert list(EMOTIONS) in traces  # recall vs epsilon, one line per emotion
    assert ["train (augmented)", "PublicTest"] in traces and ["ε"] in traces  # the DP checkpoint's curves
    tradeoff = next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                    if [t["name"] for t in json.loads(c.proto.spec)["data"]] == ["scatternet", "two-stage"])
    baseline = read_card(DEFAULT_CHECKPOINT)["metrics"]["PrivateTest"]["accuracy"]
    assert tradeoff["layout"]["xaxis"]["type"] == "log"
    assert tradeoff["layout"]["shapes"][0]["y0"] == pytest.approx(baseline)
    table = app.dataframe[0].value
    assert len(table) == len(sweep) and set(table["method"]) == {"scatternet", "two-stage"}
    assert "command" not in table.columns
    assert any("ε" in m.value and "δ" in m.value for m in app.markdown)


def test_privacy_page_budget_planner(app, sweep):
    from fer_core.privacy.accounting import epsilon_for, noise_multiplier_for
    from fer_core.results.files import sweep_rows
    from fer_core.results.sweep import expected_accuracy

    open_page(app, "pages/privacy.py")
    assert {m.label for m in app.metric} >= {"ε", "Noise multiplier σ", "Steps"}  # defaults compute
    app.number_input(key="plan_batch").set_value(512)
    app.number_input(key="plan_epochs").set_value(10)
    app.number_input(key="plan_sigma").set_value(1.3)
    app.selectbox(key="plan_accountant").set_value("rdp")
    app.run()
    assert not app.exception
    # the plan a private run with these settings follows (Opacus's Poisson loader): ceil(N / b) steps per epoch
    q, steps = 1 / 57, 10 * 57  # N = 28,709 rows, batch 512
    eps = epsilon_for(1.3, q, steps, 1e-5, "rdp")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["ε"] == f"{eps:.2f}"
    assert metrics["Steps"] == f"{steps:,}" and metrics["Sample rate q"] == f"{q:.4f}"
    expected = app.dataframe[-1].value.set_index("method")["expected PrivateTest accuracy"].to_dict()
    for m in ("scatternet", "two-stage"):
        acc = expected_accuracy(sweep_rows(), m, eps)
        assert expected[m] == ("outside the measured range" if acc is None else f"{100 * acc:.1f}%")

    app.radio(key="plan_mode").set_value("target ε → noise multiplier").run()
    app.number_input(key="plan_target").set_value(3.0).run()
    assert not app.exception
    sigma = noise_multiplier_for(3.0, 1e-5, q, steps, "rdp")
    assert {m.label: m.value for m in app.metric}["Noise multiplier σ"] == f"{sigma:.3f}"

    app.number_input(key="plan_delta").set_value(1e-4).run()  # >= 1/N for N = 28,709
    assert not app.exception
    assert any("1/N" in e.value for e in app.error)
    assert not any(m.label == "ε" for m in app.metric)


def test_privacy_page_without_sweep(app, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_SWEEP_RESULTS", str(tmp_path / "none.csv"))
    open_page(app, "pages/privacy.py")
    assert any("python -m fer_core sweep" in i.value for i in app.info)
    assert not app.dataframe  # no table, no expected accuracies
    assert any(m.label == "ε" for m in app.metric)  # the planner still works
