"""Detection heads and their losses (torch): registered by
``fmuia.kinds.detection.DetectionKind.register_heads``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fmuia.errors import ConfigError
from fmuia.kinds.dense import SCORE_PRIOR_BIAS, cell_centres, ltrb_to_boxes, tower
from fmuia.kinds.head import Head
from fmuia.tasks import Task

if TYPE_CHECKING:
    from fmuia.config.predict import PredictConfig
    from fmuia.model.config import ModelConfig

__all__ = ["CentreDetectionHead", "DetectionGridHead", "centernet_loss", "centre_cells", "centre_focal_loss",
           "centre_targets", "detection_grid"]

_EPS = 1e-8


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
        box = cell_values(self.boxes(raw), best)
        x1, x2 = torch.minimum(box[:, 0], box[:, 2]), torch.maximum(box[:, 0], box[:, 2])
        y1, y2 = torch.minimum(box[:, 1], box[:, 3]), torch.maximum(box[:, 1], box[:, 3])
        score = scores.gather(1, best[:, None]).squeeze(1).sigmoid()
        return torch.stack([x1, y1, x2, y2, score], dim=1)


class CentreDetectionHead(Head):
    """Two 3x3 conv-GroupNorm-ReLU blocks and a 1x1 conv giving 5 channels per cell:
    1 centre-score logit and 4 distance logits (sigmoid -> distances, as fractions of the
    image width/height, from the cell centre to the box's left, top, right, bottom side).

    raw: ``(B, 5, h, w)``, channel 0 the score, 1..4 the distances (h = H/4 on the FPN map).
    decode: ``(B, 5)`` = box ``x1, y1, x2, y2`` in 0..1 (x1 <= x2, y1 <= y2 by construction)
    and score in 0..1, from the cell with the highest score. With ``predict.box_voting`` the
    box is instead the score-weighted mean of the boxes of the cells that score at least
    half the peak and lie inside the peak cell's box: every cell near the centre was
    trained on the same box, so their mean is less noisy than one cell's guess."""

    feature_source = "fpn"
    VOTE_FRACTION = 0.5  # of the peak score, for a cell to vote

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__(task, in_channels, config)
        self.box_voting = False  # the model's predict settings switch it on (set_decoding)
        self.tower = tower(in_channels, 2)
        self.out = nn.Conv2d(in_channels, 5, kernel_size=1)
        with torch.no_grad():
            self.out.bias[0] = SCORE_PRIOR_BIAS

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return self.out(self.tower(features))

    def set_decoding(self, predict: "PredictConfig") -> None:
        self.box_voting = bool(predict.box_voting)

    @staticmethod
    def boxes(raw: torch.Tensor) -> torch.Tensor:
        """``(B, 4, h, w)`` the normalised box each cell predicts (what the box loss compares)."""
        return ltrb_to_boxes(raw[:, 1:5].float().sigmoid())

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        scores = raw[:, 0].float().flatten(1)
        best = scores.argmax(dim=1)
        boxes = self.boxes(raw)
        box = cell_values(boxes, best)
        score = scores.gather(1, best[:, None]).squeeze(1).sigmoid()
        if self.box_voting:
            box = self._vote(raw[:, 0].float().sigmoid(), boxes, box, score)
        return torch.cat([box.clamp(0.0, 1.0), score[:, None]], dim=1)

    def _vote(self, probs: torch.Tensor, boxes: torch.Tensor, peak_box: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        """``probs`` (B, h, w), ``boxes`` (B, 4, h, w), ``peak_box`` (B, 4), ``peak`` (B,) -> (B, 4)."""
        h, w = probs.shape[-2:]
        xs, ys = cell_centres(h, w, probs.device)
        cx, cy = xs.view(1, 1, w), ys.view(1, h, 1)
        x1, y1, x2, y2 = (peak_box[:, i, None, None] for i in range(4))
        inside = (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
        # the peak cell always votes (>= its own score), so no row is left without voters
        peak = peak[:, None, None]
        voters = (inside & (probs >= self.VOTE_FRACTION * peak)) | (probs >= peak)
        weights = torch.where(voters, probs, torch.zeros_like(probs))
        return (boxes * weights[:, None]).sum(dim=(2, 3)) / weights.sum(dim=(1, 2))[:, None].clamp_min(_EPS)


def cell_values(maps: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` maps and ``(B,)`` cell indices into the flattened ``h * w`` grid ->
    ``(B, C)``, each map's value at its row's cell. Gathered along h, then w, with no
    reshape: an exported graph's reshape of a batch without rows has no size to infer,
    and the graph decodes every task, with rows or not."""
    b, c, h, w = maps.shape
    rows, cols = torch.div(cells, w, rounding_mode="floor"), cells % w
    along_h = maps.gather(2, rows[:, None, None, None].expand(b, c, 1, w))
    return along_h.gather(3, cols[:, None, None, None].expand(b, c, 1, 1))[:, :, 0, 0]


def centre_cells(boxes: torch.Tensor, grid_h: int, grid_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of the grid cell holding each normalised box's centre: (B,), (B,)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    col = (cx * grid_w).long().clamp(0, grid_w - 1)
    row = (cy * grid_h).long().clamp(0, grid_h - 1)
    return row, col


def detection_grid(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, 5, h, w): 4 box logits (sigmoid -> normalised x1, y1, x2, y2) and 1 score
    logit per cell; target (B, 4) normalised box.

    ``negatives``: the score's BCE is averaged over all cells against 1 at the centre cell
    and 0 elsewhere (True), or taken at the centre cell only, towards 1, averaged over the
    batch (False: the official code's loss; nothing pushes the other cells' scores down,
    so the cell picked at decoding may be any whose score has drifted up).

    ``positive_share`` (with ``negatives``): 0 averages the BCE over all cells, so the one
    positive cell of a map weighs 1/(h*w) and the score learns mostly "no centre here";
    a share in (0, 1) gives the centre cells that share of the score loss and the other
    cells the rest (each group averaged on its own)."""
    raw = raw.float()
    b, _, h, w = raw.shape
    target = target.float()
    row, col = centre_cells(target, h, w)
    batch = torch.arange(b, device=raw.device)
    if params["negatives"]:
        objectness = torch.zeros((b, h, w), device=raw.device)
        objectness[batch, row, col] = 1.0
        share = float(params["positive_share"])
        if not 0.0 <= share < 1.0:
            raise ConfigError(f"loss.params.detection.grid.positive_share: expected a number in [0, 1), got {share}")
        if share > 0:
            per_cell = F.binary_cross_entropy_with_logits(raw[:, 4], objectness, reduction="none")
            positive = objectness > 0
            score_loss = share * per_cell[positive].mean() + (1.0 - share) * per_cell[~positive].mean()
        else:
            score_loss = F.binary_cross_entropy_with_logits(raw[:, 4], objectness)
    else:
        centre = raw[batch, 4, row, col]
        score_loss = F.binary_cross_entropy_with_logits(centre, torch.ones_like(centre))
    box = raw[batch, :4, row, col].sigmoid()  # (B, 4): the centre cell's box
    box_loss = F.l1_loss(box, target)
    return score_loss + float(params["box_weight"]) * box_loss


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
    # Imported here: torchvision.ops pulls in torch._dynamo (seconds), which prediction never needs.
    from torchvision.ops import generalized_box_iou_loss

    giou = generalized_box_iou_loss(boxes, wanted, reduction="none")
    l1 = (boxes - wanted).abs().sum(dim=1)
    box = (wts * (float(params["giou_weight"]) * giou + float(params["l1_weight"]) * l1)).sum() / wts.sum().clamp_min(_EPS)
    return float(params["score_weight"]) * score + box
