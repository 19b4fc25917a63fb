"""From per-sample scores to per-task results, per-kind summaries and the challenge score.

Pure functions over arrays, shared by ``fmuia evaluate`` and training validation.

The challenge score
-------------------
One number in [0, 1] (higher is better) that counts every task once, for model
selection. Each task gets a score in [0, 1]:

* segmentation: ``(DSC + (1 - nHD)) / 2``, where nHD is computed exactly like HD
  but with each sample's distance divided by its image diagonal (so a class absent
  from exactly one of prediction and truth costs 1);
* classification: ROC AUC, or accuracy where AUC is undefined (one class present);
* detection: mean IoU;
* keypoints: the mean over samples of ``max(0, 1 - MRE / image diagonal)``.

The challenge score is the mean of the task scores over the tasks that have at
least one scored sample. Tasks without any are left out and reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fmuia.evaluate.metrics import classification_metrics
from fmuia.tasks import Kind, Task

__all__ = [
    "KIND_METRICS",
    "Summary",
    "TaskResult",
    "classification_result",
    "detection_result",
    "keypoint_result",
    "segmentation_result",
    "summarise",
]

# The metrics each kind reports, in the order of the summary (the challenge's names).
KIND_METRICS: dict[Kind, tuple[str, ...]] = {
    Kind.SEGMENTATION: ("DSC", "HD"),
    Kind.CLASSIFICATION: ("Accuracy", "AUC", "F1_macro", "F1_weighted", "MCC"),
    Kind.DETECTION: ("IoU",),
    Kind.KEYPOINTS: ("MRE",),
}

CHALLENGE_SCORE_DEFINITION = (
    "mean over tasks with scored samples of a per-task score in [0, 1]: "
    "segmentation (DSC + 1 - HD/diagonal) / 2; classification AUC (accuracy where AUC is undefined); "
    "detection IoU; keypoints mean of max(0, 1 - MRE/diagonal)"
)


@dataclass
class TaskResult:
    """The scores of one task. ``metrics`` maps metric names to floats, or None where
    undefined; ``score`` is the task's share of the challenge score (None: no samples)."""

    task_id: str
    kind: Kind
    n: int
    num_samples: int
    metrics: dict[str, float | None]
    score: float | None
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind.value,
            "n": self.n,
            "num_samples": self.num_samples,
            "score": self.score,
            "metrics": dict(self.metrics),
            "per_class": self.per_class,
            "notes": list(self.notes),
        }


def _empty(task: Task, extra: tuple[str, ...] = ()) -> TaskResult:
    metrics = {name: None for name in KIND_METRICS[task.kind] + extra}
    return TaskResult(task.task_id, task.kind, task.n, 0, metrics, None, notes=["no scored samples"])


def segmentation_result(task: Task, dice: np.ndarray, hd: np.ndarray, diagonals: np.ndarray) -> TaskResult:
    """``dice`` and ``hd`` are (N, n) per-sample, per-class scores; ``diagonals`` (N,).

    Each class's scores are averaged over the samples; DSC and HD are the means over
    classes 1..n-1 (background excluded, as the challenge does)."""
    dice = np.asarray(dice, dtype=np.float64).reshape(-1, task.n)
    hd = np.asarray(hd, dtype=np.float64).reshape(-1, task.n)
    if len(dice) == 0:
        return _empty(task, ("HD_norm",))
    diagonals = np.asarray(diagonals, dtype=np.float64).reshape(-1, 1)
    nhd = np.minimum(hd / diagonals, 1.0)
    dice_c, hd_c, nhd_c = dice.mean(axis=0), hd.mean(axis=0), nhd.mean(axis=0)
    dsc, mean_hd, mean_nhd = float(dice_c[1:].mean()), float(hd_c[1:].mean()), float(nhd_c[1:].mean())
    per_class = {
        str(c): {"DSC": float(dice_c[c]), "HD": float(hd_c[c]), "HD_norm": float(nhd_c[c])} for c in range(task.n)
    }
    return TaskResult(
        task.task_id, task.kind, task.n, len(dice),
        {"DSC": dsc, "HD": mean_hd, "HD_norm": mean_nhd},
        score=(dsc + 1.0 - mean_nhd) / 2.0,
        per_class=per_class,
    )


def classification_result(task: Task, y_true, y_pred, probs) -> TaskResult:
    """Labels (N,), predicted classes as written (N,), probabilities (N, n)."""
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        return _empty(task)
    m = classification_metrics(y_true, y_pred, probs, task.n)
    per_class = {str(c): {"F1": f} for c, f in enumerate(m.f1_per_class)}
    score = m.auc if m.auc is not None else m.accuracy
    return TaskResult(task.task_id, task.kind, task.n, int(y_true.size), m.as_dict(), score, per_class, list(m.notes))


def detection_result(task: Task, ious) -> TaskResult:
    """Per-sample IoU (N,), see ``metrics.box_iou``."""
    ious = np.asarray(ious, dtype=np.float64).ravel()
    if ious.size == 0:
        return _empty(task)
    iou = float(ious.mean())
    return TaskResult(task.task_id, task.kind, task.n, int(ious.size), {"IoU": iou}, float(np.clip(iou, 0.0, 1.0)))


def keypoint_result(task: Task, errors, diagonals) -> TaskResult:
    """Per-sample mean radial errors (N,) in pixels and image diagonals (N,)."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        return _empty(task, ("MRE_norm",))
    normalised = errors / np.asarray(diagonals, dtype=np.float64).ravel()
    score = float(np.maximum(0.0, 1.0 - normalised).mean())
    return TaskResult(
        task.task_id, task.kind, task.n, int(errors.size),
        {"MRE": float(errors.mean()), "MRE_norm": float(normalised.mean())}, score,
    )


# Per-sample share of the task score, for ranking samples worst first (report).
SAMPLE_SCORE: dict[Kind, Callable[..., float]] = {
    Kind.SEGMENTATION: lambda dice, hd, diagonal: float((dice[1:].mean() + 1.0 - min(hd[1:].mean() / diagonal, 1.0)) / 2.0),
    Kind.CLASSIFICATION: lambda probs, label: float(probs[label]),
    Kind.DETECTION: lambda iou: float(np.clip(iou, 0.0, 1.0)),
    Kind.KEYPOINTS: lambda error, diagonal: float(max(0.0, 1.0 - error / diagonal)),
}


@dataclass
class Summary:
    """Per-kind means of the task metrics, and the challenge score."""

    per_kind: dict[str, dict[str, float | None]]
    tasks_per_kind: dict[str, int]
    challenge_score: float | None
    tasks_scored: int
    tasks_without_samples: list[str]

    def to_dict(self) -> dict:
        return {
            "challenge_score": self.challenge_score,
            "challenge_score_definition": CHALLENGE_SCORE_DEFINITION,
            "tasks_scored": self.tasks_scored,
            "tasks_without_samples": list(self.tasks_without_samples),
            "per_kind": self.per_kind,
            "tasks_per_kind": self.tasks_per_kind,
        }


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def summarise(results: list[TaskResult]) -> Summary:
    """Per kind: each metric averaged over the kind's tasks that have samples (a metric
    undefined for a task is left out of its mean); then the challenge score."""
    per_kind: dict[str, dict[str, float | None]] = {}
    tasks_per_kind: dict[str, int] = {}
    scored = [r for r in results if r.num_samples > 0]
    for kind, names in KIND_METRICS.items():
        of_kind = [r for r in scored if r.kind is kind]
        if not of_kind:
            continue
        tasks_per_kind[kind.value] = len(of_kind)
        per_kind[kind.value] = {name: _mean_defined([r.metrics.get(name) for r in of_kind]) for name in names}
    scores = [r.score for r in scored if r.score is not None]
    return Summary(
        per_kind=per_kind,
        tasks_per_kind=tasks_per_kind,
        challenge_score=float(np.mean(scores)) if scores else None,
        tasks_scored=len(scores),
        tasks_without_samples=[r.task_id for r in results if r.num_samples == 0],
    )
