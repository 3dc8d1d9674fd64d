"""The one preprocessing function shared by training, evaluation and inference.

A face is a ``uint8`` grayscale image of 48x48 pixels (grey levels 0-255). The model sees
``float32 (B, 1, 48, 48)`` with ``(x / 255 - mean) / std``; ``mean`` and ``std`` are stored in
every model card's ``preprocessing`` block so that inference reproduces training exactly.
"""

from __future__ import annotations

import numpy as np
import torch

MEAN = 0.5
STD = 0.25
IMAGE_SIZE = 48


def preprocessing_spec(mean: float = MEAN, std: float = STD) -> dict:
    """The ``preprocessing`` block of a model card."""
    return {
        "input": "grayscale face crop, uint8 0-255",
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "resize": "cv2.INTER_AREA to 48x48 when the crop has another size",
        "scale": 1.0 / 255.0,
        "mean": mean,
        "std": std,
        "formula": "(x / 255 - mean) / std",
    }


def to_model_input(
    images: np.ndarray | torch.Tensor, mean: float = MEAN, std: float = STD
) -> torch.Tensor:
    """Normalise faces for the model.

    Args:
        images: ``uint8`` ``(B, 48, 48)`` or ``(48, 48)`` (numpy or torch), grey levels 0-255.
        mean, std: normalisation constants, from the model card's ``preprocessing`` block.

    Returns:
        ``float32`` tensor ``(B, 1, 48, 48)``, roughly in [-2, 2].

    Raises:
        ValueError: wrong dtype or shape.
    """
    t = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
    if t.dtype != torch.uint8:
        raise ValueError(f"faces must be uint8 grey levels 0-255, got dtype {t.dtype}")
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise ValueError(f"faces must have shape (B, H, W) or (H, W), got {tuple(t.shape)}")
    x = t.unsqueeze(1).to(torch.float32)  # (B, 1, H, W)
    return (x * (1.0 / 255.0) - mean) / std
