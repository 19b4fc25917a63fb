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

import cv2
import numpy as np

from fmuia.io.images import image_size
from fmuia.metrics.results import TaskResult, empty_result
from fmuia.metrics.scores import box_iou
from fmuia.kinds.base import FPN, LabelCells, LabelError, SampleScore, TaskKind, as_numpy, blank, floats, number_list
from fmuia.kinds.drawing import ACCENT, PREDICTED, TRUTH, thumbnail
from fmuia.tasks import Task

__all__ = ["BOX_COLUMNS", "DetectionKind", "DetectionResult", "detection_result"]

BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")


@dataclass
class DetectionResult:
    """``box``: [x_min, y_min, x_max, y_max] in original pixels; ``box_normalized`` the
    same in 0..1 of the image width/height; ``score`` the head's confidence (0..1)."""

    task_id: str
    box: np.ndarray
    box_normalized: np.ndarray
    score: float


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
    default_head = "grid"

    def register_heads(self) -> None:
        from fmuia.kinds.detection_heads import CentreDetectionHead, DetectionGridHead, centernet_loss, detection_grid

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
        import torch

        size_h, size_w = size
        box = np.asarray(out["bboxes"], dtype=np.float32)[0, :4] / np.array([size_w, size_h, size_w, size_h], np.float32)
        return torch.from_numpy(box)

    def resized_label(self, out, label):
        return np.asarray(out["bboxes"], dtype=np.float64)[0, :4]

    # -- prediction ------------------------------------------------------------
    def flip_back(self, decoded):
        x1, y1, x2, y2, score = decoded.T
        one = decoded.dtype.type(1.0)
        return np.stack([one - x2, y1, one - x1, y2, score], axis=1)

    def results(self, task, decoded, sizes, probabilities=False):
        rows = as_numpy(decoded)
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
