"""The privacy sweep on tiny synthetic data: CSV rows, resumability, exported checkpoints, README table."""

import json

import pytest
from conftest import TINY_RESNET, write_npz

from fer_core.models.checkpoint import load_checkpoint
from fer_core.privacy.accounting import PrivacyError
from fer_core.results.files import SWEEP_COLUMNS, read_sweep
from fer_core.results.report import sweep_table
from fer_core.results.sweep import run_name, run_sweep
from fer_core.training.config import TrainConfig
from fer_core.training.lifecycle import main

SMALL = dict(batch_size=64, physical_batch_size=32, epochs=1)


def test_sweep_writes_rows_exports_the_best_and_resumes(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=320, n_val=64, n_test=64)
    base = TrainConfig(data=str(npz), progress=False, channels_last=False)
    stage1 = tmp_path / "stage1"
    main(TrainConfig(out=str(tmp_path / "pub"), data=str(npz), arch="resnet", model_args=TINY_RESNET, epochs=1,
                     batch_size=32, channels_last=False, progress=False, train_rows="public",
                     public_fraction=0.2, export=str(stage1)))
    csv_path, out, export = tmp_path / "sweep.csv", tmp_path / "runs", tmp_path / "ck"
    run_sweep(base, ["scatternet"], [1.0, 8.0], csv_path, out, export, overrides={**SMALL, "model_args": {"width": 8}},
              command="pytest", stage1=stage1)
    audited = export / run_name("scatternet", 8.0) / "model.json"  # an audit adds its block to the shipped card
    audited.write_text(json.dumps({**json.loads(audited.read_text()), "audit": {"loss": {"auc": 0.5}}}))
    rows = run_sweep(base, ["two-stage"], [1.0, 8.0], csv_path, out, export,
                     overrides={**SMALL, "model_args": TINY_RESNET}, command="pytest", stage1=stage1)
    assert len(rows) == 4
    back = read_sweep(csv_path)
    assert [list(r) for r in back][0] == SWEEP_COLUMNS
    by = {(r["method"], r["target_epsilon"]): r for r in back}
    for (_method, eps), r in by.items():
        assert r["epsilon"] == pytest.approx(eps, rel=0.02)  # the accountant hit the target
        assert 0.0 <= r["privatetest_accuracy"] <= 1.0 and r["delta"] == 1e-5
    assert by[("two-stage", 1.0)]["private_rows"] == 256 and by[("two-stage", 1.0)]["public_rows"] == 64
    assert by[("scatternet", 1.0)]["private_rows"] == 320
    assert by[("two-stage", 1.0)]["noise_multiplier"] > by[("two-stage", 8.0)]["noise_multiplier"]
    # One checkpoint per epsilon and privacy class; its card is the run's.
    shipped = sorted(p.name for p in export.iterdir())
    assert shipped == sorted(run_name(m, e) for m in ("scatternet", "two-stage") for e in (1.0, 8.0))
    card = load_checkpoint(export / run_name("scatternet", 8.0)).card
    assert card["privacy"]["method"] == "scatternet" and card["arch"] == "scatternet"
    assert all(r["checkpoint"] for r in back)
    assert card["audit"] == {"loss": {"auc": 0.5}}  # re-exporting an unchanged run kept the audited card
    # Finished runs are read back, not retrained.
    mtime = (out / run_name("scatternet", 1.0) / "final_card.json").stat().st_mtime
    run_sweep(base, ["scatternet"], [1.0], csv_path, out, None, overrides={**SMALL, "model_args": {"width": 8}},
              command="a later sweep", stage1=stage1)
    assert (out / run_name("scatternet", 1.0) / "final_card.json").stat().st_mtime == mtime
    assert len(read_sweep(csv_path)) == 4
    # A row read back names the command that trained its run, not the one that read it.
    assert {r["command"] for r in read_sweep(csv_path)} == {"pytest"}
    table = sweep_table(csv_path)
    assert table.count("\n| scatternet |") == 2 and "two-stage" in table


def test_sweep_rejects_unknown_methods(tmp_path):
    with pytest.raises(PrivacyError, match="unknown method"):
        run_sweep(TrainConfig(), ["magic"], [1.0], tmp_path / "s.csv", tmp_path, None)


def test_reference_runs_are_the_recipe_without_noise_or_clipping_chosen_on_publictest(tmp_path):
    from fer_core.results.files import REFERENCE_COLUMNS, read_reference
    from fer_core.results.sweep import reference_name, run_references

    npz = write_npz(tmp_path / "s.npz", n_train=320, n_val=64, n_test=64)
    base = TrainConfig(data=str(npz), progress=False, channels_last=False)
    csv_path, out = tmp_path / "reference.csv", tmp_path / "runs"
    rows = run_references(base, ["scatternet"], csv_path, out, overrides={**SMALL, "model_args": {"width": 8}},
                          command="pytest", lrs={"scatternet": (0.01, 0.2)})
    assert len(rows) == 1 and [list(r) for r in read_reference(csv_path)][0] == REFERENCE_COLUMNS
    cards = {lr: json.loads((out / reference_name("scatternet", lr) / "final_card.json").read_text())
             for lr in (0.01, 0.2)}
    best = max(cards, key=lambda lr: cards[lr]["metrics"]["PublicTest"]["accuracy"])
    row = read_reference(csv_path)[0]
    assert row["lr"] == best and row["run"] == reference_name("scatternet", best)  # chosen on PublicTest
    assert row["privatetest_accuracy"] == pytest.approx(cards[best]["metrics"]["PrivateTest"]["accuracy"], abs=1e-4)
    assert row["noise_multiplier"] == 0.0 and row["max_grad_norm"] == "none" and row["train_rows"] == 320
    for card in cards.values():  # not private: no epsilon anywhere, and it says what it is
        p = card["privacy"]
        assert p["private"] is False and "epsilon" not in p and p["max_grad_norm"] is None
        assert p["method"] == "scatternet" and "non-private reference" in p["reference"]
        assert all(h["epsilon"] is None for h in card["history"])
    # finished runs are read back
    mtime = (out / reference_name("scatternet", 0.01) / "final_card.json").stat().st_mtime
    run_references(base, ["scatternet"], csv_path, out, overrides={**SMALL, "model_args": {"width": 8}},
                   lrs={"scatternet": (0.01,)})
    assert (out / reference_name("scatternet", 0.01) / "final_card.json").stat().st_mtime == mtime
    with pytest.raises(PrivacyError, match="unknown method"):
        run_references(base, ["magic"], csv_path, out)


def test_a_run_without_noise_but_with_clipping_is_not_private_either(tmp_path):
    from fer_core.privacy.accounting import spent_epsilon

    npz = write_npz(tmp_path / "s.npz", n_train=320, n_val=64, n_test=64)
    res = main(TrainConfig(out=str(tmp_path / "r"), data=str(npz), arch="scatternet", model_args={"width": 8},
                           dp_method="scatternet", noise_multiplier=0.0, max_grad_norm=0.5, progress=False,
                           channels_last=False, **SMALL))
    assert res["epsilon"] is None
    p = json.loads((tmp_path / "r" / "final_card.json").read_text())["privacy"]
    assert p["private"] is False and p["max_grad_norm"] == 0.5 and "clipped to 0.5" in p["reference"]

    class Engine:  # Opacus's PRV accountant overflows on sigma 0; no noise is no finite guarantee
        class accountant:
            history = [(1.0, 0.1, 10), (0.0, 0.1, 1)]
    assert spent_epsilon(Engine, 1e-5) == float("inf")


def test_reference_table_shows_the_cost_of_privacy(tmp_path):
    from fer_core.results.files import REFERENCE_COLUMNS, SWEEP_COLUMNS, write_reference, write_sweep
    from fer_core.results.report import reference_table

    ref = {c: "" for c in REFERENCE_COLUMNS}
    write_reference([{**ref, "method": "scatternet", "trainable": "all", "lr": 0.03, "batch_size": 256, "epochs": 12,
                      "publictest_accuracy": 0.55, "privatetest_accuracy": 0.56, "command": "c"}], tmp_path / "r.csv")
    row = {c: "" for c in SWEEP_COLUMNS}
    write_sweep([{**row, "method": "scatternet", "target_epsilon": 8.0, "epsilon": 7.86,
                  "privatetest_accuracy": 0.5177}], tmp_path / "s.csv")
    table = reference_table(tmp_path / "r.csv", tmp_path / "s.csv")
    assert "| scatternet | all | 0.03 | 256 | 12 | 55.00 | **56.00** | 51.77 (−4.23) | – |" in table
    assert table.endswith("Command: `c`")


def test_export_ships_one_model_per_privacy_class_and_epsilon(tmp_path):
    from fer_core.results.sweep import PRIVACY_CLASSES, export_best

    assert PRIVACY_CLASSES["two-stage"] == PRIVACY_CLASSES["public-features"] != PRIVACY_CLASSES["scatternet"]
    export = tmp_path / "ck"
    for name in ("dp_public-features_eps1", "dp_scatternet_eps1", "dp_two-stage_eps1"):  # shipped earlier; their
        (export / name).mkdir(parents=True)  # run folders are gone
        (export / name / "model.json").write_text("{}")
    (export / "dp_scatternet_eps2").mkdir()  # not a checkpoint of a row in this sweep: left alone
    rows = [{"method": "two-stage", "target_epsilon": 1.0, "publictest_accuracy": 0.50, "run": "dp_two-stage_eps1",
             "checkpoint": "dp_two-stage_eps1"},
            {"method": "public-features", "target_epsilon": 1.0, "publictest_accuracy": 0.57,
             "run": "dp_public-features_eps1", "checkpoint": ""},
            {"method": "scatternet", "target_epsilon": 1.0, "publictest_accuracy": 0.45, "run": "dp_scatternet_eps1",
             "checkpoint": "dp_scatternet_eps1"}]
    written = export_best(rows, tmp_path / "runs", export)
    assert sorted(written) == ["dp_public-features_eps1", "dp_scatternet_eps1"]
    assert [r["checkpoint"] for r in rows] == ["", "dp_public-features_eps1", "dp_scatternet_eps1"]
    # two-stage's earlier checkpoint is no longer its class's model at epsilon 1: it leaves the export folder
    assert sorted(p.name for p in export.iterdir()) == ["dp_public-features_eps1", "dp_scatternet_eps1",
                                                        "dp_scatternet_eps2"]
