"""The FPN decoder: fuses the encoder's stride 4..32 stages into one map at 1/4 resolution.

segmentation_models_pytorch's FPN decoder is used as is (top-down pathway, per-level
3x3 conv-GroupNorm-ReLU towers upsampled to 1/4, summed): it is the decoder the seed
network was built on, and it takes any list of stage channels, so it fits every timm
encoder once the stride-4/8/16/32 stages are picked out here.

With ``stride=2`` one more stage (``model.decoder_stride: 2``) doubles the map's
resolution: the 1/4 map is upsampled and fused with the encoder's stride-2 features by
a 3x3 conv-GroupNorm-ReLU, U-Net style, so that thin structures (a pleural line, a
myocardial wall) and boundaries are drawn from features that still see them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from torch import nn

from fmuia.errors import ConfigError
from fmuia.model.encoder import PYRAMID_REDUCTIONS, FeatureInfo


class FPN(nn.Module):
    """``forward(features) -> (B, out_channels, H/stride, W/stride)``; input sides must be
    multiples of 32; ``stride`` is 4 (the FPN alone) or 2 (plus the fine stage)."""

    def __init__(self, feature_info: FeatureInfo, pyramid_channels: int = 256, out_channels: int = 128,
                 dropout: float = 0.2, stride: int = 4) -> None:
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
        self.stride = stride
        self.fine: nn.Module | None = None
        if stride == 2:
            if 2 not in reductions:
                raise ConfigError(f"model.decoder_stride: 2 needs an encoder stage at stride 2, this encoder has "
                                  f"strides {reductions}; use decoder_stride: 4")
            self.fine_level = max(i for i, r in enumerate(reductions) if r == 2)
            self.fine = nn.Sequential(
                nn.Conv2d(out_channels + feature_info.channels()[self.fine_level], out_channels, 3, padding=1, bias=False),
                nn.GroupNorm(32, out_channels),
                nn.ReLU(inplace=True),
            )
        elif stride != 4:
            raise ConfigError(f"model.decoder_stride: expected 4 or 2, got {stride!r}")

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        out = self.fpn([features[i] for i in self.levels])
        if self.fine is None:
            return out
        skip = features[self.fine_level]
        out = F.interpolate(out, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fine(torch.cat([out, skip], dim=1))
