"""Detection: one box per image (CSV ``x_min, y_min, x_max, y_max``, original pixels).

Label: ``np.ndarray (4,) float64``. Target: ``FloatTensor (4,)`` ``[x1, y1, x2, y2] / [S, S, S, S]``.
Heads: ``grid`` (default; a box and an objectness logit per cell of the FPN map, loss:
the score's BCE plus ``box_weight`` times the centre cell's L1 box error; the BCE is over
every cell, towards 1 at the centre cell and 0 elsewhere, or with ``negatives: false``
towards 1 at the centre cell only, as in the official code) and
``centernet`` (a centre-score map and per cell the distances to the box's four sides;
loss: CenterNet's penalty-reduced focal loss on the score map plus GIoU and L1 on the
boxes of the cells near the centre).
Submission: ``detection_predictions.json`` entries with ``bbox_normalized`` (0..1) and
``bbox_pixels``. Score: IoU of ``bbox_pixels`` with the truth, averaged over samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import generalized_box_iou_loss

from fmuia.errors import ConfigError
from fmuia.io.images import image_size
from fmuia.metrics.results import TaskResult, empty_result
from fmuia.metrics.scores import box_iou
from fmuia.kinds.base import FPN, Head, LabelCells, LabelError, SampleScore, TaskKind, blank, floats, number_list
from fmuia.kinds.dense import SCORE_PRIOR_BIAS, cell_centres, ltrb_to_boxes, tower
from fmuia.kinds.drawing import ACCENT, PREDICTED, TRUTH, thumbnail
from fmuia.tasks import Task

if TYPE_CHECKING:
    from fmuia.config.predict import PredictConfig
    from fmuia.model.config import ModelConfig

__all__ = ["BOX_COLUMNS", "CentreDetectionHead", "DetectionGridHead", "DetectionKind", "DetectionResult",
           "centernet_loss", "centre_cells", "centre_focal_loss", "centre_targets", "detection_grid", "detection_result"]

BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
_EPS = 1e-8


@dataclass
class DetectionResult:
    """``box``: [x_min, y_min, x_max, y_max] in original pixels; ``box_normalized`` the
    same in 0..1 of the image width/height; ``score`` the head's confidence (0..1)."""

    task_id: str
    box: np.ndarray
    box_normalized: np.ndarray
    score: float


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
        boxes = self.boxes(raw).flatten(2)
        box = boxes.gather(2, best.view(-1, 1, 1).expand(-1, 4, 1)).squeeze(2)
        score = scores.gather(1, best.view(-1, 1)).squeeze(1).sigmoid()
        if self.box_voting:
            box = self._vote(scores.sigmoid(), boxes, box, score, raw.shape[-2:])
        return torch.cat([box.clamp(0.0, 1.0), score[:, None]], dim=1)

    def _vote(self, probs: torch.Tensor, boxes: torch.Tensor, peak_box: torch.Tensor, peak: torch.Tensor,
              grid: tuple[int, int]) -> torch.Tensor:
        """``probs`` (B, h*w), ``boxes`` (B, 4, h*w), ``peak_box`` (B, 4), ``peak`` (B,) -> (B, 4)."""
        h, w = grid
        xs, ys = cell_centres(h, w, probs.device)
        cx, cy = xs.view(1, w).expand(h, w).reshape(1, -1), ys.view(h, 1).expand(h, w).reshape(1, -1)
        inside = ((cx >= peak_box[:, 0:1]) & (cx <= peak_box[:, 2:3]) & (cy >= peak_box[:, 1:2])
                  & (cy <= peak_box[:, 3:4]))
        # the peak cell always votes (>= its own score), so no row is left without voters
        voters = (inside & (probs >= self.VOTE_FRACTION * peak[:, None])) | (probs >= peak[:, None])
        weights = torch.where(voters, probs, torch.zeros_like(probs))
        return (boxes * weights[:, None]).sum(dim=2) / weights.sum(dim=1, keepdim=True).clamp_min(_EPS)


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
    giou = generalized_box_iou_loss(boxes, wanted, reduction="none")
    l1 = (boxes - wanted).abs().sum(dim=1)
    box = (wts * (float(params["giou_weight"]) * giou + float(params["l1_weight"]) * l1)).sum() / wts.sum().clamp_min(_EPS)
    return float(params["score_weight"]) * score + box


def detection_result(task: Task, ious) -> TaskResult:
    """Per-sample IoU (N,), see ``metrics.box_iou``; the task score is the mean IoU."""
    ious = np.asarray(ious, dtype=np.float64).ravel()
    if ious.size == 0:
        return empty_result(task, DetectionKind.metric_names)
    iou = float(ious.mean())
    return TaskResult(task.task_id, task.kind, task.n, int(ious.size), {"IoU": iou}, float(np.clip(iou, 0.0, 1.0)))


def _cell(value: float) -> str:
    """A coordinate as a CSV cell: the shortest text that reads back as the same float."""
    return np.format_float_positional(float(value), trim="-")


class DetectionKind(TaskKind):
    name = "detection"
    csv_name = "detection"
    min_n = 1
    max_n = 1
    metric_names = ("IoU",)
    prediction_file = "detection_predictions.json"
    default_route = FPN
    label_columns = BOX_COLUMNS
    label_must_stay_inside = True
    official_selection_metrics = ("IoU",)

    def __init__(self) -> None:
        super().__init__()
        self.add_head("grid", DetectionGridHead, detection_grid, default=True)
        self.add_head("centernet", CentreDetectionHead, centernet_loss)

    # -- CSV -------------------------------------------------------------------
    def parse_label(self, row, task, header, folder):
        values = [row.get(c) for c in BOX_COLUMNS]
        if all(blank(v) for v in values):
            return LabelCells()
        try:
            box = np.array([float(v) for v in values], dtype=np.float64)
        except (TypeError, ValueError):
            raise LabelError(f"box {dict(zip(BOX_COLUMNS, values))} has a missing or non-numeric value") from None
        if not np.all(np.isfinite(box)):
            raise LabelError(f"box {box.tolist()} has a non-finite value")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise LabelError(f"box {box.tolist()} is empty or inverted (needs x_max > x_min and y_max > y_min)")
        return LabelCells(label=box)

    def label_to_columns(self, task, label):
        return {c: _cell(v) for c, v in zip(BOX_COLUMNS, label)}

    # -- checks ----------------------------------------------------------------
    def check_label(self, entry, task, size, require_labels):
        reasons, counted = super().check_label(entry, task, size, require_labels)
        if entry.label is not None:
            h, w = size
            x0, y0, x1, y1 = entry.label
            # A box may touch the border: 0 <= x_min < x_max <= width, same for y.
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                reasons.append(f"box {entry.label.tolist()} lies outside the {w}x{h} (w x h) image")
        return reasons, counted

    def counts(self, entry):
        return ["boxes"]

    # -- targets ---------------------------------------------------------------
    def transform_inputs(self, label):
        return {"bboxes": np.asarray(label, dtype=np.float32).reshape(1, 4)}

    def transformed_ok(self, out):
        return len(out["bboxes"]) == 1

    def encode_target(self, out, label, size):
        size_h, size_w = size
        box = np.asarray(out["bboxes"], dtype=np.float32)[0, :4] / np.array([size_w, size_h, size_w, size_h], np.float32)
        return torch.from_numpy(box)

    def resized_label(self, out, label):
        return np.asarray(out["bboxes"], dtype=np.float64)[0, :4]

    # -- prediction ------------------------------------------------------------
    def flip_back(self, decoded):
        x1, y1, x2, y2, score = decoded.unbind(dim=1)
        return torch.stack([1.0 - x2, y1, 1.0 - x1, y2, score], dim=1)

    def results(self, task, decoded, sizes, probabilities=False):
        rows = decoded.double().cpu().numpy()
        out = []
        for row, (h, w) in zip(rows, sizes):
            box = np.clip(row[:4], 0.0, 1.0)
            box = np.array([min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])])
            pixels = box * np.array([w, h, w, h], dtype=np.float64)
            out.append(DetectionResult(task.task_id, pixels, box, float(row[4])))
        return out

    # -- submission ------------------------------------------------------------
    def record_fields(self, result):
        return {"bbox_normalized": floats(result.box_normalized), "bbox_pixels": floats(result.box)}

    def truth_result(self, task, entry, noise, rng):
        h, w = image_size(entry.image_file)
        box = entry.label + rng.normal(0.0, noise * 0.1, size=4) * np.tile(entry.label[2:] - entry.label[:2], 2)
        return DetectionResult(task.task_id, box, box / np.array([w, h, w, h], dtype=np.float64), 1.0)

    def parse_record(self, item, task):
        if "bbox_normalized" in item:
            number_list(item, "bbox_normalized", 4)
        return number_list(item, "bbox_pixels", 4)

    # -- scoring ---------------------------------------------------------------
    def score_sample(self, task, value, truth, size):
        iou = float(box_iou(value, np.asarray(truth, dtype=np.float64))[0])
        return SampleScore(float(np.clip(iou, 0.0, 1.0)), {"IoU": iou, "box": [float(x) for x in value]}, iou)

    def task_result(self, task, scores):
        return detection_result(task, [s.data for s in scores])

    def chance_results(self, task, labels, sizes):
        """One box for every image: the mean of the truths' boxes normalised by their
        image's width and height, scaled to each image."""
        if not labels:
            return []
        scales = [np.array([w, h, w, h], dtype=np.float64) for h, w in sizes]
        mean = np.mean([np.asarray(box, dtype=np.float64) / scale for box, scale in zip(labels, scales)], axis=0)
        return [DetectionResult(task.task_id, mean * scale, mean.copy(), 1.0) for scale in scales]

    # -- drawing ---------------------------------------------------------------
    def draw_label(self, image, task, label, thickness):
        x0, y0, x1, y1 = (int(round(v)) for v in label)
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), ACCENT, thickness)

    def caption(self, task, label, note=""):
        return "box " + ", ".join(f"{v:g}" for v in label)

    def draw_prediction(self, ax, image, truth, value, record):
        canvas, scale = thumbnail(image)
        for box, colour in ((truth, TRUTH), (value, PREDICTED)):
            x0, y0, x1, y1 = (np.asarray(box, dtype=np.float64) * scale).round().astype(int)
            cv2.rectangle(canvas, (int(x0), int(y0)), (int(x1), int(y1)), colour, 2)
        ax.imshow(canvas)
        ax.set_title(f"IoU {float(record['IoU']):.3f}", fontsize=9)
