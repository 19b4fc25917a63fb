"""Scoring as the challenge does, and the visual report.

``metrics`` holds the pure metric functions (numpy in, floats out) that training
validates with; ``aggregate`` turns per-sample scores into task results, per-kind
summaries and the challenge score; ``scorer`` scores a prediction folder.
"""
from fmuia.evaluate.aggregate import (
    CHALLENGE_SCORE_DEFINITION,
    Summary,
    TaskResult,
    summarise,
)
from fmuia.evaluate.metrics import (
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


def evaluate(data_root: str, pred_dir: str, workers: int = 2, registry=None):
    """Score a prediction folder; see ``fmuia.evaluate.scorer.evaluate``."""
    from fmuia.evaluate.scorer import evaluate as _evaluate

    return _evaluate(data_root, pred_dir, workers=workers, registry=registry)
