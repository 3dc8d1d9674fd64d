"""Batched data augmentation on tensors (plain torch ops; torchvision does not import with CPU torch).

All functions take and return normalised ``float32 (B, 1, H, W)`` batches and draw their randomness
from an explicit :class:`torch.Generator`, so a resumed run reproduces the same augmentations.

Recipe (common for FER2013, e.g. Pramerdorfer & Kampel 2016; Khaireddin & Chen 2021): random affine
(rotation, scale, shift), horizontal flip, brightness/contrast jitter, random erasing
(Zhong et al. 2020, "Random Erasing Data Augmentation").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of each augmentation; 0 switches one off."""

    rotation_deg: float = 15.0
    scale: float = 0.1  # zoom factor drawn from [1 - scale, 1 + scale]
    shift: float = 0.1  # fraction of the image size, each axis
    flip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.1  # additive shift, as a share of the 0-255 range
    contrast: float = 0.2  # multiplicative factor from [1 - c, 1 + c]
    erase_p: float = 0.5  # probability of one erased rectangle
    erase_area: tuple[float, float] = (0.02, 0.2)  # erased share of the image


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Augment a normalised batch.

    Args:
        x: ``float32 (B, 1, H, W)`` normalised faces (see :func:`fer_core.data.preprocess.to_model_input`).
        cfg: strengths.
        g: CPU random generator.

    Returns:
        A new ``float32 (B, 1, H, W)`` tensor; ``x`` is not modified.
    """
    b, _, h, w = x.shape
    angle = _uniform(b, -cfg.rotation_deg, cfg.rotation_deg, g) * (math.pi / 180.0)
    zoom = _uniform(b, 1.0 - cfg.scale, 1.0 + cfg.scale, g)
    tx = _uniform(b, -cfg.shift, cfg.shift, g) * 2.0
    ty = _uniform(b, -cfg.shift, cfg.shift, g) * 2.0
    flip = torch.where(torch.rand(b, generator=g) < cfg.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )  # (B, 2, 3): output -> input sampling grid
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bg = x.amin(dim=(1, 2, 3), keepdim=True)
    out = F.grid_sample(x - bg, grid, mode="bilinear", padding_mode="border", align_corners=False) + bg
    if cfg.contrast or cfg.brightness:
        c = _uniform(b, 1.0 - cfg.contrast, 1.0 + cfg.contrast, g).view(b, 1, 1, 1)
        br = _uniform(b, -cfg.brightness, cfg.brightness, g).view(b, 1, 1, 1) * 4.0
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * c + mean + br
    if cfg.erase_p > 0:
        area = _uniform(b, *cfg.erase_area, g) * h * w
        aspect = torch.exp(_uniform(b, math.log(0.3), math.log(3.3), g))
        eh = (area * aspect).sqrt().clamp(1, h).long()
        ew = (area / aspect).sqrt().clamp(1, w).long()
        y0 = (torch.rand(b, generator=g) * (h - eh + 1)).long()
        x0 = (torch.rand(b, generator=g) * (w - ew + 1)).long()
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        box = (
            (rows >= y0.view(b, 1, 1)) & (rows < (y0 + eh).view(b, 1, 1))
            & (cols >= x0.view(b, 1, 1)) & (cols < (x0 + ew).view(b, 1, 1))
        )
        active = (torch.rand(b, generator=g) < cfg.erase_p).view(b, 1, 1)
        noise = torch.randn(b, h, w, generator=g)
        out = torch.where((box & active).unsqueeze(1), noise.unsqueeze(1), out)
    return out
