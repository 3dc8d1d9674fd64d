"""Emotion classifiers for 48x48 grayscale faces, all DP-compatible (GroupNorm, never BatchNorm).

Three architectures:

* :class:`PlainCNN` - VGG-style conv blocks with max-pooling and dropout (Simonyan & Zisserman 2015;
  the usual FER2013 baseline, e.g. Pramerdorfer & Kampel 2016).
* :class:`ResNet48` - a residual network for 48x48 input (He et al. 2016) with GroupNorm
  (Wu & He 2018) so that per-sample gradients exist for DP-SGD.
* :class:`FusionNet` - a CNN branch and a ResNet branch run side by side on the same face; their
  pooled features are concatenated before the classifier.

Every model maps ``float32 (B, 1, 48, 48)`` (normalised by :func:`fer_core.preprocess.to_model_input`)
to logits ``float32 (B, num_classes)``; global average pooling makes them accept other sizes too.
``opacus.validators.ModuleValidator.validate(model, strict=True)`` passes for each.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("cnn", "resnet", "fusion")


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 8 channels per group (at most 32 groups): BatchNorm's DP-safe replacement."""
    return nn.GroupNorm(num_groups=max(1, min(32, channels // 8)), num_channels=channels)


def conv_gn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        group_norm(c_out),
        nn.ReLU(),
    )


class PlainCNN(nn.Module):
    """VGG-style CNN: per stage two 3x3 conv-GN-ReLU layers, 2x2 max-pool and dropout.

    Args:
        widths: channels of each stage; stage ``i`` works on a ``48 / 2**i`` grid.
        dropout: dropout after each stage and before the classifier, in [0, 1).
        hidden: units of the fully connected layer before the classifier.
        num_classes: output classes (7 for FER2013).
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (24, 48, 96, 192),
        dropout: float = 0.25,
        hidden: int = 256,
        num_classes: int = 7,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [conv_gn_relu(c, w), conv_gn_relu(w, w), nn.MaxPool2d(2), nn.Dropout(dropout)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self.feature_dim = c

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 192, 3, 3) for 48x48 input and 4 stages
        return self.pool(x).flatten(1)  # (B, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, 3, 3)
        return self.head(self.pool(x))  # (B, num_classes)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with GroupNorm and a 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.gn1 = group_norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.gn2 = group_norm(c_out)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), group_norm(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.gn1(self.conv1(x)))  # (B, c_out, H/stride, W/stride)
        out = self.gn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet48(nn.Module):
    """ResNet for 48x48 faces: a 3x3 stem at full resolution, then stages that each halve the grid.

    Args:
        widths: channels per stage; with 4 stages the blocks run on 24x24, 12x12, 6x6 and 3x3 grids.
        blocks: basic blocks per stage (same length as ``widths``).
        stem: channels of the stem convolution (on the 48x48 grid).
        dropout: dropout before the classifier, in [0, 1).
        num_classes: output classes (7 for FER2013).
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 1, 2, 1),
        stem: int = 32,
        dropout: float = 0.2,
        num_classes: int = 7,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"widths {widths} and blocks {blocks} must have the same length")
        self.stem = conv_gn_relu(in_channels, stem)
        stages: list[nn.Module] = []
        c = stem
        for w, n in zip(widths, blocks, strict=True):
            stage = [BasicBlock(c, w, stride=2)] + [BasicBlock(w, w) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            c = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        self.feature_dim = c

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 32, 48, 48)
        x = self.stages(x)  # (B, 256, 3, 3) with 4 stages
        return self.pool(x).flatten(1)  # (B, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))  # (B, num_classes)


class FusionNet(nn.Module):
    """CNN + ResNet fusion: two branches on the same face, pooled features concatenated.

    Args:
        cnn_widths: stage widths of the :class:`PlainCNN` branch.
        resnet_widths, resnet_blocks, stem: the :class:`ResNet48` branch.
        dropout: dropout in the branches and before the classifier.
        num_classes: output classes (7 for FER2013).
    """

    def __init__(
        self,
        cnn_widths: tuple[int, ...] = (16, 32, 64, 128),
        resnet_widths: tuple[int, ...] = (24, 48, 96, 192),
        resnet_blocks: tuple[int, ...] = (1, 1, 1, 1),
        stem: int = 16,
        dropout: float = 0.25,
        num_classes: int = 7,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.cnn = PlainCNN(cnn_widths, dropout=dropout, num_classes=num_classes, in_channels=in_channels)
        self.resnet = ResNet48(
            resnet_widths, resnet_blocks, stem=stem, dropout=dropout, num_classes=num_classes,
            in_channels=in_channels,
        )
        self.cnn.head = nn.Identity()  # only the branches' features are used
        self.resnet.fc = nn.Identity()
        fused = self.cnn.feature_dim + self.resnet.feature_dim
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(fused, 256), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )
        self.feature_dim = fused

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        a = self.cnn.forward_features(x)  # (B, 128)
        b = self.resnet.forward_features(x)  # (B, 192)
        return torch.cat([a, b], dim=1)  # (B, 320)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))  # (B, num_classes)


_REGISTRY: dict[str, type[nn.Module]] = {"cnn": PlainCNN, "resnet": ResNet48, "fusion": FusionNet}


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """Instantiate an architecture by name (``cnn``, ``resnet`` or ``fusion``) with its arguments.

    List-valued arguments (as read back from JSON) are turned into tuples.

    Raises:
        ValueError: unknown ``arch`` or arguments the class does not take.
    """
    if arch not in _REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return _REGISTRY[arch](**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for architecture {arch!r}: {exc}") from exc


def model_arguments(arch: str, **kwargs: Any) -> dict:
    """Every constructor argument of ``arch`` (given ones, then defaults), JSON-ready (tuples as lists).

    Stored in model cards so that a checkpoint rebuilds the same module even if defaults change.

    Raises:
        ValueError: unknown ``arch`` or arguments the class does not take.
    """
    if arch not in _REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    try:
        bound = inspect.signature(_REGISTRY[arch]).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for architecture {arch!r}: {exc}") from exc
    bound.apply_defaults()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in bound.arguments.items()}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, int, int] = (1, 48, 48)) -> int:
    """Multiply-accumulates of one forward pass on one image of ``input_size`` (C, H, W).

    Counts Conv2d (``out_elements * in_channels/groups * kh * kw``) and Linear (``in * out``)
    layers, measured with forward hooks; normalisation, activations and pooling are ignored
    (they are a few percent).
    """
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)
