"""Classification heads and their loss (torch): registered by
``fmuia.kinds.classification.ClassificationKind.register_heads``."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fmuia.errors import ConfigError
from fmuia.kinds.dense import cell_centres
from fmuia.kinds.head import Head
from fmuia.tasks import Task

__all__ = ["ClassificationHead", "PositionPooledClassificationHead", "classification_ce"]


class ClassificationHead(Head):
    """Global average pool, dropout (``model.dropout``, 0.2), linear.

    raw: ``(B, n)`` logits. decode: ``(B, n)`` probabilities (softmax)."""

    def __init__(self, task: Task, in_channels: int, config) -> None:
        super().__init__(task, in_channels, config)
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(in_channels, task.num_classes)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return self.linear(self.dropout(features.mean(dim=(2, 3))))

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().softmax(dim=1)


class PositionPooledClassificationHead(ClassificationHead):
    """The linear head over position-aware pooling: besides each channel's mean, its
    first moments along x and y (the means of the features times the column and row
    coordinates: cell centres from -1 at the left/top edge to 1 at the right/bottom
    edge), then dropout and a linear layer on the ``3 * C`` values.

    A global average says what is in the image but not where; classes that are a
    position or a layout (where the fetal head or sacrum lies) need the where, and a CNN
    otherwise has to smuggle it through its padding. Plain multiplies and means: any
    input size, and it exports to ONNX as such.

    raw: ``(B, n)`` logits. decode: ``(B, n)`` probabilities (softmax)."""

    def __init__(self, task: Task, in_channels: int, config) -> None:
        super().__init__(task, in_channels, config)
        self.linear = nn.Linear(3 * in_channels, task.num_classes)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        h, w = features.shape[-2:]
        xs, ys = cell_centres(h, w, features.device, features.dtype)  # 0..1; the moments want -1..1
        xs, ys = (2.0 * xs - 1.0).view(1, 1, 1, w), (2.0 * ys - 1.0).view(1, 1, h, 1)
        pooled = torch.cat([features.mean(dim=(2, 3)), (features * xs).mean(dim=(2, 3)),
                            (features * ys).mean(dim=(2, 3))], dim=1)
        return self.linear(self.dropout(pooled))


def classification_ce(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, n) logits, target (B,) class ids. ``label_smoothing`` > 0 trains towards
    that much of the target's mass spread evenly over the classes (0 keeps the plain
    cross-entropy of the reference)."""
    smoothing = params.get("label_smoothing", 0.0)
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"loss.params.classification.*.label_smoothing: expected a number in [0, 1), got {smoothing!r}")
    return F.cross_entropy(raw.float(), target.long(), label_smoothing=float(smoothing))
