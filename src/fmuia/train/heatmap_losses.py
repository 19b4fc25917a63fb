"""Losses of the dense localisation heads (``fmuia.model.heatmap_heads``).

* keypoints ``heatmap`` (DSNT): the Euclidean distance between the soft-argmax of each
  heatmap and its target point (normalised units, times ``coord_weight``), plus
  ``reg_weight`` times the Jensen-Shannon divergence between the heatmap's softmax and a
  normalised Gaussian of ``sigma`` cells at the target, which keeps the map unimodal and
  sharp so that decoding near the peak agrees with the training expectation.
* detection ``centernet``: the penalty-reduced focal loss of CenterNet on the centre-score
  map (target 1 at the cell holding the box centre, a Gaussian of about
  ``gaussian_scale`` times the box size around it softening the penalty of near misses,
  every other cell a negative), normalised by the number of boxes; plus, over the cells
  near the centre that lie inside the box (Gaussian target >= ``box_threshold``),
  weighted by that target, ``giou_weight`` times the GIoU loss and ``l1_weight`` times the
  L1 distance between the cell's box and the target box.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from fmuia.model.heatmap_heads import cell_centres, ltrb_to_boxes, soft_argmax
from fmuia.tasks import Kind, Task
from fmuia.train.losses import register_loss

__all__ = ["centre_focal_loss", "centre_targets", "gaussian_heatmaps", "js_divergence", "keypoint_heatmap_loss",
           "centernet_loss"]

_EPS = 1e-8


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


@register_loss(Kind.KEYPOINTS, "heatmap", coord_weight=2.0, reg_weight=1.0, sigma=1.0)
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


def centre_targets(boxes: torch.Tensor, h: int, w: int, gaussian_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 4)`` normalised boxes -> (score target ``(B, h, w)``: a Gaussian around each box
    centre with sigmas ``gaussian_scale`` times the box's width/height in cells (at least half
    a cell), exactly 1 at the cell holding the centre; inside-box mask ``(B, h, w)``)."""
    boxes = boxes.float()
    xs, ys = cell_centres(h, w, boxes.device)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    sx = ((boxes[:, 2] - boxes[:, 0]) * w * gaussian_scale).clamp_min(0.5)
    sy = ((boxes[:, 3] - boxes[:, 1]) * h * gaussian_scale).clamp_min(0.5)
    dx = (xs.view(1, 1, w) - cx.view(-1, 1, 1)) * w / sx.view(-1, 1, 1)
    dy = (ys.view(1, h, 1) - cy.view(-1, 1, 1)) * h / sy.view(-1, 1, 1)
    heat = torch.exp(-0.5 * (dx * dx + dy * dy))
    col = (cx * w).long().clamp(0, w - 1)
    row = (cy * h).long().clamp(0, h - 1)
    batch = torch.arange(boxes.shape[0], device=boxes.device)
    heat[batch, row, col] = 1.0
    inside_x = (xs.view(1, 1, w) > boxes[:, 0].view(-1, 1, 1)) & (xs.view(1, 1, w) < boxes[:, 2].view(-1, 1, 1))
    inside_y = (ys.view(1, h, 1) > boxes[:, 1].view(-1, 1, 1)) & (ys.view(1, h, 1) < boxes[:, 3].view(-1, 1, 1))
    inside = inside_x & inside_y
    inside[batch, row, col] = True  # a box thinner than a cell still has its centre cell
    return heat, inside


def centre_focal_loss(logits: torch.Tensor, heat: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed over cells and divided by the number of
    peak cells (target exactly 1). logits and heat: (B, h, w)."""
    logits, heat = logits.float(), heat.float()
    p = logits.sigmoid()
    peak = heat >= 1.0
    pos = -F.logsigmoid(logits) * (1.0 - p).pow(alpha)
    neg = -F.logsigmoid(-logits) * p.pow(alpha) * (1.0 - heat).pow(beta)
    total = torch.where(peak, pos, neg).sum()
    return total / peak.sum().clamp_min(1)


@register_loss(Kind.DETECTION, "centernet", score_weight=1.0, giou_weight=2.0, l1_weight=5.0, alpha=2.0, beta=4.0,
               gaussian_scale=0.15, box_threshold=0.3)
def centernet_loss(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, 5, h, w): centre-score logit and 4 side-distance logits per cell;
    target (B, 4) normalised box."""
    raw = raw.float()
    b, _, h, w = raw.shape
    target = target.float()
    heat, inside = centre_targets(target, h, w, float(params["gaussian_scale"]))
    score = centre_focal_loss(raw[:, 0], heat, float(params["alpha"]), float(params["beta"]))
    weight = torch.where(inside & (heat >= float(params["box_threshold"])), heat, torch.zeros_like(heat))
    cells = weight > 0  # (B, h, w)
    boxes = ltrb_to_boxes(raw[:, 1:5].sigmoid()).permute(0, 2, 3, 1)[cells]  # (P, 4)
    wanted = target[:, None, None, :].expand(b, h, w, 4)[cells]
    wts = weight[cells]
    giou = generalized_box_iou_loss(boxes, wanted, reduction="none")
    l1 = (boxes - wanted).abs().sum(dim=1)
    box = (wts * (float(params["giou_weight"]) * giou + float(params["l1_weight"]) * l1)).sum() / wts.sum().clamp_min(_EPS)
    return float(params["score_weight"]) * score + box
