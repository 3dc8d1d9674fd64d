"""Emotion classifiers for 48x48 grayscale faces, DP-compatible by default (GroupNorm, not BatchNorm).

Three architectures:

* :class:`PlainCNN` - VGG-style conv blocks with max-pooling and dropout (Simonyan & Zisserman 2015;
  the usual FER2013 baseline, e.g. Pramerdorfer & Kampel 2016).
* :class:`ResNet48` - a residual network for 48x48 input (He et al. 2016) with GroupNorm
  (Wu & He 2018) so that per-sample gradients exist for DP-SGD.
* :class:`FusionNet` - a CNN branch and a ResNet branch run side by side on the same face; their
  pooled features are concatenated before the classifier.

And, for differentially private training, :class:`ScatterNet`: fixed (data-independent) wavelet
scattering features (Oyallon & Mallat 2015, via ``kymatio``) with a small trainable CNN on top,
as in Tramer & Boneh 2021, "Differentially Private Learning Needs Better Features", and
:class:`fer_core.models.facex.FaceXNet` (``facex``): a linear head on the frozen features of a public
MobileNetV2 emotion net (the ``facex`` wheel's, never trained on FER2013), whose only trainable part is the head;
and their non-private reference, :class:`fer_core.models.mobilenet.MobileNetV2` (``mobilenetv2``): the same network
with every layer fine-tuned.

Every model maps ``float32 (B, 1, 48, 48)`` (normalised by :func:`fer_core.data.preprocess.to_model_input`)
to logits ``float32 (B, num_classes)``; global average pooling makes them accept other sizes too.
``opacus.validators.ModuleValidator.validate(model, strict=True)`` passes for each, except a
:class:`ResNet48` built with ``norm="batch"``: BatchNorm mixes the samples of a batch, so it has no
per-sample gradients and is refused by private training; it serves non-private models whose speed
matters (the distilled student: at inference BatchNorm folds into the convolution before it).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from fer_core.models.facex import FaceXNet, FeatureStandardiser, tensor_digest
from fer_core.models.facex_parts import FaceXFeatures, FaceXTrunk, FaceXTunedTail
from fer_core.models.mobilenet import MobileNetV2
from fer_core.models.views import MirrorViews, check_multiplicity, mirror_views

ARCHITECTURES = ("cnn", "resnet", "fusion")  # the three compared on the same budget
DP_ARCHITECTURES = ("scatternet", "facex")  # meant for private training (facex: a head on public features)
TRAINABLE_PARTS = ("all", "head", "last-block")
NORMS = ("group", "batch")  # ResNet48's normalisation: "group" is DP-compatible, "batch" is not
SCATTER_NORMS = ("group", "publictest")  # ScatterNet's input normalisation (see its docstring)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 8 channels per group (at most 32 groups): BatchNorm's DP-safe replacement."""
    return nn.GroupNorm(num_groups=max(1, min(32, channels // 8)), num_channels=channels)


def norm_layer(channels: int, norm: str = "group") -> nn.Module:
    """The normalisation of ``channels`` feature maps: :func:`group_norm` or ``BatchNorm2d`` (see :data:`NORMS`).

    Raises:
        ValueError: an unknown ``norm``.
    """
    if norm == "group":
        return group_norm(channels)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


def conv_gn_relu(c_in: int, c_out: int, stride: int = 1, norm: str = "group") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        norm_layer(c_out, norm),
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
    """ResNet basic block (two 3x3 convs) with GroupNorm (or BatchNorm) and a 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: str = "group") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.gn1 = norm_layer(c_out, norm)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.gn2 = norm_layer(c_out, norm)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), norm_layer(c_out, norm)
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
        norm: ``"group"`` (GroupNorm: DP-compatible, the default) or ``"batch"`` (BatchNorm: non-private
            models only; folded into the convolutions at inference, hence faster).
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 1, 2, 1),
        stem: int = 32,
        dropout: float = 0.2,
        num_classes: int = 7,
        in_channels: int = 1,
        norm: str = "group",
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"widths {widths} and blocks {blocks} must have the same length")
        norm_layer(1, norm)  # an unknown norm fails here, before any layer is built
        self.norm = norm
        self.stem = conv_gn_relu(in_channels, stem, norm=norm)
        stages: list[nn.Module] = []
        c = stem
        for w, n in zip(widths, blocks, strict=True):
            stage = [BasicBlock(c, w, stride=2, norm=norm)] + [BasicBlock(w, w, norm=norm) for _ in range(n - 1)]
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


class ScatterNet(nn.Module):
    """Wavelet scattering front-end (fixed, no parameters) + a small GroupNorm CNN.

    The scattering transform (Bruna & Mallat 2013; ``kymatio``'s ``Scattering2D``, J=2, L=8)
    maps a ``(B, 1, 48, 48)`` face to ``(B, 81, 12, 12)`` translation-stable wavelet-modulus
    coefficients that depend on no data, so precomputing them costs no privacy. Tramer & Boneh
    (2021) showed that DP-SGD on such features beats end-to-end DP-SGD at small epsilon.

    Args:
        J: scattering scales (output grid = 48 / 2**J); L: orientations per scale.
        width: channels of the two conv layers of the CNN head.
        head: ``"cnn"`` (two conv layers, as Tramer & Boneh's ScatterNet+CNN) or ``"linear"``
            (a linear classifier on the normalised coefficients: ScatterNet+linear).
        num_classes: output classes (7 for FER2013).
        in_channels: must be 1 (grayscale).
        input_norm: how the coefficients are normalised before the head: ``"group"`` (GroupNorm in groups
            of 3 channels, no affine: depends on no data) or ``"publictest"`` (per-channel standardisation
            with fixed buffers, set from the selection split's coefficients before training; Tramer &
            Boneh's data normalisation without spending privacy on it: see :class:`FeatureStandardiser`).
        mirror_views: scatter each face and its mirror image (horizontal flip): the CNN head trains on one of the
            two views per face and step, drawn at random (flip augmentation of precomputed features), and predicts
            the mean of its logits on both (test-time augmentation, e.g. Simonyan & Zisserman 2015); see
            :class:`MirrorViews`. Twice the scattering per face at inference.
        augmentation_multiplicity: with ``mirror_views``, 2 trains the head on the mean of its logits on both
            views (twice the head's cost per step; :class:`MirrorViews`), 1 on one view drawn at random.

    Raises:
        ValueError: ``in_channels`` other than 1, an unknown ``head`` or ``input_norm``, an
            ``augmentation_multiplicity`` other than 1 or 2 or above 1 without ``mirror_views``.
    """

    def __init__(self, J: int = 2, L: int = 8, width: int = 64, head: str = "cnn", num_classes: int = 7,
                 in_channels: int = 1, input_norm: str = "group", mirror_views: bool = False,
                 augmentation_multiplicity: int = 1) -> None:
        super().__init__()
        check_multiplicity(augmentation_multiplicity, mirror_views, "ScatterNet")
        if in_channels != 1:
            raise ValueError("ScatterNet takes grayscale faces (in_channels=1)")
        if head not in ("cnn", "linear"):
            raise ValueError(f"ScatterNet head must be 'cnn' or 'linear', got {head!r}")
        if input_norm not in SCATTER_NORMS:
            raise ValueError(f"ScatterNet input_norm must be one of {', '.join(SCATTER_NORMS)}, got {input_norm!r}")
        # Only the 2-D frontend: `import kymatio.torch` fails with scipy >= 1.15 (kymatio 0.3.0).
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D  # heavy; ScatterNet only

        self.scattering = ScatteringTorch2D(J=J, shape=(48, 48), L=L)
        for name, buf in list(self.scattering.named_buffers()):  # rebuilt on construction: not saved
            self.scattering.register_buffer(name, buf, persistent=False)
        channels = 1 + J * L + L * L * J * (J - 1) // 2  # 81 for J=2, L=8
        grid = 48 // 2**J  # 12
        if input_norm == "group":  # data-independent normalisation of the coefficients (no learnt affine)
            norm = nn.GroupNorm(num_groups=27 if channels % 27 == 0 else 1, num_channels=channels, affine=False)
        else:  # per channel, buffers from public statistics (the training loop sets them)
            norm = FeatureStandardiser(channels, per_channel=True)
        if head == "linear":
            self.head = nn.Sequential(norm, nn.Flatten(), nn.Linear(channels * grid * grid, num_classes))
        else:
            self.head = nn.Sequential(
                norm,
                nn.Conv2d(channels, width, 3, padding=1), group_norm(width), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 6, 6)
                nn.Conv2d(width, width, 3, padding=1), group_norm(width), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 3, 3)
                nn.Flatten(), nn.Linear(width * (grid // 4) ** 2, num_classes),
            )
        self.feature_channels = channels
        self.mirror_views, self.augmentation_multiplicity = mirror_views, augmentation_multiplicity

    @property
    def classifier(self) -> nn.Module:
        """What takes :meth:`scatter`'s output: the head, or with ``mirror_views`` the head over both views
        (:class:`MirrorViews`, no parameters or buffers of its own: the state dict stays the head's)."""
        return MirrorViews(self.head, self.augmentation_multiplicity) if self.mirror_views else self.head

    def scatter(self, x: torch.Tensor) -> torch.Tensor:
        """``float32 (B, 1, 48, 48)`` -> scattering coefficients ``float32 (B, 81, 12, 12)``, or with
        ``mirror_views`` those of the face and of its mirror image, ``float32 (B, 2, 81, 12, 12)``."""
        def scatter(faces: torch.Tensor) -> torch.Tensor:
            return self.scattering(faces.contiguous()).flatten(1, 2)  # (B, 81, 12, 12)

        return mirror_views(scatter, x) if self.mirror_views else scatter(x)  # (B, [2,] 81, 12, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.scatter(x))  # (B, num_classes)


class _Scatter(nn.Module):
    def __init__(self, model: ScatterNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.scatter(x)

    def feature_identity(self) -> dict:
        """What the outputs depend on besides the faces (the scattering has no weights): J, L and whether the
        mirror image is scattered too."""
        sc = self.model.scattering
        return {"prefix": "scattering", "J": sc.J, "L": sc.L, "mirror_views": self.model.mirror_views}


class _ResNetTrunk(nn.Module):
    """The first ``upto`` parts of a :class:`ResNet48` (stem, then stages), or all of it pooled."""

    def __init__(self, model: ResNet48, stages: int, pooled: bool) -> None:
        super().__init__()
        self.model, self.stages, self.pooled = model, stages, pooled

    def feature_identity(self) -> dict:
        """What the outputs depend on besides the faces: the weights of the stem and of the stages used."""
        used = nn.ModuleList([self.model.stem, *self.model.stages[: self.stages]])
        return {"prefix": "resnet-trunk", "stages": self.stages, "pooled": self.pooled,
                "weights_sha256": tensor_digest(used)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooled:
            return self.model.forward_features(x)  # (B, C)
        x = self.model.stem(x)
        for stage in self.model.stages[: self.stages]:
            x = stage(x)
        return x  # (B, C, H, W)


def split_for_finetune(model: nn.Module, trainable: str) -> tuple[nn.Module, nn.Module]:
    """Split ``model`` into a frozen prefix and a trainable tail with ``tail(prefix(x)) == model(x)``.

    Both parts share the model's parameters (nothing is copied), so training the tail trains the
    model. Used by private training: the prefix is data-independent (ScatterNet's scattering) or
    trained on public rows only (two-stage), so its outputs can be precomputed once and DP-SGD
    only pays for the tail's per-sample gradients.

    Args:
        model: a built model (:class:`ResNet48`, :class:`ScatterNet`, :class:`~fer_core.models.facex.FaceXNet`
            (``"head"``; with ``finetune_blocks`` ``"last-block"``: its copies of facex's last blocks + the head on
            the cached trunk, :mod:`fer_core.models.facex_parts`); ``trainable="all"`` for the others).
        trainable: ``"all"`` (prefix is the identity; for ScatterNet the scattering, which has no
            parameters), ``"head"`` (the final classifier) or ``"last-block"`` (ResNet48's last
            stage + classifier; ScatterNet's CNN head).

    Returns:
        ``(prefix, tail)``; prefix outputs are what the tail takes.

    Raises:
        ValueError: an unknown ``trainable`` or one the architecture does not support.
    """
    if trainable not in TRAINABLE_PARTS:
        raise ValueError(f"unknown trainable part {trainable!r}; choose one of {', '.join(TRAINABLE_PARTS)}")
    if isinstance(model, ScatterNet):  # the scattering has no parameters: "all" is the CNN head
        if trainable == "head":
            raise ValueError("ScatterNet's trainable part is its CNN head: use trainable='all' or 'last-block'")
        return _Scatter(model), model.classifier
    if isinstance(model, FaceXNet):  # the public backbone stays frozen: the head, or with it copies of its last blocks
        if trainable == "last-block" and model.finetune_blocks:
            return FaceXTrunk(model), FaceXTunedTail(model)
        if trainable == "head" and not model.finetune_blocks:
            return FaceXFeatures(model), model.classifier
        raise ValueError("facex trains its head on the frozen public backbone (trainable='head'), or with "
                         "--model-args '{\"finetune_blocks\": N}' its own copies of the last N blocks too "
                         f"(trainable='last-block'); got trainable={trainable!r} with "
                         f"finetune_blocks={model.finetune_blocks}")
    if trainable == "all":
        return nn.Identity(), model
    if isinstance(model, ResNet48):
        if trainable == "head":
            return _ResNetTrunk(model, len(model.stages), pooled=True), nn.Sequential(model.dropout, model.fc)
        tail = nn.Sequential(model.stages[-1], model.pool, nn.Flatten(), model.dropout, model.fc)
        return _ResNetTrunk(model, len(model.stages) - 1, pooled=False), tail
    raise ValueError(f"{type(model).__name__} supports only trainable='all'")


_REGISTRY: dict[str, type[nn.Module]] = {
    "cnn": PlainCNN, "resnet": ResNet48, "fusion": FusionNet, "scatternet": ScatterNet, "facex": FaceXNet,
    "mobilenetv2": MobileNetV2,
}
#: Every architecture :func:`build_model` knows (the ``--arch`` choices).
ALL_ARCHITECTURES: tuple[str, ...] = tuple(_REGISTRY)


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """Instantiate an architecture by name (``cnn``, ``resnet``, ``fusion``, ``scatternet``) with its arguments.

    List-valued arguments (as read back from JSON) are turned into tuples.

    Raises:
        ValueError: unknown ``arch`` or arguments the class does not take.
    """
    if arch not in _REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(_REGISTRY)}")
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
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(_REGISTRY)}")
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
