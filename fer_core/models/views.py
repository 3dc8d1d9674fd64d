"""Several views of each face for one classifier: a face and its mirror image, scattered once."""

from __future__ import annotations

import torch
from torch import nn

#: The augmentation multiplicities :class:`MirrorViews` trains with (views per face and DP-SGD step).
MULTIPLICITIES = (1, 2)


def check_multiplicity(multiplicity: int, mirror_views: bool, model: str) -> None:
    """Refuse an augmentation multiplicity a model with (or without) ``mirror_views`` cannot train with.

    Raises:
        ValueError: ``multiplicity`` not in :data:`MULTIPLICITIES`, or above 1 without ``mirror_views`` (the views
            it counts are a face and its mirror image).
    """
    if multiplicity != 1 and not mirror_views:
        raise ValueError(f"{model}'s augmentation_multiplicity counts mirror views: set mirror_views=True")
    if multiplicity not in MULTIPLICITIES:
        raise ValueError(f"augmentation multiplicity must be 1 or 2 (a face and its mirror image), got "
                         f"{multiplicity!r}")


def mirror_views(features, x: torch.Tensor) -> torch.Tensor:
    """``features`` of faces ``x`` (``float32 (B, 1, H, W)``) and of their mirror images (horizontal flip), stacked:
    ``float32 (B, 2, ...)``, what :class:`MirrorViews` takes."""
    return torch.stack([features(x.contiguous()), features(x.flip(-1).contiguous())], 1)  # (B, 2, ...)


class MirrorViews(nn.Module):
    """A classifier over two views of each face (the face and its mirror image), sharing ``head``'s parameters.

    While the head is in training mode, with ``multiplicity`` 1 each face's logits are the head's on one view
    drawn at random (probability 1/2 each, from torch's global generator): flip augmentation of features computed
    once. With ``multiplicity`` 2 they are the mean of the head's logits on both views, the model that predicts
    (augmentation multiplicity, De et al. 2022, "Unlocking high-accuracy differentially private image
    classification through scale", here averaging logits rather than losses). The head then runs once per view on
    ``B`` rows, so Opacus's hooks sum each face's two contributions into its one per-sample gradient: DP-SGD still
    clips one gradient per face and the guarantee is unchanged, at twice the head's cost. In eval mode, the logits
    are the mean of the head's on both views (test-time augmentation).

    Args:
        head: maps ``float32 (B, C, H, W)`` features to logits ``(B, K)``.
        multiplicity: views per face in training, 1 or 2.

    Input ``float32 (B, 2, C, H, W)``; output logits ``float32 (B, K)``.

    Raises:
        ValueError: a ``multiplicity`` other than 1 or 2.
    """

    def __init__(self, head: nn.Module, multiplicity: int = 1) -> None:
        super().__init__()
        check_multiplicity(multiplicity, True, "MirrorViews")
        self.head, self.multiplicity = head, multiplicity

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        if not self.head.training:  # (the head's mode: this wrapper may be built after model.train()/eval())
            return self.head(views.flatten(0, 1)).unflatten(0, (-1, 2)).mean(1)  # (2B, K) -> (B, 2, K) -> (B, K)
        if self.multiplicity == 1:
            b = len(views)
            pick = torch.randint(0, 2, (b,))
            return self.head(views[torch.arange(b), pick])  # (B, K)
        return (self.head(views[:, 0]) + self.head(views[:, 1])) / 2  # two calls of (B, K): B rows each for Opacus
