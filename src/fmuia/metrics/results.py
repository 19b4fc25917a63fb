"""From per-sample scores to per-task results, per-kind summaries and the challenge score.

Shared by ``fmuia evaluate``, training validation and the task kinds (each kind builds
its per-task result in its own module, ``fmuia.kinds``); this module averages over
tasks. It knows no kind by name: ``summarise`` is handed each kind's metric names
(``fmuia.evaluate.aggregate.summarise`` hands it those of the registered kinds).

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

import numpy as np

from typing import Mapping, Sequence

from fmuia.tasks import Kind, Task

__all__ = ["CHALLENGE_SCORE_DEFINITION", "Summary", "TaskResult", "empty_result", "summarise"]

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


def empty_result(task: Task, metric_names: tuple[str, ...]) -> TaskResult:
    """The result of a task without scored samples: every metric undefined."""
    return TaskResult(task.task_id, task.kind, task.n, 0, {name: None for name in metric_names}, None,
                      notes=["no scored samples"])


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


def summarise(results: list[TaskResult], kind_metrics: Mapping[Kind, Sequence[str]]) -> Summary:
    """Per kind of ``kind_metrics`` (in its order): each of the kind's metrics averaged over
    its tasks that have samples (a metric undefined for a task is left out of its mean);
    then the challenge score over all tasks."""
    per_kind: dict[str, dict[str, float | None]] = {}
    tasks_per_kind: dict[str, int] = {}
    scored = [r for r in results if r.num_samples > 0]
    for kind, names in kind_metrics.items():
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
