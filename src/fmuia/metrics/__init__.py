"""The challenge's metrics and score, below the task kinds and the scorer.

``scores`` holds the pure metric functions (numpy in, floats out); ``results`` the
per-task results, their per-kind summary and the challenge score. The kinds, training
validation and ``fmuia.evaluate`` all import from here, and so does prediction (through
the kinds): nothing here may import training, reporting or scikit-learn at module level.
"""
from fmuia.metrics.results import CHALLENGE_SCORE_DEFINITION, Summary, TaskResult, empty_result, summarise
from fmuia.metrics.scores import (
    ClassificationMetrics,
    SegmentationScores,
    box_iou,
    classification_metrics,
    dice,
    dice_per_class,
    directed_hausdorff,
    hausdorff,
    hausdorff_per_class,
    image_diagonal,
    radial_errors,
    segmentation_scores,
)

__all__ = [
    "CHALLENGE_SCORE_DEFINITION",
    "ClassificationMetrics",
    "SegmentationScores",
    "Summary",
    "TaskResult",
    "box_iou",
    "classification_metrics",
    "dice",
    "dice_per_class",
    "directed_hausdorff",
    "empty_result",
    "hausdorff",
    "hausdorff_per_class",
    "image_diagonal",
    "radial_errors",
    "segmentation_scores",
    "summarise",
]
