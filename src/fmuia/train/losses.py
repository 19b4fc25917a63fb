"""One loss per head type, registered under (kind, head type name).

A loss takes a head's raw output for one task's samples, their targets stacked in
the model's frame (see ``fmuia.data.transforms``) and its parameters from the config
(``loss.params["<kind>.<head type>"]``), and returns a scalar. Adding a head type with
its loss is one ``@register_loss`` function; nothing else changes.

The default losses:

* segmentation (``conv``): multiclass Dice on softmax probabilities
  (segmentation-models-pytorch's ``DiceLoss``: per class over the batch, classes
  absent from the targets contribute nothing), plus ``ce_weight`` (default 0) times the
  pixel cross-entropy;
* classification (``linear``): cross-entropy;
* keypoints (``regression``): mean squared error of the normalised coordinates;
* detection (``grid``): binary cross-entropy of the objectness map against a map that
  is 1 at the cell holding the box centre and 0 elsewhere, plus ``box_weight`` (8) times
  the L1 distance between that cell's box and the target box (both normalised).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from fmuia.errors import ConfigError
from fmuia.tasks import Kind, Task

LossFn = Callable[[torch.Tensor, torch.Tensor, Task, Mapping[str, Any]], torch.Tensor]

LOSSES: dict[tuple[Kind, str], LossFn] = {}
# The parameters each loss accepts, with their defaults (config values override them).
LOSS_PARAMS: dict[tuple[Kind, str], dict[str, Any]] = {}

__all__ = ["LOSSES", "LOSS_PARAMS", "TaskLoss", "loss_for", "register_loss"]


def register_loss(kind: Kind, head_type: str, **defaults: Any) -> Callable[[LossFn], LossFn]:
    def add(fn: LossFn) -> LossFn:
        key = (kind, head_type)
        if key in LOSSES:
            raise ValueError(f"a loss is already registered for {kind.value} head {head_type!r}")
        LOSSES[key] = fn
        LOSS_PARAMS[key] = dict(defaults)
        return fn

    return add


_dice = smp.losses.DiceLoss(mode="multiclass", from_logits=True)


@register_loss(Kind.SEGMENTATION, "conv", ce_weight=0.0)
def segmentation_dice(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, n, H, W) logits, target (B, H, W) class ids. ``ce_weight`` > 0 adds that
    times the pixel cross-entropy (Dice alone is the reference; 0 keeps it exact)."""
    loss = _dice(raw.float(), target.long())
    ce_weight = float(params.get("ce_weight", 0.0))
    if ce_weight:
        loss = loss + ce_weight * F.cross_entropy(raw.float(), target.long())
    return loss


@register_loss(Kind.CLASSIFICATION, "linear")
def classification_ce(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, n) logits, target (B,) class ids."""
    return F.cross_entropy(raw.float(), target.long())


@register_loss(Kind.KEYPOINTS, "regression")
def keypoint_mse(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, 2K) as x1, y1, x2, y2, ...; target (B, K, 2), both normalised to 0..1."""
    return F.mse_loss(raw.float(), target.float().reshape(raw.shape[0], -1))


def centre_cells(boxes: torch.Tensor, grid_h: int, grid_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of the grid cell holding each normalised box's centre: (B,), (B,)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    col = (cx * grid_w).long().clamp(0, grid_w - 1)
    row = (cy * grid_h).long().clamp(0, grid_h - 1)
    return row, col


@register_loss(Kind.DETECTION, "grid", box_weight=8.0)
def detection_grid(raw: torch.Tensor, target: torch.Tensor, task: Task, params: Mapping[str, Any]) -> torch.Tensor:
    """raw (B, 5, h, w): 4 box logits (sigmoid -> normalised x1, y1, x2, y2) and 1 score
    logit per cell; target (B, 4) normalised box."""
    raw = raw.float()
    b, _, h, w = raw.shape
    target = target.float()
    row, col = centre_cells(target, h, w)
    batch = torch.arange(b, device=raw.device)
    objectness = torch.zeros((b, h, w), device=raw.device)
    objectness[batch, row, col] = 1.0
    score_loss = F.binary_cross_entropy_with_logits(raw[:, 4], objectness)
    box = raw[batch, :4, row, col].sigmoid()  # (B, 4): the centre cell's box
    box_loss = F.l1_loss(box, target)
    return score_loss + float(params["box_weight"]) * box_loss


class TaskLoss:
    """The weighted training loss of a batch: for each task present, its head type's loss
    times ``loss.kind_weights[kind] * loss.task_weights.get(task, 1)``; the batch loss is
    the sum over tasks weighted by each task's share of the batch."""

    def __init__(self, registry, head_types: Mapping[Kind, str], loss_config: Mapping[str, Any]) -> None:
        self.registry = registry
        kind_weights = loss_config.get("kind_weights", {})
        task_weights = loss_config.get("task_weights", {})
        self._check_names(kind_weights, task_weights, loss_config.get("params", {}), head_types)
        self.fns: dict[str, LossFn] = {}
        self.params: dict[str, dict[str, Any]] = {}
        self.weights: dict[str, float] = {}
        for task in registry:
            head = head_types[task.kind]
            self.fns[task.task_id] = loss_for(task.kind, head)
            self.params[task.task_id] = {**LOSS_PARAMS[(task.kind, head)], **loss_config.get("params", {}).get(f"{task.kind.value}.{head}", {})}
            self.weights[task.task_id] = float(kind_weights.get(task.kind.value, 1.0)) * float(task_weights.get(task.task_id, 1.0))

    def _check_names(self, kind_weights, task_weights, params, head_types) -> None:
        kinds = {k.value for k in Kind}
        for name in kind_weights:
            if name not in kinds:
                raise ConfigError(f"loss.kind_weights.{name}: not a kind (expected one of {', '.join(sorted(kinds))})")
        for name in task_weights:
            if name not in self.registry:
                raise ConfigError(f"loss.task_weights.{name}: unknown task")
        for name, values in params.items():
            kind, _, head = name.partition(".")
            key = (Kind(kind), head) if kind in kinds else None
            if key not in LOSS_PARAMS:
                known = ", ".join(f"{k.value}.{h}" for k, h in LOSS_PARAMS)
                raise ConfigError(f"loss.params.{name}: no loss for that head type (known: {known})")
            for p in values:
                if p not in LOSS_PARAMS[key]:
                    raise ConfigError(f"loss.params.{name}.{p}: unknown parameter (known: {', '.join(LOSS_PARAMS[key]) or 'none'})")

    def __call__(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``outputs``/``targets``: per-task raw outputs and stacked targets in the same row
        order. Returns (weighted batch loss, unweighted loss per task)."""
        total_rows = sum(int(t.shape[0]) for t in targets.values())
        per_task: dict[str, torch.Tensor] = {}
        total = None
        for task_id, raw in outputs.items():
            task = self.registry[task_id]
            value = self.fns[task_id](raw, targets[task_id], task, self.params[task_id])
            per_task[task_id] = value
            term = value * (self.weights[task_id] * targets[task_id].shape[0] / total_rows)
            total = term if total is None else total + term
        if total is None:
            raise ValueError("no task outputs to compute a loss on")
        return total, per_task


def loss_for(kind: Kind, head_type: str) -> LossFn:
    try:
        return LOSSES[(kind, head_type)]
    except KeyError:
        known = ", ".join(h for k, h in LOSSES if k is kind)
        raise ConfigError(f"no loss registered for {kind.value} head type {head_type!r} (losses exist for: {known})") from None
