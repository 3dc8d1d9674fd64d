"""The non-private reference with the private models' public pretraining (architecture ``mobilenetv2``): facex's
MobileNetV2 with every layer trainable, on faces upsampled to a smaller input, and a card that names the public
weights it started from."""

from __future__ import annotations

import pytest
import torch
from conftest import write_npz
from safetensors.torch import load_file

from fer_core.data.preprocess import to_model_input
from fer_core.models.architectures import build_model, count_macs, split_for_finetune
from fer_core.models.checkpoint import WEIGHTS_FILE, load_checkpoint, read_card
from fer_core.models.facex import FACEX_BACKBONE_DIR, FaceXBackbone, backbone_weights_path, to_facex_input
from fer_core.results.tables import public_data_text
from fer_core.training.config import TrainConfig
from fer_core.training.lifecycle import main


def _public_backbone() -> FaceXBackbone:
    backbone = FaceXBackbone()
    backbone.load_state_dict(load_file(str(backbone_weights_path(FACEX_BACKBONE_DIR))))
    return backbone.eval()


@pytest.mark.parametrize("size", [200, 96])
def test_pretrained_network_is_facexs_at_the_chosen_input_size(size):
    model = build_model("mobilenetv2", input_size=size).eval()
    faces = torch.randint(0, 256, (3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = to_model_input(faces)
    with torch.no_grad():
        want = _public_backbone().forward_taps(to_facex_input(x, size=size), ("conv_last",))["conv_last"]
        got = model.forward_features(x)
    assert want.shape[-1] == (6 if size == 200 else 3)  # the last map's side
    torch.testing.assert_close(got, want.mean((2, 3)), rtol=1e-4, atol=1e-5)
    assert model(x).shape == (3, 7)


def test_every_layer_trains_and_the_checkpoint_holds_all_of_them(tmp_path):
    model = build_model("mobilenetv2", input_size=64)
    assert all(p.requires_grad for p in model.parameters())
    x = to_model_input(torch.randint(0, 256, (4, 48, 48), dtype=torch.uint8))
    model.train()
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())  # end to end
    with pytest.raises(ValueError, match="trainable='all'"):
        split_for_finetune(model, "head")
    assert count_macs(build_model("mobilenetv2", input_size=96)) < count_macs(build_model("mobilenetv2",
                                                                                        input_size=200)) / 4


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="input_size"):
        build_model("mobilenetv2", input_size=16)
    with pytest.raises(ValueError, match="grey"):
        build_model("mobilenetv2", in_channels=3)
    with pytest.raises(FileNotFoundError, match="convert-facex"):
        build_model("mobilenetv2", pretrained="no/such/folder")
    torch.manual_seed(0)
    random = build_model("mobilenetv2", pretrained=None)
    assert not torch.equal(random.blocks[16].project.weight, _public_backbone().blocks[16].project.weight)
    assert random.provenances() == []


def test_a_plain_run_fine_tunes_every_layer_and_its_card_names_the_public_weights(tmp_path):
    npz = write_npz(tmp_path / "s.npz", n_train=64, n_val=32, n_test=16)
    cfg = TrainConfig(out=str(tmp_path / "run"), data=str(npz), export=str(tmp_path / "ck"), arch="mobilenetv2",
                      model_args={"input_size": 32}, epochs=1, batch_size=32, optimizer="adamw", lr=1e-3,
                      warmup_epochs=0.0, ema_decay=0.0, progress=False, channels_last=False)
    assert main(cfg, command="pytest")["finished"]
    card = read_card(tmp_path / "ck")
    assert not card.is_private
    (record,) = card["public_backbones"]
    assert record["package"] == "facex" and record["folder"] == f"checkpoints/{FACEX_BACKBONE_DIR}"
    assert isinstance(record["disjointness"]["auc"], float)
    text = public_data_text(card)
    assert text.startswith("Starts from public weights never trained on FER2013") and "without differential" in text
    # Every layer moved from the public weights and the checkpoint stores them all (nothing shared).
    stored = load_file(str(tmp_path / "ck" / WEIGHTS_FILE))
    assert "blocks.0.depthwise.weight" in stored and "stem.1.weight" in stored and "shared_weights" not in card
    model = load_checkpoint(tmp_path / "ck").model
    public = _public_backbone()
    assert not torch.equal(model.stem[1].weight, public.conv1.weight)
    assert not torch.equal(model.blocks[8].expand.weight, public.blocks[8].expand.weight)


def test_the_report_states_the_gap_of_the_best_public_weights_run_to_the_end_to_end_model(tmp_path):
    from fer_core import EMOTIONS
    from fer_core.models.architectures import model_arguments
    from fer_core.models.checkpoint import save_checkpoint
    from fer_core.results.files import SWEEP_COLUMNS, write_sweep
    from fer_core.results.report import end_to_end_text

    assert end_to_end_text(tmp_path, tmp_path / "none.csv") is None  # no such model shipped: no paragraph
    args = model_arguments("mobilenetv2", input_size=32)
    model = build_model("mobilenetv2", **args)
    save_checkpoint(tmp_path / "e2e", model, {
        "name": "e2e", "arch": "mobilenetv2", "model_args": args, "classes": list(EMOTIONS),
        "command": "python -m fer_core train x",
        "metrics": {"PublicTest": {"accuracy": 0.66}, "PrivateTest": {"accuracy": 0.68}},
        "public_backbones": model.provenances()})
    blank = {c: "" for c in SWEEP_COLUMNS}
    write_sweep([{**blank, "method": m, "target_epsilon": 8, "epsilon": 7.99, "publictest_accuracy": pub,
                  "privatetest_accuracy": priv, "checkpoint": ship}  # "checkpoint": export_best's choice
                 for m, pub, priv, ship in (("public-features", 0.61, 0.62, ""),
                                            ("public-finetune", 0.62, 0.615, "dp_public-finetune_eps8"),
                                            ("scatternet", 0.70, 0.70, "dp_scatternet_eps8"))], tmp_path / "sweep.csv")
    text = end_to_end_text(tmp_path, tmp_path / "sweep.csv")
    assert "`e2e` (mobilenetv2 at 32 px" in text and "PrivateTest **68.00 %**" in text
    # public-finetune is the shipped run (higher PublicTest); scatternet stands on no public weights
    assert "public-finetune at ε = 8 is 6.50 points below it" in text and "scatternet" not in text
    assert "ε = 1" not in text and "`python -m fer_core train x`" in text
