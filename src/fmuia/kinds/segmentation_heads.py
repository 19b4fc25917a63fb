"""Segmentation heads and their loss (torch): registered by
``fmuia.kinds.segmentation.SegmentationKind.register_heads``."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fmuia.kinds.dense import tower
from fmuia.kinds.head import Head
from fmuia.tasks import Task

__all__ = ["SegmentationHead", "SegmentationTowerHead", "segmentation_dice"]

_DICE: list = []  # the smp DiceLoss, built on first use (importing smp is slow)


class SegmentationHead(Head):
    """1x1 conv to ``n`` class logits, bilinearly upsampled to the input size.

    raw: ``(B, n, H, W)`` logits at input size. decode: ``(B, n, H, W)`` class probabilities."""

    def __init__(self, task: Task, in_channels: int, config) -> None:
        super().__init__(task, in_channels, config)
        self.conv = nn.Conv2d(in_channels, task.num_classes, kernel_size=1)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.conv(features), size=image_size, mode="bilinear", align_corners=False)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().softmax(dim=1)


class SegmentationTowerHead(SegmentationHead):
    """Two 3x3 conv-GroupNorm-ReLU blocks before the 1x1 class conv, as the centre-map and
    heatmap heads have: each task shapes the shared map with its own context first,
    rather than reading its classes off the shared map one pixel at a time.

    raw and decode: as ``SegmentationHead``."""

    def __init__(self, task: Task, in_channels: int, config) -> None:
        super().__init__(task, in_channels, config)
        self.tower = tower(in_channels, 2)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return super().forward(self.tower(features), image_size)


def segmentation_dice(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, n, H, W) logits, target (B, H, W) class ids. ``ce_weight`` > 0 adds that
    times the pixel cross-entropy (Dice alone is the reference; 0 keeps it exact)."""
    if not _DICE:
        import segmentation_models_pytorch as smp

        _DICE.append(smp.losses.DiceLoss(mode="multiclass", from_logits=True))
    loss = _DICE[0](raw.float(), target.long())
    ce_weight = float(params.get("ce_weight", 0.0))
    if ce_weight:
        loss = loss + ce_weight * F.cross_entropy(raw.float(), target.long())
    return loss
