"""Building blocks of the dense heads (keypoint heatmaps, centre-point detection): the
conv towers, cell geometry of a feature grid, soft-argmax and side distances to boxes.
Shared by ``fmuia.kinds.keypoints`` and ``fmuia.kinds.detection``."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SCORE_PRIOR_BIAS", "cell_centres", "ltrb_to_boxes", "soft_argmax", "tower"]

# Score-logit bias at initialisation: sigmoid(-2.19) ~ 0.1, the usual prior for a
# sparse centre map, so early training is not dominated by the many negatives.
SCORE_PRIOR_BIAS = -2.19


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


def tower(channels: int, depth: int) -> nn.Sequential:
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


def ltrb_to_boxes(distances: torch.Tensor) -> torch.Tensor:
    """``(B, 4, h, w)`` distances (normalised) from each cell centre to the box's left, top,
    right and bottom sides -> ``(B, 4, h, w)`` boxes ``x1, y1, x2, y2`` (normalised)."""
    b, _, h, w = distances.shape
    xs, ys = cell_centres(h, w, distances.device, distances.dtype)
    cx, cy = xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)
    left, top, right, bottom = distances.unbind(dim=1)
    return torch.stack([cx - left, cy - top, cx + right, cy + bottom], dim=1)
