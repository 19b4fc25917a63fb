"""The FPN decoder: fuses the encoder's stride 4..32 stages into one map at 1/4 resolution.

segmentation_models_pytorch's FPN decoder is used as is (top-down pathway, per-level
3x3 conv-GroupNorm-ReLU towers upsampled to 1/4, summed): it is the decoder the seed
network was built on, and it takes any list of stage channels, so it fits every timm
encoder once the stride-4/8/16/32 stages are picked out here.
"""
from __future__ import annotations

import torch
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from torch import nn

from fmuia.errors import ConfigError
from fmuia.model.encoder import PYRAMID_REDUCTIONS, FeatureInfo


class FPN(nn.Module):
    """``forward(features) -> (B, out_channels, H/4, W/4)``; input sides must be multiples of 32."""

    def __init__(self, feature_info: FeatureInfo, pyramid_channels: int = 256, out_channels: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        reductions = feature_info.reduction()
        missing = [r for r in PYRAMID_REDUCTIONS if r not in reductions]
        if missing:
            raise ConfigError(
                f"model.encoder: the FPN needs encoder stages at strides {list(PYRAMID_REDUCTIONS)}, "
                f"this encoder has {reductions} (missing {missing})"
            )
        # The last stage of each stride (the deepest features at that resolution).
        self.levels = [max(i for i, r in enumerate(reductions) if r == want) for want in PYRAMID_REDUCTIONS]
        channels = [feature_info.channels()[i] for i in self.levels]
        self.fpn = FPNDecoder(
            encoder_channels=channels, encoder_depth=len(channels) - 1, pyramid_channels=pyramid_channels,
            segmentation_channels=out_channels, dropout=dropout, merge_policy="add",
        )
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.fpn([features[i] for i in self.levels])
