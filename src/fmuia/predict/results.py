"""Typed predictions of one image, in the pixels of the original image. Each kind's
result type lives in its module (``fmuia.kinds``); here they are gathered for callers."""
from __future__ import annotations

from typing import Union

from fmuia.kinds.classification import ClassificationResult
from fmuia.kinds.detection import DetectionResult
from fmuia.kinds.keypoints import KeypointsResult
from fmuia.kinds.segmentation import SegmentationResult

__all__ = ["ClassificationResult", "DetectionResult", "KeypointsResult", "Result", "SegmentationResult"]

# Any kind's result (a kind added later has its own type; code that handles results
# generically asks the kind, never the type).
Result = Union[SegmentationResult, ClassificationResult, DetectionResult, KeypointsResult]
