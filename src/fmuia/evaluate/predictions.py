"""Reading a prediction folder (docs/format.md, "Submission files") strictly.

A malformed file is a ``DataError`` naming the file and the entry index; entries
that match no ground-truth row are kept aside as extras, never silently dropped.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from fmuia.io.images import read_predicted_mask
from fmuia.errors import DataError
from fmuia.io.paths import submission_mask_path
from fmuia.tasks import Kind, Task, TaskRegistry

__all__ = [
    "PREDICTION_FILES",
    "ClassPrediction",
    "Extra",
    "PredictionFile",
    "read_prediction_file",
    "read_prediction_mask",
    "submission_mask_path",
]

SEGMENTATION_DIR = "Segmentation"

# The JSON file of each non-segmentation kind, and the key it is scored on.
PREDICTION_FILES: dict[Kind, str] = {
    Kind.CLASSIFICATION: "classification_predictions.json",
    Kind.DETECTION: "detection_predictions.json",
    Kind.KEYPOINTS: "regression_predictions.json",
}

# predicted_probs must sum to 1 within this (float32 softmax rounding is far smaller).
PROBABILITY_SUM_TOLERANCE = 1e-3


def read_prediction_mask(path: str, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """A predicted class-id mask at ``shape`` (h, w): nearest-resized when it has
    another size. Returns the mask and whether it was resized."""
    mask = read_predicted_mask(path)
    if mask.shape == tuple(shape):
        return mask, False
    return cv2.resize(mask, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST), True


@dataclass(frozen=True)
class ClassPrediction:
    predicted_class: int
    probs: np.ndarray  # (n,)


@dataclass(frozen=True)
class Extra:
    """A prediction that matches no ground-truth row."""

    source: str  # file, relative to the prediction folder
    index: int | None  # entry index in a JSON file; None for a mask file
    task_id: str
    image_path: str
    reason: str

    def to_dict(self) -> dict:
        return {"source": self.source, "index": self.index, "task_id": self.task_id, "image_path": self.image_path, "reason": self.reason}


@dataclass
class PredictionFile:
    """One JSON prediction file: ``values[(task_id, image_path)] = (index, value)``."""

    path: str
    kind: Kind
    values: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    extras: list[Extra] = field(default_factory=list)

    def get(self, task_id: str, image_path: str):
        found = self.values.get((task_id, image_path))
        return None if found is None else found[1]


class _Bad(ValueError):
    """A malformed entry; the reader adds the file and the index."""


def _number_list(item: dict, key: str, length: int | None) -> np.ndarray:
    value = item.get(key)
    if not isinstance(value, list):
        raise _Bad(f"{key!r} must be a list of numbers, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise _Bad(f"{key!r} has {len(value)} values, expected {length}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _Bad(f"{key!r}[{i}] = {v!r} is not a finite number")
    return np.asarray(value, dtype=np.float64)


def _classification(item: dict, task: Task | None) -> ClassPrediction:
    cls = item.get("predicted_class")
    if isinstance(cls, bool) or not isinstance(cls, (int, float)) or not math.isfinite(cls) or cls != int(cls):
        raise _Bad(f"'predicted_class' = {cls!r} is not an integer")
    cls = int(cls)
    probs = _number_list(item, "predicted_probs", task.n if task else None)
    if task is not None and not 0 <= cls < task.n:
        raise _Bad(f"'predicted_class' = {cls} outside 0..{task.n - 1}")
    if np.any(probs < 0) or abs(float(probs.sum()) - 1.0) > PROBABILITY_SUM_TOLERANCE:
        raise _Bad(f"'predicted_probs' must be non-negative and sum to 1, got sum {float(probs.sum()):.6g}")
    return ClassPrediction(cls, probs)


def _detection(item: dict, task: Task | None) -> np.ndarray:
    if "bbox_normalized" in item:
        _number_list(item, "bbox_normalized", 4)
    return _number_list(item, "bbox_pixels", 4)


def _keypoints(item: dict, task: Task | None) -> np.ndarray:
    points = _number_list(item, "predicted_points_pixels", 2 * task.n if task else None)
    if points.size % 2:
        raise _Bad(f"'predicted_points_pixels' has an odd number of values ({points.size})")
    if "predicted_points_normalized" in item:
        _number_list(item, "predicted_points_normalized", points.size)
    return points.reshape(-1, 2)


_PARSERS: dict[Kind, Callable[[dict, Task | None], Any]] = {
    Kind.CLASSIFICATION: _classification,
    Kind.DETECTION: _detection,
    Kind.KEYPOINTS: _keypoints,
}


def read_prediction_file(pred_dir: str, kind: Kind, registry: TaskRegistry, labelled: set[tuple[str, str]]) -> PredictionFile | None:
    """Read and check the JSON file of ``kind`` in ``pred_dir``; None when it is absent.

    ``labelled`` holds the (task_id, image_path) keys of the ground truth. An entry
    whose key is not among them is an extra; a repeated key keeps the last entry (as
    the challenge's scorer does) and the earlier one is listed as an extra.
    """
    name = PREDICTION_FILES[kind]
    path = os.path.join(pred_dir, name)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of predictions, got {type(data).__name__}")
    out = PredictionFile(path=path, kind=kind)
    parse = _PARSERS[kind]
    for index, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise _Bad(f"expected an object, got {type(item).__name__}")
            for key in ("image_path", "task_id"):
                if not isinstance(item.get(key), str) or not item.get(key):
                    raise _Bad(f"missing or non-string {key!r}")
            task_id, image_path = item["task_id"], item["image_path"]
            task = registry.get(task_id)
            if task is not None and task.kind is not kind:
                raise _Bad(f"task {task_id!r} is a {task.kind.value} task, not {kind.value}")
            value = parse(item, task)
        except _Bad as exc:
            raise DataError(f"{path}: entry {index}: {exc}") from None
        key = (task_id, image_path)
        if key not in labelled:
            reason = "task not in the ground truth" if task is None else "no labelled ground-truth row with this image_path"
            out.extras.append(Extra(name, index, task_id, image_path, reason))
            continue
        if key in out.values:
            earlier = out.values[key][0]
            out.extras.append(Extra(name, earlier, task_id, image_path, f"duplicate: superseded by entry {index}"))
        out.values[key] = (index, value)
    return out


def extra_masks(pred_dir: str, expected: set[str]) -> list[Extra]:
    """Mask files under ``<pred_dir>/Segmentation`` that no ground-truth row asks for
    (``expected`` holds submission-relative paths with '/' separators)."""
    extras = []
    top = os.path.join(pred_dir, SEGMENTATION_DIR)
    for folder, _, files in os.walk(top):
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(folder, name), pred_dir).replace(os.sep, "/")
            if rel not in expected:
                extras.append(Extra(rel, None, "", rel, "no segmentation row has this mask_path"))
    return sorted(extras, key=lambda e: e.source)
