"""Validation with the challenge's metrics on original-size labels, scored exactly as
``fmuia evaluate`` scores a submission.

Each task's decoded head output goes through its kind's prediction step
(``TaskKind.results``: clamping, scaling to original pixels, masks nearest-resized to the
original size), then becomes the value a submission file would hold
(``TaskKind.prediction_value``: the JSON record, parsed back), which the kind scores
(``TaskKind.score_sample``) and aggregates (``TaskKind.task_result``), the functions the
scorer calls on the same predictions.

The best checkpoint is the one with the highest selection score (``train.select``, see
``fmuia.metrics.selection``): the challenge score, the official script's mean of its
metric columns, or the balanced mean of skills over chance. For the balanced score each
task's chance score is the score of its kind's uninformed constant prediction
(``TaskKind.chance_values``) on the same samples, scored by the same functions; it
depends on the validation labels only, so it is computed once and handed back in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from fmuia import kinds
from fmuia.config.schema import check_choice
from fmuia.config.sections import TrainConfig
from fmuia.evaluate import aggregate
from fmuia.evaluate.aggregate import Summary, TaskResult
from fmuia.kinds.base import SampleScore
from fmuia.metrics.selection import BalancedScore, balanced_score, official_score
from fmuia.model.routing import group_indices
from fmuia.tasks import Task, TaskRegistry

__all__ = ["Validation", "chance_score", "run_validation", "score_decoded"]


def score_decoded(task, decoded: torch.Tensor, labels, sizes) -> list[SampleScore]:
    """Per-sample scores of one task's decoded rows against their original-size labels
    (``sizes[i]``: row i's original (h, w)), through the prediction path of ``fmuia predict``."""
    owner = kinds.kind_of(task)
    scores = []
    for result, label, size in zip(owner.results(task, decoded, sizes), labels, sizes):
        value = owner.prediction_value(task, result)
        scores.append(owner.score_sample(task, value, label, size))
    return scores


def chance_scores(task: Task, labels: Sequence[Any], sizes: Sequence[tuple[int, int]]) -> list[SampleScore] | None:
    """Per-sample scores of the kind's uninformed constant prediction on these samples
    (None: the kind has no such prediction)."""
    owner = kinds.kind_of(task)
    values = owner.chance_values(task, labels, sizes)
    if values is None:
        return None
    return [owner.score_sample(task, v, t, s) for v, t, s in zip(values, labels, sizes)]


def chance_score(task: Task, labels: Sequence[Any], sizes: Sequence[tuple[int, int]]) -> float | None:
    """The task score of the kind's uninformed constant prediction on these samples
    (None: no samples, or the kind has no such prediction)."""
    scores = chance_scores(task, labels, sizes)
    if not scores:
        return None
    return kinds.kind_of(task).task_result(task, scores).score


@dataclass
class Validation:
    """Per-task results (registry order), their summary, the rule that selects the best
    checkpoint (``train.select``) and, for the balanced rule, each task's chance score."""

    results: list[TaskResult]
    summary: Summary
    loss: float | None = None
    select: str = "challenge"
    chance: Mapping[str, float | None] | None = None

    @property
    def score(self) -> float | None:
        """The challenge score."""
        return self.summary.challenge_score

    def selection_score(self, rule: str | None = None) -> float | None:
        """The score that picks the best checkpoint under ``rule`` (default: ``select``)."""
        rule = rule or self.select
        if rule == "challenge":
            return self.score
        if rule == "official":
            return official_score(self.results, {k.kind: k.official_selection_metrics for k in kinds.all_kinds()})
        check_choice("train.select", rule, TrainConfig.choices("select"))
        return self._balanced().score

    def _balanced(self) -> BalancedScore:
        if self.chance is None:
            raise ValueError("the balanced score needs the chance scores (run_validation with select='balanced')")
        return balanced_score(self.results, self.chance)

    def selection_columns(self) -> dict[str, float | None]:
        """The history's score columns: ``val_score`` (the selection score),
        ``challenge_score`` and, for the balanced rule, ``skill_<kind>``."""
        columns = {"val_score": self.selection_score(), "challenge_score": self.score}
        if self.select == "balanced":
            columns.update({f"skill_{kind}": value for kind, value in self._balanced().per_kind.items()})
        return columns

    def kind_columns(self) -> dict[str, float | None]:
        """``<kind>_<metric>`` -> value, for the metrics table."""
        return {f"{kind}_{name}": value for kind, metrics in self.summary.per_kind.items() for name, value in metrics.items()}

    def format_table(self) -> str:
        lines = [f"{'task':<26} {'kind':<15} {'n':>5}  {'score':>6}  metrics"]
        for r in self.results:
            metrics = "  ".join(f"{k}={v:.4g}" for k, v in r.metrics.items() if v is not None)
            score = f"{r.score:.4f}" if r.score is not None else "  -   "
            lines.append(f"{r.task_id:<26} {r.kind.value:<15} {r.num_samples:>5}  {score:>6}  {metrics}")
        score = f"{self.score:.4f}" if self.score is not None else "-"
        lines.append(f"challenge score: {score} over {self.summary.tasks_scored} task(s)")
        if self.select != "challenge":
            selected = self.selection_score()
            lines.append(f"{self.select} selection score: {selected:.4f}" if selected is not None
                         else f"{self.select} selection score: -")
        return "\n".join(lines)


@torch.no_grad()
def run_validation(model, loader, registry: TaskRegistry, device: torch.device, autocast, progress=None,
                   select: str = "challenge", chance: Mapping[str, float | None] | None = None) -> Validation:
    """Score ``model`` on a loader of ``EvalSet`` batches. ``autocast`` is a callable giving
    the precision context; ``progress`` wraps the loader (e.g. tqdm) when given.
    ``select`` is the selection rule; for ``balanced``, ``chance`` (task id -> chance
    score) of an earlier validation on the same loader, or None to compute it here."""
    check_choice("train.select", select, TrainConfig.choices("select"))
    was_training = model.training
    model.eval()
    scores: dict[str, list[SampleScore]] = {t.task_id: [] for t in registry}
    # The labels are kept only while the chance scores are still to be computed, and only
    # for kinds whose chance prediction needs the labels' statistics; the others' chance
    # predictions are scored batch by batch (no segmentation mask is held).
    keep = {t.task_id: ([], []) for t in registry} if select == "balanced" and chance is None else None
    chance_so_far: dict[str, list[SampleScore]] = {t.task_id: [] for t in registry}
    core = getattr(model, "module", model)
    try:
        for batch in progress(loader) if progress else loader:
            images = batch["image"].to(device, non_blocking=True)
            with autocast():
                outputs = model(images, batch["task_id"])
            decoded = core.decode(outputs)
            for task_id, rows in group_indices(batch["task_id"]).items():
                sizes = [tuple(int(v) for v in batch["size"][i]) for i in rows]
                labels = [batch["label"][i] for i in rows]
                scores[task_id] += score_decoded(registry[task_id], decoded[task_id], labels, sizes)
                if keep is not None:
                    task = registry[task_id]
                    if kinds.kind_of(task).chance_per_sample:
                        chance_so_far[task_id] += chance_scores(task, labels, sizes) or []
                    else:
                        keep[task_id][0].extend(labels)
                        keep[task_id][1].extend(sizes)
    finally:
        model.train(was_training)
    results = [kinds.kind_of(t).task_result(t, scores[t.task_id]) for t in registry]
    if keep is not None:
        chance = {t.task_id: (kinds.kind_of(t).task_result(t, chance_so_far[t.task_id]).score
                              if chance_so_far[t.task_id] else chance_score(t, *keep[t.task_id]))
                  for t in registry}
    return Validation(results=results, summary=aggregate.summarise(results), select=select,
                      chance=dict(chance) if chance is not None else None)
