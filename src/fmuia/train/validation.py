"""Validation with the challenge's metrics on original-size labels, scored exactly as
``fmuia evaluate`` scores a submission.

Each task's decoded head output goes through its kind's prediction step
(``TaskKind.results``: clamping, scaling to original pixels, masks nearest-resized to the
original size), then becomes the value a submission file would hold
(``TaskKind.prediction_value``: the JSON record, parsed back), which the kind scores
(``TaskKind.score_sample``) and aggregates (``TaskKind.task_result``), the functions the
scorer calls on the same predictions. The challenge score picks the best checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fmuia import kinds
from fmuia.evaluate import aggregate
from fmuia.evaluate.aggregate import Summary, TaskResult
from fmuia.kinds.base import SampleScore
from fmuia.model.routing import group_indices
from fmuia.tasks import TaskRegistry

__all__ = ["Validation", "run_validation", "score_decoded"]


def score_decoded(task, decoded: torch.Tensor, labels, sizes) -> list[SampleScore]:
    """Per-sample scores of one task's decoded rows against their original-size labels
    (``sizes[i]``: row i's original (h, w)), through the prediction path of ``fmuia predict``."""
    owner = kinds.kind_of(task)
    scores = []
    for result, label, size in zip(owner.results(task, decoded, sizes), labels, sizes):
        value = owner.prediction_value(task, result)
        scores.append(owner.score_sample(task, value, label, size))
    return scores


@dataclass
class Validation:
    """Per-task results (registry order) and their summary."""

    results: list[TaskResult]
    summary: Summary
    loss: float | None = None

    @property
    def score(self) -> float | None:
        return self.summary.challenge_score

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
        return "\n".join(lines)


@torch.no_grad()
def run_validation(model, loader, registry: TaskRegistry, device: torch.device, autocast, progress=None) -> Validation:
    """Score ``model`` on a loader of ``EvalSet`` batches. ``autocast`` is a callable giving
    the precision context; ``progress`` wraps the loader (e.g. tqdm) when given."""
    was_training = model.training
    model.eval()
    scores: dict[str, list[SampleScore]] = {t.task_id: [] for t in registry}
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
    finally:
        model.train(was_training)
    results = [kinds.kind_of(t).task_result(t, scores[t.task_id]) for t in registry]
    return Validation(results=results, summary=aggregate.summarise(results))
