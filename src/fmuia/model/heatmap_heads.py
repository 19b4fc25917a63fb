"""Dense heads for the localisation kinds: keypoint heatmaps and centre-point detection.

Both read the fused FPN map (1/4 of the input resolution) and answer per location,
where the seed heads regress coordinates from pooled or single-cell features:

* keypoints ``heatmap``: one heatmap per point; the point is the expectation of the
  heatmap's spatial softmax (soft-argmax, as in DSNT), which is differentiable and
  sub-pixel by construction. Decoding restricts the expectation to a window around
  the peak so a second, weaker mode elsewhere cannot pull the point towards it.
* detection ``centernet``: a centre-score map trained against a Gaussian around the
  box centre with negatives everywhere else (so the map that picks the box learns to
  reject), and per cell the distances to the box's four sides, trained with GIoU.

Select them with ``model.heads: {keypoints: heatmap, detection: centernet}``; both read
the FPN map (``feature_source``) unless ``model.routing`` says otherwise. The losses live
in ``fmuia.train.heatmap_losses``. Decoded outputs have the seed heads' formats.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from fmuia.model.heads import Head, register_head
from fmuia.tasks import Kind, Task

if TYPE_CHECKING:
    from fmuia.model.config import ModelConfig

__all__ = ["CentreDetectionHead", "KeypointHeatmapHead", "cell_centres", "ltrb_to_boxes", "soft_argmax"]

# Score-logit bias at initialisation: sigmoid(-2.19) ~ 0.1, the usual prior for a
# sparse centre map, so early training is not dominated by the many negatives.
_SCORE_PRIOR_BIAS = -2.19


class _GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` that exports to an ONNX graph accepting an empty batch.

    In the exported graph a head whose task is absent from the batch receives zero rows;
    a GroupNorm exported as is reshapes to ``(B, groups, -1)`` (onnxruntime also fuses
    any flattening reshape into that form), and ``-1`` cannot be inferred from zero
    elements. While exporting, the same normalisation is written without reshapes
    instead; in PyTorch it is ``nn.GroupNorm`` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            return super().forward(x)
        # Per-channel moments averaged within each group by a matrix product: no reshape
        # at all, so nothing for onnxruntime to infer from an empty batch.
        xf = x.float()
        size = self.num_channels // self.num_groups
        group = torch.arange(self.num_channels, device=x.device) // size
        within = (group[:, None] == group[None, :]).float() / size  # (C, C) group averaging
        mean = xf.mean(dim=(2, 3)) @ within  # (B, C): each channel's group mean
        square = xf.pow(2).mean(dim=(2, 3)) @ within
        var = (square - mean.pow(2)).clamp_min(0.0)
        scale = self.weight / torch.sqrt(var + self.eps)  # (B, C)
        shift = self.bias - mean * scale
        return (xf * scale[:, :, None, None] + shift[:, :, None, None]).to(x.dtype)


def _tower(channels: int, depth: int) -> nn.Sequential:
    """``depth`` 3x3 conv-GroupNorm-ReLU blocks. GroupNorm, not BatchNorm: with mixed-task
    batches a head may see a single sample in a step."""
    groups = 32 if channels % 32 == 0 else 1
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), _GroupNorm(groups, channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def cell_centres(h: int, w: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised x of each column ``(w,)`` and y of each row ``(h,)``: cell centres, ``(i + 0.5) / n``."""
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    return xs, ys


def soft_argmax(logits: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """``(B, K, h, w)`` logits -> ``(B, K, 2)`` normalised ``[x, y]``: the expectation of
    each map's spatial softmax. ``window``: only the cells within that many cells (square
    neighbourhood) of the map's maximum take part."""
    logits = logits.float()
    b, k, h, w = logits.shape
    flat = logits.reshape(b, k, h * w)
    if window is not None:
        peak = flat.argmax(dim=2)
        rows, cols = torch.div(peak, w, rounding_mode="floor"), peak % w
        grid_r = torch.arange(h, device=logits.device).view(1, 1, h, 1)
        grid_c = torch.arange(w, device=logits.device).view(1, 1, 1, w)
        near = ((grid_r - rows[..., None, None]).abs() <= window) & ((grid_c - cols[..., None, None]).abs() <= window)
        flat = flat.masked_fill(~near.reshape(b, k, h * w), float("-inf"))
    prob = flat.softmax(dim=2).reshape(b, k, h, w)
    xs, ys = cell_centres(h, w, logits.device)
    x = (prob.sum(dim=2) * xs).sum(dim=2)
    y = (prob.sum(dim=3) * ys).sum(dim=2)
    return torch.stack([x, y], dim=2)


@register_head(Kind.KEYPOINTS, "heatmap")
class KeypointHeatmapHead(Head):
    """A 3x3 conv-GroupNorm-ReLU block and a 1x1 conv to one heatmap logit map per point.

    raw: ``(B, K, h, w)`` logits on the feature grid (h = H/4 on the FPN map).
    decode: ``(B, K, 2)`` normalised ``[x, y]`` in 0..1: the soft-argmax of each map within
    ``DECODE_WINDOW`` cells of its peak (sub-cell precision)."""

    DECODE_WINDOW = 3
    feature_source = "fpn"  # a heatmap needs the stride-4 map, not the pooled top stage

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__(task, in_channels, config)
        self.tower = _tower(in_channels, 1)
        self.out = nn.Conv2d(in_channels, task.num_points, kernel_size=1)

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return self.out(self.tower(features))

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return soft_argmax(raw, window=self.DECODE_WINDOW).clamp(0.0, 1.0)


def ltrb_to_boxes(distances: torch.Tensor) -> torch.Tensor:
    """``(B, 4, h, w)`` distances (normalised) from each cell centre to the box's left, top,
    right and bottom sides -> ``(B, 4, h, w)`` boxes ``x1, y1, x2, y2`` (normalised)."""
    b, _, h, w = distances.shape
    xs, ys = cell_centres(h, w, distances.device, distances.dtype)
    cx, cy = xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)
    left, top, right, bottom = distances.unbind(dim=1)
    return torch.stack([cx - left, cy - top, cx + right, cy + bottom], dim=1)


@register_head(Kind.DETECTION, "centernet")
class CentreDetectionHead(Head):
    """Two 3x3 conv-GroupNorm-ReLU blocks and a 1x1 conv giving 5 channels per cell:
    1 centre-score logit and 4 distance logits (sigmoid -> distances, as fractions of the
    image width/height, from the cell centre to the box's left, top, right, bottom side).

    raw: ``(B, 5, h, w)``, channel 0 the score, 1..4 the distances (h = H/4 on the FPN map).
    decode: ``(B, 5)`` = box ``x1, y1, x2, y2`` in 0..1 (x1 <= x2, y1 <= y2 by construction)
    and score in 0..1, from the cell with the highest score."""

    feature_source = "fpn"

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__(task, in_channels, config)
        self.tower = _tower(in_channels, 2)
        self.out = nn.Conv2d(in_channels, 5, kernel_size=1)
        with torch.no_grad():
            self.out.bias[0] = _SCORE_PRIOR_BIAS

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return self.out(self.tower(features))

    @staticmethod
    def boxes(raw: torch.Tensor) -> torch.Tensor:
        """``(B, 4, h, w)`` the normalised box each cell predicts (what the box loss compares)."""
        return ltrb_to_boxes(raw[:, 1:5].float().sigmoid())

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        scores = raw[:, 0].float().flatten(1)
        best = scores.argmax(dim=1)
        boxes = self.boxes(raw).flatten(2)
        box = boxes.gather(2, best.view(-1, 1, 1).expand(-1, 4, 1)).squeeze(2).clamp(0.0, 1.0)
        score = scores.gather(1, best.view(-1, 1)).squeeze(1).sigmoid()
        return torch.cat([box, score[:, None]], dim=1)
