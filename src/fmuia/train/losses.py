"""The weighted multi-task training loss.

Each kind pairs its head types with their losses (``fmuia.kinds``: a loss takes a head's
raw output for one task's samples, their targets stacked in the model's frame and its
parameters, defaults overridden by the config's ``loss.params["<kind>.<head type>"]``,
and returns a scalar). This module weights and sums them over the tasks of a batch.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from fmuia import kinds
from fmuia.config.sections import LossConfig
from fmuia.errors import ConfigError
from fmuia.kinds.base import HeadType, LossFn
from fmuia.tasks import Kind

__all__ = ["LossFn", "TaskLoss", "loss_for", "loss_params"]


def _head_type(kind: "Kind | str", head_type: str) -> HeadType:
    owner = kinds.kind_of(kind)
    try:
        return owner.head_types[head_type]
    except KeyError:
        known = ", ".join(owner.head_types)
        raise ConfigError(f"no loss registered for {owner.name} head type {head_type!r} (losses exist for: {known})") from None


def loss_for(kind: "Kind | str", head_type: str) -> LossFn:
    """The loss of a kind's head type."""
    return _head_type(kind, head_type).loss


def loss_params(kind: "Kind | str", head_type: str) -> dict[str, Any]:
    """The parameters the loss of a kind's head type accepts, with their defaults."""
    return dict(_head_type(kind, head_type).loss_defaults)


class TaskLoss:
    """The weighted training loss of a batch: for each task present, its head type's loss
    times ``loss.kind_weights[kind] * loss.task_weights.get(task, 1)``; the batch loss is
    the sum over tasks weighted by each task's share of the batch."""

    def __init__(self, registry, head_types: Mapping[Kind, str], loss_config: LossConfig | None = None) -> None:
        self.registry = registry
        loss_config = loss_config if loss_config is not None else LossConfig()
        kind_weights = loss_config.kind_weights
        task_weights = loss_config.task_weights
        params = loss_config.params
        self._check_names(kind_weights, task_weights, params, head_types)
        self.fns: dict[str, LossFn] = {}
        self.params: dict[str, dict[str, Any]] = {}
        self.weights: dict[str, float] = {}
        for task in registry:
            head = head_types[task.kind]
            spec = _head_type(task.kind, head)
            self.fns[task.task_id] = spec.loss
            self.params[task.task_id] = {**spec.loss_defaults, **params.get(f"{task.kind.value}.{head}", {})}
            self.weights[task.task_id] = float(kind_weights.get(task.kind.value, 1.0)) * float(task_weights.get(task.task_id, 1.0))

    def _check_names(self, kind_weights, task_weights, params, head_types) -> None:
        specs = {f"{k.name}.{h.name}": h for k in kinds.all_kinds() for h in k.head_types.values()}
        names = sorted(k.name for k in kinds.all_kinds())
        for name in kind_weights:
            if name not in names:
                raise ConfigError(f"loss.kind_weights.{name}: not a kind (expected one of {', '.join(names)})")
        for name in task_weights:
            if name not in self.registry:
                raise ConfigError(f"loss.task_weights.{name}: unknown task")
        for name, values in params.items():
            if name not in specs:
                raise ConfigError(f"loss.params.{name}: no loss for that head type (known: {', '.join(specs)})")
            defaults = specs[name].loss_defaults
            for p in values:
                if p not in defaults:
                    raise ConfigError(f"loss.params.{name}.{p}: unknown parameter (known: {', '.join(defaults) or 'none'})")

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
