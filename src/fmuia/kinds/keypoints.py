"""Keypoints (the CSV's ``Regression``): ``n`` points per image (CSV ``point_1_xy`` ...
``point_n_xy``, each a JSON ``"[x, y]"`` in original pixels).

Label: ``np.ndarray (K, 2) float64``. Target: ``FloatTensor (K, 2)`` ``[x, y] / [S, S]``.
Heads: ``regression`` (default; pooled features to ``2K`` normalised coordinates, loss:
mean squared error), ``bounded_regression`` (the same through a sigmoid, so that every
prediction lies in the image) and ``heatmap`` (one heatmap per point on the FPN map,
decoded by a soft-argmax near the peak; loss: DSNT, the Euclidean distance of the
soft-argmax to the target times ``coord_weight`` plus ``reg_weight`` times the
Jensen-Shannon divergence to a Gaussian of ``sigma`` cells).
Submission: ``regression_predictions.json`` entries with ``predicted_points_normalized``
and ``predicted_points_pixels`` (``x1, y1, x2, y2, ...``).
Score: mean radial error in pixels; the task score is the mean of
``max(0, 1 - MRE / image diagonal)``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import cv2
import numpy as np

from fmuia.io.images import image_size
from fmuia.metrics.results import TaskResult, empty_result
from fmuia.metrics.scores import image_diagonal, radial_errors
from fmuia.kinds.base import TOP, LabelCells, LabelError, SampleScore, TaskKind, as_numpy, blank, floats, number_list
from fmuia.kinds.drawing import ACCENT, PREDICTED, TRUTH, thumbnail
from fmuia.tasks import Task

__all__ = ["KeypointsKind", "KeypointsResult", "POINT_COLUMN", "keypoint_result"]

POINT_COLUMN = "point_{}_xy"


@dataclass
class KeypointsResult:
    """``points``: (K, 2) [[x, y], ...] in original pixels; ``points_normalized`` in 0..1."""

    task_id: str
    points: np.ndarray
    points_normalized: np.ndarray


def is_point_column(name: str) -> bool:
    return name.startswith("point_") and name.endswith("_xy") and name[6:-3].isdigit()


def parse_point(text: str) -> tuple[float, float]:
    """A JSON ``"[x, y]"`` cell; ``ValueError`` naming the text otherwise."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise ValueError(f"not a JSON [x, y] pair: {text!r}") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"not a JSON [x, y] pair: {text!r}")
    x, y = float(value[0]), float(value[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"non-finite coordinate in {text!r}")
    return x, y


def keypoint_result(task: Task, errors, diagonals) -> TaskResult:
    """Per-sample mean radial errors (N,) in pixels and image diagonals (N,)."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        return empty_result(task, KeypointsKind.metric_names + ("MRE_norm",))
    normalised = errors / np.asarray(diagonals, dtype=np.float64).ravel()
    score = float(np.maximum(0.0, 1.0 - normalised).mean())
    return TaskResult(
        task.task_id, task.kind, task.n, int(errors.size),
        {"MRE": float(errors.mean()), "MRE_norm": float(normalised.mean())}, score,
    )


class KeypointsKind(TaskKind):
    name = "keypoints"
    csv_name = "Regression"
    min_n = 1
    metric_names = ("MRE",)
    lower_is_better = frozenset({"MRE", "MRE_norm"})
    pixel_metrics = frozenset({"MRE"})
    prediction_file = "regression_predictions.json"
    default_route = TOP
    label_columns = ("point_1_xy",)  # and point_2_xy ... up to n (is_label_column)
    official_selection_metrics = ()  # the official table's MAE column does not count
    default_head = "regression"

    def register_heads(self) -> None:
        from fmuia.kinds.keypoints_heads import (
            KeypointBoundedRegressionHead, KeypointHeatmapHead, KeypointRegressionHead, keypoint_bounded_mse,
            keypoint_heatmap_loss, keypoint_mse,
        )

        self.add_head("regression", KeypointRegressionHead, keypoint_mse, default=True)
        self.add_head("bounded_regression", KeypointBoundedRegressionHead, keypoint_bounded_mse)
        self.add_head("heatmap", KeypointHeatmapHead, keypoint_heatmap_loss)

    # -- CSV -------------------------------------------------------------------
    def is_label_column(self, column):
        return is_point_column(column)

    def csv_columns(self, n):
        return tuple(POINT_COLUMN.format(k + 1) for k in range(n))

    def parse_label(self, row, task, header, folder):
        cols = [POINT_COLUMN.format(i + 1) for i in range(task.num_points)]
        values = [row.get(c) for c in cols]
        if all(blank(v) for v in values):
            return LabelCells()
        missing = [c for c in cols if c not in header]
        if missing:
            raise LabelError(f"keypoint task with {task.num_points} points but column(s) {', '.join(missing)} missing")
        points = []
        for col, text in zip(cols, values):
            if blank(text):
                raise LabelError(f"{col} is empty while other points are given")
            try:
                points.append(parse_point(text))
            except ValueError as exc:
                raise LabelError(f"{col}: {exc}") from None
        return LabelCells(label=np.array(points, dtype=np.float64))

    def label_to_columns(self, task, label):
        return {POINT_COLUMN.format(k + 1): json.dumps([float(x), float(y)]) for k, (x, y) in enumerate(label)}

    # -- checks ----------------------------------------------------------------
    def check_label(self, entry, task, size, require_labels):
        reasons, counted = super().check_label(entry, task, size, require_labels)
        if entry.label is not None:
            h, w = size
            for k, (x, y) in enumerate(entry.label):
                if not (0 <= x <= w and 0 <= y <= h):
                    reasons.append(f"{POINT_COLUMN.format(k + 1)} [{x:g}, {y:g}] lies outside the {w}x{h} (w x h) image")
        return reasons, counted

    def counts(self, entry):
        return ["points"] * len(entry.label)

    # -- targets ---------------------------------------------------------------
    def transform_inputs(self, label):
        return {"keypoints": np.asarray(label, dtype=np.float32).reshape(-1, 2)}

    def encode_target(self, out, label, size):
        import torch

        size_h, size_w = size
        pts = np.asarray(out["keypoints"], dtype=np.float32)[:, :2] / np.array([size_w, size_h], np.float32)
        return torch.from_numpy(np.ascontiguousarray(pts))

    def resized_label(self, out, label):
        return np.asarray(out["keypoints"], dtype=np.float64)[:, :2]

    # -- prediction ------------------------------------------------------------
    def flip_back(self, decoded):
        flipped = decoded.copy()
        flipped[..., 0] = decoded.dtype.type(1.0) - flipped[..., 0]
        return flipped

    def results(self, task, decoded, sizes, probabilities=False):
        rows = as_numpy(decoded)
        out = []
        for row, (h, w) in zip(rows, sizes):
            points = np.clip(row.reshape(-1, 2), 0.0, 1.0)
            out.append(KeypointsResult(task.task_id, points * np.array([w, h], dtype=np.float64), points))
        return out

    # -- submission ------------------------------------------------------------
    def record_fields(self, result):
        return {"predicted_points_normalized": floats(result.points_normalized), "predicted_points_pixels": floats(result.points)}

    def truth_result(self, task, entry, noise, rng):
        h, w = image_size(entry.image_file)
        points = entry.label + rng.normal(0.0, noise * 20.0, size=entry.label.shape)
        return KeypointsResult(task.task_id, points, points / np.array([w, h], dtype=np.float64))

    def parse_record(self, item, task):
        points = number_list(item, "predicted_points_pixels", 2 * task.num_points if task else None)
        if points.size % 2:
            raise LabelError(f"'predicted_points_pixels' has an odd number of values ({points.size})")
        if "predicted_points_normalized" in item:
            number_list(item, "predicted_points_normalized", points.size)
        return points.reshape(-1, 2)

    # -- scoring ---------------------------------------------------------------
    def truth_size(self, entry, truth):
        # The diagonal normalises the task score; read from the header only.
        return image_size(entry.image_file)

    def score_sample(self, task, value, truth, size):
        error = float(radial_errors(value, np.asarray(truth, dtype=np.float64))[0])
        diagonal = image_diagonal(size)
        score = float(max(0.0, 1.0 - error / diagonal))
        return SampleScore(score, {"MRE": error, "points": np.asarray(value).tolist()}, (error, diagonal))

    def task_result(self, task, scores):
        return keypoint_result(task, [s.data[0] for s in scores], [s.data[1] for s in scores])

    def chance_results(self, task, labels, sizes):
        """Every point at the mean of the truths' positions normalised by their image's
        width and height, scaled to each image."""
        if not labels:
            return []
        scales = [np.array([w, h], dtype=np.float64) for h, w in sizes]
        mean = np.mean([np.asarray(points, dtype=np.float64) / scale for points, scale in zip(labels, scales)], axis=0)
        return [KeypointsResult(task.task_id, mean * scale, mean.copy()) for scale in scales]

    # -- drawing ---------------------------------------------------------------
    def draw_label(self, image, task, label, thickness):
        pts = [(int(round(x)), int(round(y))) for x, y in label]
        for a, b in zip(pts, pts[1:]):
            cv2.line(image, a, b, (0, 255, 160), 1, cv2.LINE_AA)
        for k, p in enumerate(pts):
            cv2.circle(image, p, 3 * thickness + 1, ACCENT, -1, cv2.LINE_AA)
            cv2.putText(image, str(k + 1), (p[0] + 5, p[1] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thickness, ACCENT,
                        thickness, cv2.LINE_AA)

    def caption(self, task, label, note=""):
        return f"{len(label)} points"

    def draw_prediction(self, ax, image, truth, value, record):
        canvas, scale = thumbnail(image)
        for k, (t, p) in enumerate(zip(truth * scale, np.asarray(value) * scale)):
            t, p = tuple(int(round(v)) for v in t), tuple(int(round(v)) for v in p)
            cv2.line(canvas, t, p, (255, 255, 0), 1)
            cv2.circle(canvas, t, 5, TRUTH, 2)
            cv2.drawMarker(canvas, p, PREDICTED, cv2.MARKER_CROSS, 10, 2)
            cv2.putText(canvas, str(k + 1), (t[0] + 6, t[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, TRUTH, 1)
        ax.imshow(canvas)
        errors = np.linalg.norm(np.asarray(value) - truth, axis=1)
        ax.set_title(f"MRE {float(record['MRE']):.1f} px  ({', '.join(f'{e:.0f}' for e in errors)})", fontsize=9)
