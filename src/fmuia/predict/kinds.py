"""What prediction does with each kind of task, in one place per kind: how a decoded
head output (normalised, in the model's frame) becomes a result in original pixels,
how it is flipped back after a horizontally flipped test-time view, and the JSON
record of the submission.

Decoded forms (see ``fmuia.model.heads``), one row per sample:

=============== ===========================================================
segmentation    ``(n, S, S)`` class probabilities
classification  ``(n,)`` class probabilities
detection       ``(5,)`` ``x1, y1, x2, y2`` in 0..1 and a score in 0..1
keypoints       ``(K, 2)`` ``[x, y]`` in 0..1
=============== ===========================================================
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from fmuia.data.records import Entry
from fmuia.predict.results import (
    ClassificationResult,
    DetectionResult,
    KeypointsResult,
    Result,
    SegmentationResult,
)
from fmuia.tasks import Kind, Task

Size = tuple[int, int]  # original (height, width)


def _floats(values: np.ndarray) -> list[float]:
    """Plain Python floats (JSON must never see numpy scalars)."""
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


class KindOutput:
    """The prediction rules of one kind. Subclasses fill in the three methods."""

    kind: Kind

    def flip_back(self, decoded: torch.Tensor) -> torch.Tensor:
        """Decoded predictions of horizontally flipped images, mapped to the unflipped frame."""
        raise NotImplementedError

    def results(self, task: Task, decoded: torch.Tensor, sizes: Sequence[Size], probabilities: bool = False) -> list[Result]:
        """One result per row, in original pixels (``sizes[i]`` is row i's (h, w))."""
        raise NotImplementedError

    def record(self, entry: Entry, result: Result) -> dict:
        """The row's entry in the submission JSON (image_path copied verbatim)."""
        raise NotImplementedError


class SegmentationOutput(KindOutput):
    kind = Kind.SEGMENTATION

    def flip_back(self, decoded: torch.Tensor) -> torch.Tensor:
        return decoded.flip(-1)

    def results(self, task, decoded, sizes, probabilities=False):
        # argmax where the batch lives (GPU), move only the uint8 class maps.
        class_maps = decoded.argmax(dim=1).to(torch.uint8).cpu().numpy()
        probs = decoded.float().cpu().numpy() if probabilities else None
        out: list[Result] = []
        for i, (h, w) in enumerate(sizes):
            # Nearest-neighbour back to the original size (the submission contract).
            mask = cv2.resize(class_maps[i], (w, h), interpolation=cv2.INTER_NEAREST)
            prob = None
            if probs is not None:
                prob = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs[i]])
            out.append(SegmentationResult(task.task_id, np.ascontiguousarray(mask, dtype=np.uint8), prob))
        return out

    def record(self, entry, result):
        raise TypeError("segmentation predictions are PNG files, not JSON records")


class ClassificationOutput(KindOutput):
    kind = Kind.CLASSIFICATION

    def flip_back(self, decoded: torch.Tensor) -> torch.Tensor:
        return decoded

    def results(self, task, decoded, sizes, probabilities=False):
        probs = decoded.double().cpu().numpy()
        out: list[Result] = []
        for row in probs:
            row = np.clip(row, 0.0, None)
            row = row / row.sum()  # float64: the written list sums to 1 to ~1e-16
            label = int(np.argmax(row))
            out.append(ClassificationResult(task.task_id, label, row, task.class_name(label)))
        return out

    def record(self, entry, result):
        return {
            "image_path": entry.image_path,
            "task_id": entry.task_id,
            "predicted_class": int(result.label),
            "predicted_probs": _floats(result.probabilities),
        }


class DetectionOutput(KindOutput):
    kind = Kind.DETECTION

    def flip_back(self, decoded: torch.Tensor) -> torch.Tensor:
        x1, y1, x2, y2, score = decoded.unbind(dim=1)
        return torch.stack([1.0 - x2, y1, 1.0 - x1, y2, score], dim=1)

    def results(self, task, decoded, sizes, probabilities=False):
        rows = decoded.double().cpu().numpy()
        out: list[Result] = []
        for row, (h, w) in zip(rows, sizes):
            box = np.clip(row[:4], 0.0, 1.0)
            box = np.array([min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])])
            pixels = box * np.array([w, h, w, h], dtype=np.float64)
            out.append(DetectionResult(task.task_id, pixels, box, float(row[4])))
        return out

    def record(self, entry, result):
        return {
            "image_path": entry.image_path,
            "task_id": entry.task_id,
            "bbox_normalized": _floats(result.box_normalized),
            "bbox_pixels": _floats(result.box),
        }


class KeypointsOutput(KindOutput):
    kind = Kind.KEYPOINTS

    def flip_back(self, decoded: torch.Tensor) -> torch.Tensor:
        flipped = decoded.clone()
        flipped[..., 0] = 1.0 - flipped[..., 0]
        return flipped

    def results(self, task, decoded, sizes, probabilities=False):
        rows = decoded.double().cpu().numpy()
        out: list[Result] = []
        for row, (h, w) in zip(rows, sizes):
            points = np.clip(row.reshape(-1, 2), 0.0, 1.0)
            out.append(KeypointsResult(task.task_id, points * np.array([w, h], dtype=np.float64), points))
        return out

    def record(self, entry, result):
        return {
            "image_path": entry.image_path,
            "task_id": entry.task_id,
            "predicted_points_normalized": _floats(result.points_normalized),
            "predicted_points_pixels": _floats(result.points),
        }


OUTPUTS: dict[Kind, KindOutput] = {o.kind: o for o in (SegmentationOutput(), ClassificationOutput(), DetectionOutput(), KeypointsOutput())}


def output_for(kind: Kind) -> KindOutput:
    return OUTPUTS[kind]
