"""Task heads: one class per head type, registered under (kind, type name).

Adding a head is adding one class with ``@register_head(kind, name)``; the config picks
a type per kind (``model.heads: {keypoints: regression, detection: grid}``). Every head
takes ``(task, in_channels, config)``, maps a feature map to its raw output in
``forward(features, image_size)``, and turns raw output into normalised predictions in
``decode(raw)``. Raw outputs are what the losses see; their shapes are documented per class.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fmuia.errors import ConfigError
from fmuia.tasks import Kind, Task

if TYPE_CHECKING:
    from fmuia.model.config import ModelConfig

HEAD_TYPES: dict[Kind, dict[str, type["Head"]]] = {kind: {} for kind in Kind}
DEFAULT_HEADS: dict[Kind, str] = {}


def register_head(kind: Kind, name: str, default: bool = False) -> Callable[[type["Head"]], type["Head"]]:
    def add(cls: type["Head"]) -> type["Head"]:
        if name in HEAD_TYPES[kind]:
            raise ValueError(f"head type {name!r} is already registered for {kind.value}")
        cls.kind, cls.type_name = kind, name
        HEAD_TYPES[kind][name] = cls
        if default:
            DEFAULT_HEADS[kind] = name
        return cls

    return add


def head_types(overrides: dict[str, str] | None = None) -> dict[Kind, str]:
    """The head type of each kind: the defaults, overridden by ``model.heads``."""
    chosen = dict(DEFAULT_HEADS)
    kinds = {k.value: k for k in Kind}
    for key, name in (overrides or {}).items():
        if key not in kinds:
            raise ConfigError(f"model.heads: {key!r} is not a kind (expected one of {', '.join(kinds)})")
        if name not in HEAD_TYPES[kinds[key]]:
            raise ConfigError(f"model.heads.{key}: unknown head type {name!r} (known: {', '.join(HEAD_TYPES[kinds[key]])})")
        chosen[kinds[key]] = name
    return chosen


def build_head(task: Task, in_channels: int, config: "ModelConfig", type_name: str) -> "Head":
    return HEAD_TYPES[task.kind][type_name](task, in_channels, config)


class Head(nn.Module):
    kind: ClassVar[Kind]
    type_name: ClassVar[str]

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__()
        self.task_id = task.task_id
        self.n = task.n

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def decode(self, raw: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


@register_head(Kind.SEGMENTATION, "conv", default=True)
class SegmentationHead(Head):
    """1x1 conv to ``n`` class logits, bilinearly upsampled to the input size.

    raw: ``(B, n, H, W)`` logits at input size. decode: ``(B, n, H, W)`` class probabilities."""

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__(task, in_channels, config)
        self.conv = nn.Conv2d(in_channels, task.num_classes, kernel_size=1)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.conv(features), size=image_size, mode="bilinear", align_corners=False)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().softmax(dim=1)


@register_head(Kind.CLASSIFICATION, "linear", default=True)
class ClassificationHead(Head):
    """Global average pool, dropout (``model.dropout``, 0.2), linear.

    raw: ``(B, n)`` logits. decode: ``(B, n)`` probabilities (softmax)."""

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__(task, in_channels, config)
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(in_channels, task.num_classes)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return self.linear(self.dropout(features.mean(dim=(2, 3))))

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().softmax(dim=1)


@register_head(Kind.KEYPOINTS, "regression", default=True)
class KeypointRegressionHead(Head):
    """Global average pool, linear to ``2 * K`` values that are the normalised point
    coordinates ``x1, y1, x2, y2, ...`` (0..1 of image width/height) directly.

    raw: ``(B, 2K)``. decode: ``(B, K, 2)`` points clamped to 0..1."""

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__(task, in_channels, config)
        self.linear = nn.Linear(in_channels, 2 * task.num_points)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return self.linear(features.mean(dim=(2, 3)))

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().view(raw.shape[0], -1, 2).clamp(0.0, 1.0)


@register_head(Kind.DETECTION, "grid", default=True)
class DetectionGridHead(Head):
    """Two 3x3 conv-BN-ReLU blocks and a 1x1 conv giving 5 channels per grid cell:
    4 box logits (sigmoid -> ``x1, y1, x2, y2`` of the whole image, normalised 0..1) and
    1 objectness logit (the cell that holds the box centre).

    raw: ``(B, 5, h, w)`` on the feature grid (h = H/4 on the FPN map).
    decode: ``(B, 5)`` = box ``x1, y1, x2, y2`` in 0..1 (ordered so x1 <= x2, y1 <= y2)
    and score in 0..1, taken from the cell with the highest score."""

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__(task, in_channels, config)

        def block(cin: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, in_channels, 3, padding=1, bias=False), nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True))

        self.tower = nn.Sequential(block(in_channels), block(in_channels))
        self.out = nn.Conv2d(in_channels, 5, kernel_size=1)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return self.out(self.tower(features))

    @staticmethod
    def boxes(raw: torch.Tensor) -> torch.Tensor:
        """``(B, 4, h, w)`` normalised boxes of every cell (what a box loss compares)."""
        return raw[:, :4].float().sigmoid()

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        scores = raw[:, 4].float().flatten(1)  # (B, h*w)
        best = scores.argmax(dim=1)
        boxes = self.boxes(raw).flatten(2)  # (B, 4, h*w)
        box = boxes.gather(2, best.view(-1, 1, 1).expand(-1, 4, 1)).squeeze(2)
        x1, x2 = torch.minimum(box[:, 0], box[:, 2]), torch.maximum(box[:, 0], box[:, 2])
        y1, y2 = torch.minimum(box[:, 1], box[:, 3]), torch.maximum(box[:, 1], box[:, 3])
        score = scores.gather(1, best.view(-1, 1)).squeeze(1).sigmoid()
        return torch.stack([x1, y1, x2, y2, score], dim=1)
