"""Scoring as the challenge does, and the visual report.

The metric functions and the task results live in ``fmuia.metrics`` (below the task
kinds, which build results with them) and are re-exported here; ``aggregate`` summarises
results over the registered kinds; ``scorer`` scores a prediction folder.
"""
from fmuia.evaluate.aggregate import (
    CHALLENGE_SCORE_DEFINITION,
    Summary,
    TaskResult,
    summarise,
)
from fmuia.evaluate.scorer import evaluate
from fmuia.metrics.scores import (
    ClassificationMetrics,
    SegmentationScores,
    box_iou,
    classification_metrics,
    dice,
    dice_per_class,
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
    "evaluate",
    "hausdorff",
    "hausdorff_per_class",
    "image_diagonal",
    "radial_errors",
    "segmentation_scores",
    "summarise",
]

