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
              stage1=stage1)
    assert (out / run_name("scatternet", 1.0) / "final_card.json").stat().st_mtime == mtime
    assert len(read_sweep(csv_path)) == 4
    table = sweep_table(csv_path)
    assert table.count("\n| scatternet |") == 2 and "two-stage" in table


def test_sweep_rejects_unknown_methods(tmp_path):
    with pytest.raises(PrivacyError, match="unknown method"):
        run_sweep(TrainConfig(), ["magic"], [1.0], tmp_path / "s.csv", tmp_path, None)
