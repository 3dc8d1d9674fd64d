import pytest
import torch
from opacus.validators import ModuleValidator

from fer_core.models.architectures import (
    ARCHITECTURES,
    PlainCNN,
    ResNet48,
    build_model,
    count_macs,
    count_parameters,
    model_arguments,
)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_shapes_and_dp_compatibility(arch):
    model = build_model(arch)
    out = model(torch.randn(3, 1, 48, 48))
    assert out.shape == (3, 7)
    ModuleValidator.validate(model, strict=True)  # raises if e.g. BatchNorm is present
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert count_parameters(model) > 100_000
    assert count_macs(model) > 10_000_000


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_eight_classes_and_gradients(arch):
    model = build_model(arch, num_classes=8)
    out = model(torch.randn(2, 1, 48, 48))
    assert out.shape == (2, 8)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_macs_known_answer():
    # One 3x3 conv 1->8 on 48x48 (no padding loss: padding=1) then a Linear 8->7 after pooling.
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 7)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    assert count_macs(Tiny()) == 48 * 48 * 8 * 9 + 8 * 7
    assert count_parameters(Tiny()) == 8 * 9 + 8 + 8 * 7 + 7


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg")
    with pytest.raises(ValueError, match="bad arguments"):
        build_model("resnet", depth=50)
    with pytest.raises(ValueError):
        ResNet48(widths=(8, 16), blocks=(1,))


def test_list_arguments_from_json_become_tuples():
    m = build_model("cnn", widths=[8, 16])
    assert isinstance(m, PlainCNN) and m(torch.randn(1, 1, 48, 48)).shape == (1, 7)


def test_model_arguments_are_complete_and_rebuild_the_same_shapes():
    args = model_arguments("resnet", widths=(8, 16), blocks=[1, 1])
    assert args["widths"] == [8, 16] and args["stem"] == 32 and args["num_classes"] == 7
    a, b = build_model("resnet", **args), build_model("resnet", widths=(8, 16), blocks=(1, 1))
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    with pytest.raises(ValueError, match="bad arguments"):
        model_arguments("cnn", depth=3)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_opacus_computes_per_sample_gradients(arch):
    # DP-SGD needs one gradient per example: Opacus's GradSampleModule must handle every layer.
    from opacus import GradSampleModule

    torch.manual_seed(0)
    model = GradSampleModule(build_model(arch), loss_reduction="sum")
    x = torch.randn(3, 1, 48, 48)
    model(x).sum().backward()
    for p in model.parameters():
        assert p.grad_sample.shape == (3, *p.shape)
    # The per-sample gradients sum to the batch gradient.
    p = next(model.parameters())
    torch.testing.assert_close(p.grad_sample.sum(0), p.grad, rtol=1e-4, atol=1e-5)
