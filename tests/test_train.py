import json

import numpy as np
import pytest
import torch
from conftest import TINY_RESNET
from safetensors.torch import load_file

from fer_core.models.checkpoint import load_checkpoint
from fer_core.training.config import TrainConfig
from fer_core.training.lifecycle import main
from fer_core.training.optim import lr_at


def tiny_config(tmp_path, data, **kw):
    base = dict(
        out=str(tmp_path / "run"), data=str(data), arch="resnet", model_args=TINY_RESNET, epochs=3,
        batch_size=32, lr=0.05, warmup_epochs=0.5, ema_decay=0.9, channels_last=False, progress=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_short_run_learns_and_exports(tmp_path, synthetic_npz):
    cfg = tiny_config(tmp_path, synthetic_npz, epochs=6, export=str(tmp_path / "ckpt"))
    res = main(cfg, command="pytest")
    hist = res["history"]
    assert res["finished"] and len(hist) == 6
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.2  # the loss falls
    assert max(h["val_accuracy"] for h in hist) > 0.35  # well above chance (1/7) on held-out rows
    ck = load_checkpoint(tmp_path / "ckpt")
    card = ck.card
    assert card["privacy"]["private"] is False
    assert card["data"]["sha256"] and card["data"]["rows"]["Training"] == 256
    assert set(card["metrics"]) == {"PublicTest", "PrivateTest"}
    assert card["selection"]["val_accuracy"] == pytest.approx(card["metrics"]["PublicTest"]["accuracy"])
    assert card["command"] == "pytest" and card["config"]["epochs"] == 6
    assert [h["epoch"] for h in card["history"]] == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "ckpt" / "history.csv").exists()  # only weights and card in a checkpoint


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, synthetic_npz):
    full = main(tiny_config(tmp_path / "a", synthetic_npz))
    # "Killed" after one epoch, then started again with the same command.
    first = main(tiny_config(tmp_path / "b", synthetic_npz, stop_after=1))
    assert not first["finished"] and len(first["history"]) == 1
    second = main(tiny_config(tmp_path / "b", synthetic_npz))
    assert second["finished"] and len(second["history"]) == 3
    for a, b in zip(full["history"], second["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_accuracy"] == b["val_accuracy"]
    wa = load_file(str(tmp_path / "a" / "run" / "best.safetensors"))
    wb = load_file(str(tmp_path / "b" / "run" / "best.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)
    card = json.loads((tmp_path / "b" / "run" / "final_card.json").read_text())
    assert len(card["resumed_with"]) == 1


def test_resume_refuses_a_different_config(tmp_path, synthetic_npz):
    main(tiny_config(tmp_path, synthetic_npz, stop_after=1))
    with pytest.raises(ValueError, match="different configuration.*lr"):
        main(tiny_config(tmp_path, synthetic_npz, lr=0.2))


def test_lr_schedule():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0, abs=1e-12)
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(10, 100)]
    assert all(np.diff(lrs) <= 0)


def test_validation_carved_when_missing(tmp_path):
    from conftest import make_faces

    images, labels = make_faces(300)
    np.savez(tmp_path / "train_only.npz", images=images, label=labels, usage=np.array(["Training"] * 300))
    res = main(tiny_config(tmp_path, tmp_path / "train_only.npz", epochs=1, val_fraction=0.2))
    card = json.loads((tmp_path / "run" / "final_card.json").read_text())
    assert res["finished"] and card["data"]["rows"] == {"Training": 240, "PublicTest": 60}


def test_resume_refuses_different_data(tmp_path, synthetic_npz):
    from conftest import write_npz

    main(tiny_config(tmp_path, synthetic_npz, stop_after=1))
    other = write_npz(tmp_path / "other.npz", seed=5)
    with pytest.raises(ValueError, match="sha256 differs"):
        main(tiny_config(tmp_path, other))


def test_init_from_checkpoint_starts_from_its_weights(tmp_path, synthetic_npz):
    first = main(tiny_config(tmp_path / "a", synthetic_npz, export=str(tmp_path / "ck")))
    best_val = first["best"]["val_accuracy"]
    # zero learning rate: fine-tuning keeps the initial weights, so it scores what the checkpoint scored
    cfg = tiny_config(tmp_path / "b", synthetic_npz, epochs=1, lr=0.0, ema_decay=0.0, init_from=str(tmp_path / "ck"),
                      export=str(tmp_path / "ck2"))
    second = main(cfg)
    assert second["history"][0]["val_accuracy"] == pytest.approx(best_val)
    # The fine-tuned card keeps its parent's provenance and cost.
    parent = load_checkpoint(tmp_path / "ck").card
    lineage = load_checkpoint(tmp_path / "ck2").card["init_from"]
    assert lineage["command"] == parent["command"] and lineage["wall_time_s"] == parent["wall_time_s"]
    assert lineage["privatetest_accuracy"] == parent["metrics"]["PrivateTest"]["accuracy"]
    with pytest.raises(ValueError, match="init-from"):
        main(tiny_config(tmp_path / "c", synthetic_npz, model_args={"widths": [8], "blocks": [1], "stem": 8},
                         init_from=str(tmp_path / "ck")))
