"""Typed predictions of one image, in the pixels of the original image."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np


@dataclass
class SegmentationResult:
    """``mask``: (H, W) uint8 class ids at the original size. ``probabilities``:
    (n, H, W) float32 class probabilities at the original size, when asked for."""

    task_id: str
    mask: np.ndarray
    probabilities: Optional[np.ndarray] = None


@dataclass
class ClassificationResult:
    """``label``: the predicted class; ``probabilities``: (n,) float64 summing to 1."""

    task_id: str
    label: int
    probabilities: np.ndarray
    class_name: str


@dataclass
class DetectionResult:
    """``box``: [x_min, y_min, x_max, y_max] in original pixels; ``box_normalized`` the
    same in 0..1 of the image width/height; ``score`` the head's confidence (0..1)."""

    task_id: str
    box: np.ndarray
    box_normalized: np.ndarray
    score: float


@dataclass
class KeypointsResult:
    """``points``: (K, 2) [[x, y], ...] in original pixels; ``points_normalized`` in 0..1."""

    task_id: str
    points: np.ndarray
    points_normalized: np.ndarray


Result = Union[SegmentationResult, ClassificationResult, DetectionResult, KeypointsResult]
