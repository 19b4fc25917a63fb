"""Checkpoint-selection scores: other ways than the challenge score to sum a validation
up in one number (``train.select``). Like ``fmuia.metrics.results`` this module knows no
kind by name; the caller hands it what each kind contributes.

official
    The official training script's rule. Its validation table has a row per task and a
    column per metric (segmentation Dice, classification accuracy and macro F1, detection
    IoU, keypoint MAE); the best epoch has the highest mean of all the cells of the
    columns other than MAE. So every cell counts once: a classification task, with two
    cells, weighs twice a segmentation or detection task, and keypoints do not count.

balanced
    Each task's challenge task score ``s`` rescaled by the score ``c`` that its kind's
    uninformed constant prediction gets on the same samples: ``skill = (s - c) / (1 - c)``,
    0 for a chance prediction and 1 for a perfect one on every kind (the challenge score
    itself gives a keypoint centre guess about 0.85 and a chance classifier 0.5). The
    skills are averaged over a kind's tasks, then over the kinds that have one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from fmuia.metrics.results import TaskResult
from fmuia.tasks import Kind

__all__ = ["BalancedScore", "balanced_score", "official_score", "skill"]


def official_score(results: Sequence[TaskResult], columns: Mapping[Kind, Sequence[str]]) -> float | None:
    """The mean of every defined cell of the official table: for each task with samples,
    the metrics its kind lists in ``columns`` (a kind absent or with no names adds no
    cell). None when there is no cell."""
    cells = [
        r.metrics.get(name)
        for r in results
        if r.num_samples > 0
        for name in columns.get(r.kind, ())
    ]
    defined = [float(v) for v in cells if v is not None]
    return float(np.mean(defined)) if defined else None


def skill(score: float | None, chance: float | None) -> float | None:
    """``(score - chance) / (1 - chance)``: 0 at the chance score, 1 at a perfect score.
    None when either is unknown or the chance score is already perfect (nothing to gain)."""
    if score is None or chance is None or chance >= 1.0:
        return None
    return (float(score) - float(chance)) / (1.0 - float(chance))


@dataclass
class BalancedScore:
    """The balanced score and its parts: ``per_task`` task id -> skill, ``per_kind``
    kind name -> mean skill of its tasks (kinds without any skill left out), ``score``
    their mean (None when no kind has one)."""

    per_task: dict[str, float | None]
    per_kind: dict[str, float]
    score: float | None


def balanced_score(results: Sequence[TaskResult], chance: Mapping[str, float | None]) -> BalancedScore:
    """Skills of ``results`` against ``chance`` (task id -> its chance score), averaged
    over each kind's tasks, then over kinds (in the order kinds first appear)."""
    per_task = {r.task_id: skill(r.score, chance.get(r.task_id)) for r in results}
    by_kind: dict[str, list[float]] = {}
    for r in results:
        value = per_task[r.task_id]
        if value is not None:
            by_kind.setdefault(r.kind.value, []).append(value)
    per_kind = {kind: float(np.mean(values)) for kind, values in by_kind.items()}
    score = float(np.mean(list(per_kind.values()))) if per_kind else None
    return BalancedScore(per_task, per_kind, score)
