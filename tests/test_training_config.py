"""A training option is declared once: every TrainConfig field is a ``train`` flag and back; the budget
planner quotes the epsilon a private run records."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from conftest import TINY_RESNET, write_npz

from fer_core import LABEL_SETS
from fer_core.cli import build_parser
from fer_core.cli import main as cli_main
from fer_core.models.architectures import ALL_ARCHITECTURES, TRAINABLE_PARTS
from fer_core.models.checkpoint import load_checkpoint
from fer_core.privacy.accounting import ACCOUNTANTS, DP_METHODS, epsilon_for, plan_budget, sampling_plan
from fer_core.training.config import TrainConfig, config_from_arguments, flag
from fer_core.training.lifecycle import main


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest != "help"}


def test_every_config_field_has_a_train_flag_and_every_flag_maps_to_a_field():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    actions = _flags(_train_parser())
    assert set(actions) == fields
    for name, action in actions.items():
        assert flag(name) in action.option_strings, f"{name} is not spelled {flag(name)}"


def test_flag_defaults_and_choices_come_from_the_config_and_the_registries():
    actions, d = _flags(_train_parser()), TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata["json"]:
            assert actions[f.name].default == getattr(d, f.name), f.name
        assert actions[f.name].help == f.metadata["help"]
    assert actions["arch"].choices == list(ALL_ARCHITECTURES)
    assert actions["dp_method"].choices == list(DP_METHODS)
    assert actions["accountant"].choices == list(ACCOUNTANTS)
    assert actions["label_set"].choices == list(LABEL_SETS)
    assert actions["trainable"].choices == list(TRAINABLE_PARTS)


def test_parsed_flags_give_the_config():
    a = _train_parser().parse_args([
        "--batch-size", "64", "--lr", "0.5", "--no-channels-last", "--compile", "--dp-method", "dp-sgd",
        "--epsilon", "3", "--grad-sample-mode", "ew", "--val-fraction", "0.2", "--augment", '{"erase_p": 0.0}',
        "--model-args", '{"widths": [8, 16]}', "--limit-train", "100"])
    cfg = config_from_arguments(a)
    assert cfg.batch_size == 64 and cfg.lr == 0.5 and cfg.channels_last is False and cfg.compile is True
    assert cfg.dp_method == "dp-sgd" and cfg.epsilon == 3.0 and cfg.grad_sample_mode == "ew"
    assert cfg.val_fraction == 0.2 and cfg.limit_train == 100 and cfg.model_args == {"widths": [8, 16]}
    assert cfg.augment == {**TrainConfig().augment, "erase_p": 0.0}
    assert config_from_arguments(_train_parser().parse_args([])) == TrainConfig()
    assert config_from_arguments(_train_parser().parse_args(["--augment", "off"])).augment == {}


def test_bad_json_flags_are_one_line_errors(capsys):
    assert cli_main(["train", "--augment", "{nope"]) == 2
    assert "--augment is not valid JSON" in capsys.readouterr().err
    assert cli_main(["train", "--augment", '{"spin": 1}']) == 2
    assert "unknown --augment key" in capsys.readouterr().err
    assert cli_main(["train", "--model-args", "[1, 2]"]) == 2
    assert "--model-args must be a JSON object" in capsys.readouterr().err


def test_sampling_plan_is_opacus_poisson_loader():
    plan = sampling_plan(250, 60, 2)  # ceil(250 / 60) = 5 batches per epoch
    assert plan.sample_rate == pytest.approx(1 / 5) and plan.steps_per_epoch == 5 and plan.steps == 10


def test_planner_epsilon_equals_the_epsilon_a_private_run_records(tmp_path):
    # N = 250 rows, batch 60: a batch that does not divide N, where q = b/N and e * floor(N/b) steps
    # (the old planner) would give another epsilon than the run's q = 1/ceil(N/b), e * ceil(N/b).
    n, batch, epochs, sigma, delta = 250, 60, 2, 1.3, 1e-3
    npz = write_npz(tmp_path / "s.npz", n_train=n, n_val=64, n_test=64)
    cfg = TrainConfig(out=str(tmp_path / "run"), data=str(npz), arch="resnet", model_args=TINY_RESNET,
                      epochs=epochs, batch_size=batch, lr=0.1, warmup_epochs=0, ema_decay=0, augment={},
                      channels_last=False, progress=False, dp_method="dp-sgd", noise_multiplier=sigma,
                      delta=delta, accountant="rdp", physical_batch_size=64, export=str(tmp_path / "ck"))
    res = main(cfg)
    recorded = load_checkpoint(tmp_path / "ck").card.privacy
    planned = plan_budget(n, batch, epochs, delta, accountant="rdp", noise_multiplier=sigma)
    assert planned["sample_rate"] == pytest.approx(recorded["sample_rate"], rel=1e-12)
    assert planned["steps"] == recorded["steps"]
    assert planned["epsilon"] == pytest.approx(res["epsilon"], rel=1e-9)
    assert planned["epsilon"] == pytest.approx(recorded["epsilon"], abs=1e-4)  # the card rounds to 4 places
    old = epsilon_for(sigma, batch / n, epochs * (n // batch), delta, "rdp")
    assert abs(old - res["epsilon"]) > 0.01, "the test must tell the two formulas apart"
