"""The Privacy audit page, driven headless with streamlit.testing (AppTest), and its figures.

The audit results are a synthetic ``audit_twins.csv`` + ``audit_twins_roc.json`` ($FER_TWIN_AUDIT_RESULTS,
written by :func:`fer_core.results.files.write_twin_audit`) and ``audit.csv`` + ``audit_roc.json``
($FER_AUDIT_RESULTS) in temporary folders, so every number on the page can be checked against what was written.
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


def open_audit(app, monkeypatch, path, twins=None):
    """The audit page with the shifted audit at ``path`` and the twin audit at ``twins`` (default: none)."""
    monkeypatch.setenv("FER_AUDIT_RESULTS", str(path))
    monkeypatch.setenv("FER_TWIN_AUDIT_RESULTS", str(twins or path.parent / "no_twins" / "audit_twins.csv"))
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
                                   "TPR@0.1% FPR", "balanced accuracy", "empirical ε lower bound", "blind AUC [95%]"]
    assert set(table["blind AUC [95%]"]) == {"not run"}  # the fixture's audit.csv has no blind columns
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


# --- the twin audit, which the page leads with --------------------------------------------------------------------

# (model, private, method, claimed ε, blind (AUC, low, high, shifted)) and per attack
# (AUC, low, high, TPR@1%, TPR@0.1%, its low, its high, ε lower bound).
TWIN_MODELS = [
    ("fer2013_resnet", False, "", None, (0.502, 0.488, 0.516, False),
     {"lira": (0.702, 0.693, 0.711, 0.090, 0.0310, 0.0252, 0.0377, 2.46),
      "loss": (0.621, 0.612, 0.630, 0.021, 0.0040, 0.0022, 0.0067, 0.81)}),
    ("dp_scatternet_eps2", True, "scatternet", 1.9583, (0.497, 0.483, 0.511, False),
     {"lira": (0.503, 0.494, 0.512, 0.011, 0.0011, 0.0003, 0.0028, 0.0),
      "loss": (0.501, 0.492, 0.510, 0.010, 0.0010, 0.0003, 0.0026, 0.0)}),
    ("dp_scatternet_eps8", True, "scatternet", 7.8601, (0.505, 0.491, 0.519, False),
     {"lira": (0.531, 0.522, 0.540, 0.016, 0.0019, 0.0008, 0.0038, 0.12),
      "loss": (0.512, 0.503, 0.521, 0.011, 0.0012, 0.0004, 0.0029, 0.02)}),
    ("dp_leaky_eps1", True, "two-stage", 1.0, (0.499, 0.485, 0.513, False),
     {"lira": (0.668, 0.659, 0.677, 0.060, 0.0206, 0.0160, 0.0261, 1.62),
      "loss": (0.560, 0.551, 0.569, 0.014, 0.0016, 0.0006, 0.0033, 0.35)}),
    ("dp_shifted_eps4", True, "two-stage", 4.0, (0.581, 0.566, 0.596, True),
     {"lira": (0.552, 0.543, 0.561, 0.013, 0.0014, 0.0005, 0.0031, 0.21),
      "loss": (0.571, 0.562, 0.580, 0.014, 0.0015, 0.0005, 0.0032, 0.27)}),
]
TWIN_COMMAND = "python -m fer_core audit --twins 16 --checkpoint checkpoints/{}"


def twin_rows(models=TWIN_MODELS) -> list[dict]:
    rows = []
    for model, private, method, claimed, (b, b_lo, b_hi, shifted), attacks in models:
        for attack, (auc, lo, hi, t1, t01, t01_lo, t01_hi, eps_lb) in attacks.items():
            rows.append({
                "model": model, "private": private, "method": method,
                "claimed_epsilon": "" if claimed is None else claimed, "delta": "" if claimed is None else 1e-5,
                "attack": attack, "twins": 16, "n_rows": 10000, "auc": auc, "auc_low": lo, "auc_high": hi,
                "tpr_at_1pct_fpr": t1, "tpr_at_1pct_fpr_low": t1 / 2, "tpr_at_1pct_fpr_high": t1 * 1.5,
                "tpr_at_0.1pct_fpr": t01, "tpr_at_0.1pct_fpr_low": t01_lo, "tpr_at_0.1pct_fpr_high": t01_hi,
                "balanced_accuracy": auc - 0.05, "epsilon_lower_bound": eps_lb, "blind_auc": b,
                "blind_auc_low": b_lo, "blind_auc_high": b_hi, "blind_shifted": shifted,
                "twin_overrides": '{"epochs": 3}' if model == "dp_leaky_eps1" else "{}", "seconds": 900.0,
                "command": TWIN_COMMAND.format(model),
            })
    return rows


def write_twins(folder, models=TWIN_MODELS, roc=True):
    from fer_core.results.files import write_twin_audit

    path = folder / "twins" / "audit_twins.csv"
    rocs = {m[0]: {a: roc_points(v[0]) for a, v in m[-1].items()} for m in models} if roc else None
    write_twin_audit(twin_rows(models), path, rocs)
    return path


def chart_titles(app) -> list[str]:
    return [(s["layout"].get("title") or {}).get("text", "") for s in chart_specs(app)]


def test_audit_page_leads_with_the_twin_audit(app, tmp_path, monkeypatch):
    open_audit(app, monkeypatch, write_audit(tmp_path), twins=write_twins(tmp_path))
    assert app.title[0].value == "Privacy audit"
    lead = " ".join(app.markdown[0].value.split())
    assert "recipe of each shipped model" in lead and "audit twins" in lead and "not split shift" in lead
    assert app.subheader[0].value.startswith("Leakage of each recipe")

    # First table: the twin audit, every model and attack, LiRA first.
    from fer_core.audit.verdict import TWIN_TABLE_COLUMNS

    table = app.dataframe[0].value
    assert list(table.columns) == TWIN_TABLE_COLUMNS
    assert list(zip(table["model"], table["attack"], strict=True)) == [
        (m[0], a) for m in sorted(TWIN_MODELS) for a in ("lira", "loss")]
    leaky = table[(table["model"] == "dp_leaky_eps1") & (table["attack"] == "lira")].iloc[0]
    assert leaky["AUC [95%]"] == "0.668 [0.659, 0.677]"
    assert leaky["TPR@0.1% FPR [95%]"] == "2.06% [1.60%, 2.61%]"
    assert leaky["empirical ε lower bound"] == "1.62" and leaky["claimed ε"] == "1"
    assert leaky["twins"] == 16 and leaky["rows"] == 10000
    base = table[table["model"] == "fer2013_resnet"].iloc[0]
    assert base["method"] == "none (not private)" and base["claimed ε"] == "— (no promise)"
    assert table[table["model"] == "dp_shifted_eps4"].iloc[0]["blind AUC [95%]"] == "0.581 [0.566, 0.596] (shifted)"
    assert any("dp_leaky_eps1" in c.value and "epochs=3" in c.value for c in app.caption)
    assert list(app.dataframe[1].value.columns)[:2] == ["model", "private"]  # the shifted audit's table, below

    # Figures: the leakage against claimed ε first, then the twins' ROC, then the shifted audit's ROC.
    titles = chart_titles(app)
    assert len(titles) == 3
    assert "AUC against the claimed ε" in titles[0] and titles[0].startswith("LiRA")
    assert "on the twins" in titles[1] and "LiRA" in titles[1]
    assert titles[2] == "ROC of the RMIA (reference models) attack"
    leak = chart_specs(app)[0]
    names = [t["name"] for t in leak["data"]]
    assert names == ["scatternet", "two-stage", "fer2013_resnet (not private)", "chance"]
    scatter = leak["data"][0]
    assert scatter["x"] == [1.9583, 7.8601] and scatter["y"] == [0.503, 0.531]
    assert leak["data"][3]["y"] == [0.5, 0.5] and leak["data"][2]["y"] == [0.702, 0.702]
    assert leak["layout"]["xaxis"]["type"] == "log"
    roc = chart_specs(app)[1]
    assert [t["name"] for t in roc["data"]] == [m[0] for m in sorted(TWIN_MODELS)] + ["chance"]

    # Verdicts: the over-claiming recipe is an error, the shifted one a warning, the consistent ones successes.
    twin_errors = [e.value for e in app.error if "a bug to find" in e.value]
    assert len(twin_errors) == 1 and "**dp_leaky_eps1**: measured ε ≥ 1.62" in twin_errors[0]
    assert "exceeds the claim" in twin_errors[0]
    assert [w.value for w in app.warning if "measured a split, not the model" in w.value] == [
        w.value for w in app.warning]
    assert len(app.warning) == 1 and "**dp_shifted_eps4**" in app.warning[0].value
    assert [s.value for s in app.success][:2] == [
        "**dp_scatternet_eps2**: measured ε ≥ 0.00 (LiRA online (twin shadows)) vs claimed ε = 1.9583: consistent "
        "(AUC 0.503 [0.494, 0.512])",
        "**dp_scatternet_eps8**: measured ε ≥ 0.12 (LiRA online (twin shadows)) vs claimed ε = 7.8601: consistent "
        "(AUC 0.531 [0.522, 0.540])"]
    assert any("fer2013_resnet" in m.value and "it leaks" in m.value and "3.10%" in m.value for m in app.markdown)

    # The shifted audit is a labelled secondary view.
    assert app.expander[0].label.startswith("Older audit: Training members vs test-split non-members (shifted")
    assert app.selectbox(key="audit_attack").value == "rmia"


def test_twin_audit_attack_and_measure_switch_the_figures(app, tmp_path, monkeypatch):
    open_audit(app, monkeypatch, tmp_path / "none.csv", twins=write_twins(tmp_path))
    assert app.selectbox(key="twin_attack").options == ["LiRA online (twin shadows)", "Loss threshold"]
    app.radio(key="twin_metric").set_value("tpr_at_0.1pct_fpr").run()
    assert not app.exception, app.exception
    leak = chart_specs(app)[0]
    assert "TPR @ 0.1% FPR" in leak["layout"]["title"]["text"]
    assert leak["data"][0]["y"] == [0.0011, 0.0019] and leak["data"][-1]["y"] == [0.001, 0.001]
    assert leak["data"][0]["error_y"]["array"] == pytest.approx([0.0017, 0.0019])

    app.selectbox(key="twin_attack").set_value("loss").run()
    assert not app.exception, app.exception
    titles = chart_titles(app)
    assert titles[0].startswith("Loss threshold") and "Loss threshold" in titles[1]
    assert chart_specs(app)[0]["data"][0]["y"] == [0.0010, 0.0012]
    # The verdicts judge each model's strongest attack, whichever the figures show.
    assert sum("a bug to find" in e.value for e in app.error) == 1


def test_audit_page_without_twin_audit_says_how_to_produce_it(app, tmp_path, monkeypatch):
    open_audit(app, monkeypatch, write_audit(tmp_path))
    assert any("python -m fer_core audit --twins 16 --checkpoint checkpoints/<model>" in i.value for i in app.info)
    assert [t for t in chart_titles(app) if "twins" in t or "claimed ε" in t] == []
    assert app.selectbox(key="audit_attack").value == "rmia"  # the shifted audit is still there


def test_audit_page_with_an_empty_twin_audit_and_no_roc(app, tmp_path, monkeypatch):
    empty = tmp_path / "empty" / "audit_twins.csv"
    empty.parent.mkdir()
    from fer_core.results.files import TWIN_AUDIT_COLUMNS

    empty.write_text(",".join(TWIN_AUDIT_COLUMNS) + "\n")
    open_audit(app, monkeypatch, tmp_path / "none.csv", twins=empty)
    assert any("--twins 16" in i.value for i in app.info) and not app.dataframe

    open_audit(app, monkeypatch, tmp_path / "none.csv", twins=write_twins(tmp_path, roc=False))
    assert len(app.get("plotly_chart")) == 1  # the leakage figure; no ROC points
    assert any("audit_twins_roc.json" in c.value for c in app.caption)
