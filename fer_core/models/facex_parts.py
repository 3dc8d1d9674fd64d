"""The parts :func:`fer_core.models.architectures.split_for_finetune` makes of a
:class:`~fer_core.models.facex.FaceXNet`: a frozen prefix whose outputs are cached on disk
(:mod:`fer_core.training.features`) and the trainable tail DP-SGD trains on them.

* ``trainable="head"``: :class:`FaceXFeatures` (the pooled features of the public backbones) and the linear head.
* ``trainable="last-block"`` (a model with ``finetune_blocks``): :class:`FaceXTrunk` (the public backbone up to the
  fine-tuned blocks: the pooled taps before them and the map they start from, plus SFace's pooled features) and
  :class:`FaceXTunedTail` (the model's own copies of facex's last blocks, then the head). The prefix depends on the
  public weights only, so its cache is shared by every run and epsilon; DP-SGD's per-sample gradients are paid for
  the tuned blocks and the head alone.
"""

from __future__ import annotations

import torch
from torch import nn

from fer_core.models.facex import FaceXNet, join_tuned, tap_channels, tap_size, tensor_digest


class FaceXFeatures(nn.Module):
    """The frozen prefix of a :class:`~fer_core.models.facex.FaceXNet` (its features, not a copy): model input
    ``float32 (B, 1, 48, 48)`` -> ``float32 (B, D)``.

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


class FaceXTrunk(nn.Module):
    """The frozen prefix of a :class:`~fer_core.models.facex.FaceXNet` with ``finetune_blocks`` (not a copy):
    model input ``float32 (B, 1, 48, 48)`` -> ``float32 (B, D_frozen + C*H*W [+ D_sface])``, the pooled facex taps
    before the fine-tuned blocks, the flattened map those blocks start from (``model.trunk_tap``, e.g. block 13's
    projection: 160 x 6 x 6 = 5,760 values) and SFace's pooled features, which :class:`FaceXTunedTail` takes apart.
    Cached per backbone like :class:`FaceXFeatures` (SFace's part is the same cache)."""

    def __init__(self, model: FaceXNet, part: str | None = None) -> None:
        super().__init__()
        self.model, self.part = model, part

    def cache_identity(self) -> dict:
        """What the outputs depend on besides the faces: the public backbone's weights (sha256), the frozen taps, the
        pooling and the trunk map (not the fine-tuned copies: they are the tail's)."""
        m = self.model
        if self.part == "sface":
            return FaceXFeatures(m, "sface").cache_identity()
        identity = {"arch": "facex", "backbone_sha256": tensor_digest(m.backbone), "features": list(m.frozen_features),
                    "pool": m.pool, "trunk": m.trunk_tap}
        if self.part is None and m.sface_features:
            identity["sface"] = FaceXFeatures(m, "sface").cache_identity()
        return identity

    def parts(self) -> list[nn.Module]:
        """facex's trunk and SFace's features, each cached apart; concatenated they are this prefix's output."""
        if self.part is not None or not self.model.sface_features:
            return [self]
        return [FaceXTrunk(self.model, "facex"), FaceXFeatures(self.model, "sface")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.part == "sface":
            return m.extract_sface(x)  # (B, D_sface)
        frozen, trunk = m.extract_trunk(x)  # (B, D_frozen), (B, C, H, W)
        out = torch.cat([frozen, trunk.flatten(1)], 1)  # (B, D_frozen + C*H*W)
        if self.part is None and m.sface_features:
            out = torch.cat([out, m.extract_sface(x)], 1)  # (B, D_frozen + C*H*W + D_sface)
        return out


class FaceXTunedTail(nn.Module):
    """What DP-SGD trains of a :class:`~fer_core.models.facex.FaceXNet` with ``finetune_blocks``: its copies of
    facex's last blocks (``model.tuned``) and its head, shared with the model (training the tail trains the model).

    Input: :class:`FaceXTrunk`'s output ``float32 (B, D_frozen + C*H*W [+ D_sface])``; output logits
    ``float32 (B, num_classes)``. :meth:`head_input` is the head's input, ``float32 (B, feature_dim)``, what the
    standardiser's public statistics are taken over.
    """

    def __init__(self, model: FaceXNet) -> None:
        super().__init__()
        self.tuned, self.head = model.tuned, model.head
        self._trainable = [*model.tuned_parameters(), *model.head.parameters()]
        self.first, self.features, self.pool = model.first_tuned, model.features, model.pool
        c, side = tap_channels(model.trunk_tap), tap_size(model.trunk_tap)
        self.trunk_shape = (c, side, side)
        self.frozen_dim = sum(tap_channels(f) for f in model.frozen_features) * model.pool * model.pool
        self.trunk_dim = c * side * side

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What DP-SGD trains: the tuned blocks' parameters (all, or their biases: ``finetune_params``) and the
        head's; the rest of the tail stays as the public weights left it."""
        return list(self._trainable)

    def head_input(self, z: torch.Tensor) -> torch.Tensor:
        """The trunk's output ``float32 (B, D_in)`` -> the head's input ``float32 (B, feature_dim)``."""
        frozen, trunk, rest = z.split([self.frozen_dim, self.trunk_dim, z.shape[1] - self.frozen_dim - self.trunk_dim],
                                      1)
        facex = join_tuned(self.tuned, self.first, self.features, self.pool, frozen,
                           trunk.unflatten(1, self.trunk_shape))  # (B, D_facex)
        return torch.cat([facex, rest], 1)  # (B, D_facex + D_sface)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_input(z))  # (B, num_classes)
