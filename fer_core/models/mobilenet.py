"""MobileNetV2 fine-tuned end to end (architecture ``mobilenetv2``): every layer of a public backbone trains.

The non-private reference for the private models that stand on facex's public weights (issue #15, item 5): the
same public pretraining -- facex's MobileNetV2 (Sandler et al. 2018) trained by its author on AffectNet, JAFFE,
CK+ and web images, never on FER2013 (:mod:`fer_core.models.facex`) -- but with every layer, not only a head or
the last blocks, fine-tuned on FER2013's Training split without differential privacy. Its gap to the private
``public-features``/``public-finetune`` models is what privacy costs on these features (the Privacy trade-off
page draws it beside the FER2013-only baseline).

The network is facex's (BN folded into the convolutions, so no normalisation layers: every layer is a
``Conv2d``, ``ReLU6``, ``ZeroPad2d`` or ``Linear``), run on a smaller input than facex's 200x200: the project's
48x48 faces upsampled to ``input_size`` (96 px by default: the 48x48 face upsampled exactly 2x, ~4.1x fewer
multiply-accumulates than 200 px), then global average pooling of the last 1x1 convolution's 1280 channels,
dropout and a new linear classifier (facex's own head is position-specific over its 6x6 map and does not
transfer: summed over positions onto the pooled map it is near chance on PublicTest, in a hand check).
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from torch import nn

from fer_core.models.facex import (
    FACEX_BACKBONE_DIR,
    FaceXBackbone,
    backbone_weights_path,
    provenance_record,
    to_facex_input,
)

#: Smallest input side: five stride-2 layers bring 32 px to a 1x1 map.
MIN_INPUT_SIZE = 32


class MobileNetV2(nn.Module):
    """facex's MobileNetV2 with every layer trainable, on faces upsampled to ``input_size`` (architecture
    ``mobilenetv2``).

    Args:
        num_classes: output classes (7 for FER2013).
        input_size: side in pixels the 48x48 face is resized to (bilinear) before the network; at least
            :data:`MIN_INPUT_SIZE`. 96 gives a 3x3 last map, 200 (facex's own) 6x6.
        pretrained: folder of facex's converted weights to start from (relative to ``checkpoints/`` or absolute;
            :func:`fer_core.models.facex_tflite.convert_facex`), or None for a random initialisation (tests, or
            the ablation "no public pretraining").
        dropout: dropout probability before the classifier.
        in_channels: must be 1 (grey faces; the grey channel is repeated into facex's RGB input).

    Input ``float32 (B, 1, 48, 48)`` normalised as :func:`fer_core.data.preprocess.to_model_input` (other sides
    work too: the face is resized to ``input_size``); output logits ``float32 (B, num_classes)``.

    Raises:
        FileNotFoundError: ``pretrained`` names a folder without converted weights (the message says how to make
            them).
        ValueError: ``in_channels`` != 1, or ``input_size`` below :data:`MIN_INPUT_SIZE`.
    """

    def __init__(self, num_classes: int = 7, input_size: int = 96, pretrained: str | None = FACEX_BACKBONE_DIR,
                 dropout: float = 0.2, in_channels: int = 1) -> None:
        super().__init__()
        if in_channels != 1:
            raise ValueError("MobileNetV2 takes grey faces (in_channels=1)")
        if not (isinstance(input_size, int) and input_size >= MIN_INPUT_SIZE):
            raise ValueError(f"input_size must be an integer of at least {MIN_INPUT_SIZE} px, got {input_size!r}")
        source = FaceXBackbone()
        if pretrained is not None:
            source.load_state_dict(load_file(str(backbone_weights_path(pretrained, "facex"))))
        self.input_size, self.pretrained = input_size, pretrained
        self.stem = nn.Sequential(source.conv1_pad, source.conv1, source.act1)
        self.blocks = source.blocks
        self.conv_last = nn.Sequential(source.conv_last, source.act_last)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(source.conv_last.out_channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``float32 (B, 1, H, W)`` -> the pooled last map ``float32 (B, 1280)``."""
        h = self.stem(to_facex_input(x, size=self.input_size))  # (B, 32, S/2, S/2)
        for block in self.blocks:
            h = block(h)  # (B, C_i, H_i, W_i) ... (B, 320, S/32, S/32)
        return self.conv_last(h).mean((2, 3))  # (B, 1280)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))  # (B, num_classes)

    def provenances(self) -> list[dict]:
        """The provenance record of the public weights this model started from ([] for a random start)."""
        return [provenance_record(self.pretrained, FACEX_BACKBONE_DIR)] if self.pretrained is not None else []
