"""Keypoint heads and their losses (torch): registered by
``fmuia.kinds.keypoints.KeypointsKind.register_heads``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fmuia.kinds.dense import cell_centres, soft_argmax, tower
from fmuia.kinds.head import Head
from fmuia.tasks import Task

if TYPE_CHECKING:
    from fmuia.model.config import ModelConfig

__all__ = ["KeypointBoundedRegressionHead", "KeypointHeatmapHead", "KeypointRegressionHead", "gaussian_heatmaps",
           "js_divergence", "keypoint_bounded_mse", "keypoint_heatmap_loss", "keypoint_mse"]

_EPS = 1e-8


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
        return as_points(raw.float()).clamp(0.0, 1.0)


class KeypointBoundedRegressionHead(KeypointRegressionHead):
    """The regression head with its coordinates squashed into the image: the linear layer
    gives logits, and a sigmoid maps them to 0..1. It starts near the image centre (small
    logits) and can never predict outside the image. The plain head's raw outputs
    overshoot and, clamped, end on the image border (most of its predicted coordinates
    on the synthetic benchmark).

    raw: ``(B, 2K)`` logits. decode: ``(B, K, 2)`` their sigmoids."""

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return as_points(torch.sigmoid(raw.float()))


class KeypointHeatmapHead(Head):
    """A 3x3 conv-GroupNorm-ReLU block and a 1x1 conv to one heatmap logit map per point.

    raw: ``(B, K, h, w)`` logits on the feature grid (h = H/4 on the FPN map).
    decode: ``(B, K, 2)`` normalised ``[x, y]`` in 0..1: the soft-argmax of each map within
    ``DECODE_WINDOW`` cells of its peak (sub-cell precision)."""

    DECODE_WINDOW = 3
    feature_source = "fpn"  # a heatmap needs the stride-4 map, not the pooled top stage

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__(task, in_channels, config)
        self.tower = tower(in_channels, 1)
        self.out = nn.Conv2d(in_channels, task.num_points, kernel_size=1)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return self.out(self.tower(features))

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return soft_argmax(raw, window=self.DECODE_WINDOW).clamp(0.0, 1.0)


def as_points(flat: torch.Tensor) -> torch.Tensor:
    """``(B, 2K)`` as x1, y1, x2, y2, ... -> ``(B, K, 2)``. Sliced, not reshaped: an exported
    graph's reshape of a batch without rows has no size to infer (``detection_heads.cell_values``)."""
    return torch.stack([flat[:, 0::2], flat[:, 1::2]], dim=2)


def keypoint_mse(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, 2K) as x1, y1, x2, y2, ...; target (B, K, 2), both normalised to 0..1."""
    return F.mse_loss(raw.float(), target.float().reshape(raw.shape[0], -1))


def keypoint_bounded_mse(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, 2K) logits of x1, y1, x2, y2, ...; target (B, K, 2) normalised to 0..1: the
    squared error of their sigmoids, in the units of ``keypoint_mse``."""
    return F.mse_loss(torch.sigmoid(raw.float()), target.float().reshape(raw.shape[0], -1))


def gaussian_heatmaps(points: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """``(B, K, 2)`` normalised points -> ``(B, K, h, w)`` Gaussians of ``sigma`` cells centred on
    them, each summing to 1 (points are clamped into the image first)."""
    points = points.float().clamp(0.0, 1.0)
    xs, ys = cell_centres(h, w, points.device)
    dx = (xs.view(1, 1, 1, w) - points[..., 0, None, None]) * w
    dy = (ys.view(1, 1, h, 1) - points[..., 1, None, None]) * h
    maps = torch.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))
    return maps / maps.sum(dim=(2, 3), keepdim=True).clamp_min(_EPS)


def js_divergence(log_p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) between distributions over the last dim: ``p`` given
    as log-probabilities, ``q`` as probabilities. Returns one value per distribution."""
    p = log_p.exp()
    m = 0.5 * (p + q)
    log_m = m.clamp_min(_EPS).log()
    kl_pm = (p * (log_p - log_m)).sum(dim=-1)
    kl_qm = (q * (q.clamp_min(_EPS).log() - log_m)).sum(dim=-1)
    return 0.5 * (kl_pm + kl_qm)


def keypoint_heatmap_loss(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, K, h, w) heatmap logits; target (B, K, 2) normalised points."""
    raw = raw.float()
    b, k, h, w = raw.shape
    target = target.float().reshape(b, k, 2)
    points = soft_argmax(raw)
    distance = ((points - target).pow(2).sum(dim=-1) + _EPS).sqrt().mean()
    log_p = F.log_softmax(raw.reshape(b, k, h * w), dim=-1)
    q = gaussian_heatmaps(target, h, w, float(params["sigma"])).reshape(b, k, h * w)
    regulariser = js_divergence(log_p, q).mean()
    return float(params["coord_weight"]) * distance + float(params["reg_weight"]) * regulariser
