"""The Privacy audit page, driven headless with streamlit.testing (AppTest), and its ROC figure.

The audit results are a synthetic ``audit.csv`` + ``audit_roc.json`` in a temporary folder
($FER_AUDIT_RESULTS), so every number on the page can be checked against what was written.
"""

import csv
import json

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

from fer_core.app.plots import audit_roc_figure
from fer_core.results.files import AUDIT_COLUMNS

APP = str(REPO / "app.py")
PAGE = "pages/audit.py"

# (model, private, method, claimed ε) and per attack (AUC, TPR@1%, TPR@0.1%, balanced accuracy, ε lower bound).
MODELS = [
    ("fer2013_resnet", False, "none", None, {"rmia": (0.712, 0.081, 0.0312, 0.66, 2.41),
                                             "loss": (0.643, 0.022, 0.0041, 0.61, 0.87)}),
    ("dp_scatternet_eps2", True, "scatternet", 2.0, {"rmia": (0.507, 0.011, 0.0012, 0.51, 0.13),
                                                     "loss": (0.502, 0.010, 0.0010, 0.50, 0.0)}),
    ("dp_leaky_eps1", True, "dp-sgd", 1.0, {"rmia": (0.688, 0.061, 0.0205, 0.64, 1.75),
                                            "loss": (0.534, 0.013, 0.0015, 0.52, 0.42)}),
]


def roc_points(auc_like: float) -> dict:
    """A monotone ROC from (0, 0) to (1, 1); bigger ``auc_like`` bends it further above the diagonal."""
    fpr = [0.0, 0.0005, 0.001, 0.01, 0.1, 0.5, 1.0]
    power = 1.0 - (auc_like - 0.5)
    return {"fpr": fpr, "tpr": [0.0] + [round(x ** power, 6) for x in fpr[1:]]}


def write_audit(folder, extra_rows=(), roc=True):
    rows, rocs = [], {}
    for model, private, method, claimed, attacks in MODELS:
        for attack, (auc, t1, t01, bacc, eps_lb) in attacks.items():
            rows.append({"model": model, "private": private, "method": method,
                         "claimed_epsilon": "" if claimed is None else claimed, "delta": 1e-5, "attack": attack,
                         "auc": auc, "tpr_at_1pct_fpr": t1, "tpr_at_0.1pct_fpr": t01, "balanced_accuracy": bacc,
                         "epsilon_lower_bound": eps_lb, "n_members": 2000, "n_nonmembers": 2000, "references": 4,
                         "seconds": 12.5})
            rocs.setdefault(model, {})[attack] = roc_points(auc)
    path = folder / "audit.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=AUDIT_COLUMNS)
        w.writeheader()
        w.writerows(rows)
        w.writerows(extra_rows)
    if roc:
        (folder / "audit_roc.json").write_text(json.dumps(rocs))
    return path


def expected_auc(attack: str) -> dict:
    return {m: attacks[attack][0] for m, *_, attacks in MODELS}


@pytest.fixture
def app():
    return AppTest.from_file(APP, default_timeout=60)


def open_audit(app, monkeypatch, path):
    monkeypatch.setenv("FER_AUDIT_RESULTS", str(path))
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    return app


def chart_specs(app) -> list[dict]:
    return [json.loads(c.proto.spec) for c in app.get("plotly_chart")]


def test_audit_page_shows_chart_table_and_verdicts(app, tmp_path, monkeypatch):
    open_audit(app, monkeypatch, write_audit(tmp_path))
    assert app.title[0].value == "Privacy audit"
    assert any("membership-inference attack" in m.value and "coin flip" in m.value for m in app.markdown)

    # RMIA is the default attack.
    assert app.selectbox(key="audit_attack").value == "rmia"
    specs = chart_specs(app)
    assert len(specs) == 1
    assert [t["name"] for t in specs[0]["data"]] == [m[0] for m in MODELS] + ["chance"]
    assert specs[0]["layout"]["xaxis"]["type"] == "log" and specs[0]["layout"]["yaxis"]["type"] == "log"

    table = app.dataframe[0].value
    assert list(table.columns) == ["model", "private", "method", "claimed ε", "attack", "AUC", "TPR@1% FPR",
                                   "TPR@0.1% FPR", "balanced accuracy", "empirical ε lower bound"]
    assert table.set_index("model")["AUC"].to_dict() == pytest.approx(expected_auc("rmia"))
    assert set(table["attack"]) == {"rmia"}
    by_model = table.set_index("model")
    assert by_model.loc["dp_leaky_eps1", "TPR@0.1% FPR"] == pytest.approx(0.0205)
    assert by_model.loc["dp_leaky_eps1", "empirical ε lower bound"] == "1.75"
    assert by_model.loc["dp_scatternet_eps2", "claimed ε"] == "2"
    assert not by_model.loc["fer2013_resnet", "private"] and by_model.loc["dp_leaky_eps1", "private"]

    # Consistent private model -> success; over-claiming private model -> error; baseline: nothing to check.
    assert [s.value for s in app.success] == [
        "**dp_scatternet_eps2**: measured ε ≥ 0.13 vs claimed ε = 2: consistent"]
    assert len(app.error) == 1
    assert "**dp_leaky_eps1**: measured ε ≥ 1.75 vs claimed ε = 1: exceeds the claim!" in app.error[0].value
    assert any("fer2013_resnet" in m.value and "no promise" in m.value for m in app.markdown)
    assert not app.warning


def test_audit_page_attack_selector_switches_everything(app, tmp_path, monkeypatch):
    open_audit(app, monkeypatch, write_audit(tmp_path))
    rmia_chart = chart_specs(app)[0]
    app.selectbox(key="audit_attack").set_value("loss").run()
    assert not app.exception, app.exception

    table = app.dataframe[0].value
    assert set(table["attack"]) == {"loss"}
    assert table.set_index("model")["AUC"].to_dict() == pytest.approx(expected_auc("loss"))
    loss_chart = chart_specs(app)[0]
    assert "Loss threshold" in loss_chart["layout"]["title"]["text"]
    assert loss_chart["data"][0]["y"] != rmia_chart["data"][0]["y"]  # other curves
    # Under the weaker loss attack the leaky model's bound (0.42) stays below its claim (1).
    assert not app.error
    assert sorted(s.value for s in app.success) == [
        "**dp_leaky_eps1**: measured ε ≥ 0.42 vs claimed ε = 1: consistent",
        "**dp_scatternet_eps2**: measured ε ≥ 0.00 vs claimed ε = 2: consistent",
    ]


def test_audit_page_without_results(app, tmp_path, monkeypatch):
    open_audit(app, monkeypatch, tmp_path / "missing" / "audit.csv")
    assert any("python -m fer_core audit" in i.value for i in app.info)
    assert not app.dataframe and not app.get("plotly_chart") and not app.error


def test_audit_page_skips_malformed_rows_and_missing_roc(app, tmp_path, monkeypatch):
    bad = [{"model": "broken", "private": "True", "attack": "rmia", "auc": "not a number"},
           {"model": "", "attack": "rmia", "auc": 0.9}]
    open_audit(app, monkeypatch, write_audit(tmp_path, extra_rows=bad, roc=False))
    assert any("Skipped 2 malformed row(s)" in w.value for w in app.warning)
    table = app.dataframe[0].value
    assert list(table["model"]) == [m[0] for m in MODELS]
    assert not app.get("plotly_chart")  # no audit_roc.json
    assert any("No ROC points" in c.value for c in app.caption)


def test_audit_results_reader(tmp_path, monkeypatch):
    from fer_core.results.files import audit_results

    monkeypatch.setenv("FER_AUDIT_RESULTS", str(write_audit(tmp_path)))
    rows, rocs = audit_results()
    assert len(rows) == 2 * len(MODELS)
    base = next(r for r in rows if r["model"] == "fer2013_resnet" and r["attack"] == "loss")
    assert base["private"] is False and base["claimed_epsilon"] is None and base["auc"] == pytest.approx(0.643)
    dp = next(r for r in rows if r["model"] == "dp_leaky_eps1" and r["attack"] == "rmia")
    assert dp["private"] is True and dp["claimed_epsilon"] == 1.0 and dp["tpr_at_0.1pct_fpr"] == pytest.approx(0.0205)
    assert rocs["dp_leaky_eps1"]["rmia"] == roc_points(0.688)
    (tmp_path / "audit_roc.json").write_text("{not json")
    assert audit_results()[1] == {}
    monkeypatch.setenv("FER_AUDIT_RESULTS", str(tmp_path / "nothing.csv"))
    assert audit_results() == ([], {})


def test_audit_roc_figure():
    rocs = {m: {a: roc_points(v[0]) for a, v in attacks.items()} for m, *_, attacks in MODELS}
    rocs["rmia_only"] = {"rmia": roc_points(0.6)}
    fig = audit_roc_figure(rocs, "loss", "title")
    names = [t.name for t in fig.data]
    assert names == [m[0] for m in MODELS] + ["chance"]  # rmia_only has no loss curve
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert tuple(fig.layout.xaxis.range) == pytest.approx((-4, 0))
    for t in fig.data[:-1]:
        assert min(t.x) > 0 and min(t.y) > 0  # the (0, 0) point is dropped for the log axes
        assert len(t.x) == len(roc_points(0.5)["fpr"]) - 1
        assert "FPR" in t.hovertemplate and "TPR" in t.hovertemplate and "fullData.name" in t.hovertemplate
    chance = fig.data[-1]
    assert list(chance.x) == list(chance.y) == [1e-4, 1.0]
    assert len(audit_roc_figure({}, "rmia").data) == 1  # only the chance line
