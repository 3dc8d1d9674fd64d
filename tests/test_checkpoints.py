import json
import os

import pytest
import torch
from conftest import REPO, TINY_RESNET

from fer_core.models.architectures import build_model
from fer_core.models.checkpoint import (
    CHECKPOINT_DIR,
    CHECKPOINTS_ENV,
    CheckpointError,
    checkpoint_dir,
    list_checkpoints,
    load_checkpoint,
    read_card,
    save_checkpoint,
)


def make_card(**kw):
    card = {"name": "tiny", "arch": "resnet", "model_args": TINY_RESNET, "classes": ["a"] * 7,
            "privacy": {"private": False}}
    card.update(kw)
    return card


def test_round_trip_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet", **TINY_RESNET).eval()
    save_checkpoint(tmp_path / "ck", model, make_card())
    ck = load_checkpoint(tmp_path / "ck")
    x = torch.randn(4, 1, 48, 48)
    torch.testing.assert_close(ck.model(x), model(x))
    assert ck.card["card_version"] == 1 and ck.card["privacy"] == {"private": False}
    assert not ck.model.training and not any(p.requires_grad for p in ck.model.parameters())
    # The weights are safetensors (a JSON header), not a pickle.
    raw = (tmp_path / "ck" / "model.safetensors").read_bytes()
    assert raw[8:9] == b"{" and b"\x80\x04" not in raw[:2]
    assert list_checkpoints(tmp_path) == [tmp_path / "ck"]
    assert load_checkpoint(tmp_path / "ck" / "model.json").card["name"] == "tiny"


def test_channels_last_model_saves(tmp_path):
    model = build_model("resnet", **TINY_RESNET).to(memory_format=torch.channels_last)
    save_checkpoint(tmp_path / "ck", model, make_card())
    load_checkpoint(tmp_path / "ck")


def test_corrupt_weights(tmp_path):
    save_checkpoint(tmp_path / "ck", build_model("resnet", **TINY_RESNET), make_card())
    w = tmp_path / "ck" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "ck")
    w.write_bytes(b"\x80\x04garbage pickle")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "ck")


def test_corrupt_or_missing_card(tmp_path):
    save_checkpoint(tmp_path / "ck", build_model("resnet", **TINY_RESNET), make_card())
    (tmp_path / "ck" / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "model.json").unlink()
    with pytest.raises(CheckpointError, match="no model card"):
        read_card(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")


def test_weights_that_do_not_match_the_card(tmp_path):
    save_checkpoint(tmp_path / "ck", build_model("resnet", **TINY_RESNET), make_card())
    card = json.loads((tmp_path / "ck" / "model.json").read_text())
    card["model_args"]["widths"] = [16, 32]
    (tmp_path / "ck" / "model.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "ck")


def test_refuses_wrapped_module(tmp_path):
    wrapped = torch.nn.Sequential()
    wrapped.add_module("module", build_model("resnet", **TINY_RESNET))
    with pytest.raises(ValueError, match="unwrapped"):
        save_checkpoint(tmp_path / "ck", wrapped, make_card())


def _strings(o, where=""):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _strings(v, f"{where}[{i}]")
    elif isinstance(o, str):
        yield where, o


def test_shipped_cards_hold_no_absolute_paths():
    cards = sorted((REPO / "checkpoints").glob("*/model.json"))
    assert cards
    for card in cards:
        bad = [(w, s) for w, s in _strings(json.loads(card.read_text()))
               if s.startswith(("/", "~")) or ("://" in s and not s.startswith(("http://", "https://")))]
        assert not bad, f"{card}: {bad}"


def test_checkpoint_dir_lookup(tmp_path, monkeypatch):
    if CHECKPOINTS_ENV not in os.environ:
        assert CHECKPOINT_DIR == REPO / "checkpoints"  # a source checkout: beside the package
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path))
    assert checkpoint_dir() == tmp_path.resolve()
