"""Validation with the challenge's metrics on original-size labels.

Predictions are brought back to each sample's original size first (masks
nearest-resized, boxes and points scaled from normalised to pixels), then scored by
``fmuia.evaluate``'s metric functions and aggregated into per-task results, per-kind
summaries and the one challenge score that picks the best checkpoint. Each kind has
one scorer class here that knows how to turn its head's decoded output into what the
metric functions take.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from fmuia.evaluate import aggregate
from fmuia.evaluate.aggregate import Summary, TaskResult
from fmuia.evaluate.metrics import box_iou, image_diagonal, radial_errors, segmentation_scores
from fmuia.model.routing import group_indices
from fmuia.tasks import Kind, Task, TaskRegistry

__all__ = ["Validation", "run_validation"]


class _Scorer:
    """Collects one task's samples: ``add(decoded row, original label, (h, w))``."""

    kind: ClassVar[Kind]

    def __init__(self, task: Task) -> None:
        self.task = task
        self.rows: list[Any] = []

    def add(self, decoded: torch.Tensor, label: Any, size: tuple[int, int]) -> None:  # pragma: no cover
        raise NotImplementedError

    def result(self) -> TaskResult:  # pragma: no cover
        raise NotImplementedError


class _Segmentation(_Scorer):
    kind = Kind.SEGMENTATION

    def add(self, decoded, label, size):
        pred = decoded.argmax(dim=0).to(torch.uint8).cpu().numpy()
        h, w = size
        pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_NEAREST)
        s = segmentation_scores(pred, np.asarray(label), self.task.n)
        self.rows.append((s.dice, s.hd, s.diagonal))

    def result(self):
        if not self.rows:
            return aggregate.segmentation_result(self.task, np.zeros((0, self.task.n)), np.zeros((0, self.task.n)), np.zeros(0))
        dice, hd, diag = zip(*self.rows)
        return aggregate.segmentation_result(self.task, np.stack(dice), np.stack(hd), np.array(diag))


class _Classification(_Scorer):
    kind = Kind.CLASSIFICATION

    def add(self, decoded, label, size):
        probs = decoded.double().cpu().numpy()
        self.rows.append((int(label), int(probs.argmax()), probs))

    def result(self):
        if not self.rows:
            return aggregate.classification_result(self.task, [], [], np.zeros((0, self.task.n)))
        y, p, probs = zip(*self.rows)
        return aggregate.classification_result(self.task, np.array(y), np.array(p), np.stack(probs))


class _Detection(_Scorer):
    kind = Kind.DETECTION

    def add(self, decoded, label, size):
        h, w = size
        box = decoded[:4].double().cpu().numpy() * np.array([w, h, w, h])
        self.rows.append(float(box_iou(box, np.asarray(label, dtype=np.float64))[0]))

    def result(self):
        return aggregate.detection_result(self.task, np.array(self.rows))


class _Keypoints(_Scorer):
    kind = Kind.KEYPOINTS

    def add(self, decoded, label, size):
        h, w = size
        pts = decoded.reshape(-1, 2).double().cpu().numpy() * np.array([w, h])
        self.rows.append((float(radial_errors(pts, np.asarray(label, dtype=np.float64))[0]), image_diagonal(size)))

    def result(self):
        errors = [r[0] for r in self.rows]
        diags = [r[1] for r in self.rows]
        return aggregate.keypoint_result(self.task, np.array(errors), np.array(diags))


SCORERS: dict[Kind, type[_Scorer]] = {cls.kind: cls for cls in (_Segmentation, _Classification, _Detection, _Keypoints)}


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
    scorers = {t.task_id: SCORERS[t.kind](t) for t in registry}
    core = getattr(model, "module", model)
    try:
        for batch in progress(loader) if progress else loader:
            images = batch["image"].to(device, non_blocking=True)
            with autocast():
                outputs = model(images, batch["task_id"])
            decoded = core.decode(outputs)
            for task_id, rows in group_indices(batch["task_id"]).items():
                for j, i in enumerate(rows):
                    scorers[task_id].add(decoded[task_id][j], batch["label"][i], tuple(batch["size"][i]))
    finally:
        model.train(was_training)
    results = [scorers[t.task_id].result() for t in registry]
    return Validation(results=results, summary=aggregate.summarise(results))
