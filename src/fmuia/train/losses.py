"""The weighted multi-task training loss.

Each kind pairs its head types with their losses (``fmuia.kinds``: a loss takes a head's
raw output for one task's samples, their targets stacked in the model's frame and its
parameters, defaults overridden by the config's ``loss.params["<kind>.<head type>"]``,
and returns a scalar). This module weights and sums them over the tasks of a batch.

``loss.balance: uncertainty`` learns one more weight per task, after Kendall, Gal and
Cipolla (2018), "Multi-task learning using uncertainty to weigh losses": a log-variance
``s_t`` (initially 0) turns the task's term ``w_t * L_t`` into ``exp(-s_t) * w_t * L_t + s_t``.
The paper's regression form has factors 0.5 on both parts; they are left out: the
optimum is the same (``s_t = log(w_t * L_t)``, weight ``1 / (w_t * L_t)``), and without
them the loss at initialisation equals the fixed one, so the network starts with the same
gradients as under ``fixed`` (the 0.5 would halve every task's rate until ``s_t`` moved).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch
from torch import nn

from fmuia import kinds
from fmuia.config.sections import LossConfig, OptimConfig
from fmuia.errors import CheckpointError, ConfigError
from fmuia.kinds.base import HeadType
from fmuia.kinds.head import LossFn
from fmuia.tasks import Kind

__all__ = ["LossBalance", "LossFn", "TaskLoss", "loss_for", "loss_params"]


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


class LossBalance(nn.Module):
    """The learned log-variances ``s_t`` of ``loss.balance: uncertainty``, one scalar
    parameter per task (in registry order), each starting at 0.

    One parameter per task rather than one vector: a task absent from a step's batch then
    has no gradient, and the optimiser leaves its ``s_t`` alone, as it does the task's
    head (a vector would get a zero gradient there, which AdamW's momentum still acts on)."""

    def __init__(self, task_ids: "list[str]") -> None:
        super().__init__()
        self.task_ids = list(task_ids)
        self.log_vars = nn.ParameterList([nn.Parameter(torch.zeros(())) for _ in self.task_ids])
        self._index = {t: i for i, t in enumerate(self.task_ids)}

    def log_var(self, task_id: str) -> torch.Tensor:
        return self.log_vars[self._index[task_id]]

    def weights(self) -> dict[str, float]:
        """The current learned factor ``exp(-s_t)`` of each task."""
        return {t: float(torch.exp(-s.detach()).cpu()) for t, s in zip(self.task_ids, self.log_vars)}

    def state(self) -> dict[str, torch.Tensor]:
        """``{task: s_t}`` on the CPU, for the training state."""
        return {t: s.detach().cpu().clone() for t, s in zip(self.task_ids, self.log_vars)}

    def load(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        """Set every ``s_t`` from ``state()``'s dict (in place: the optimiser keeps its parameters)."""
        if sorted(state) != sorted(self.task_ids):
            raise CheckpointError(f"{where}: the saved loss balance is for tasks {', '.join(sorted(state))}, "
                              f"this run has {', '.join(sorted(self.task_ids))}")
        with torch.no_grad():
            for t, s in zip(self.task_ids, self.log_vars):
                s.copy_(state[t])


class TaskLoss:
    """The weighted training loss of a batch: for each task present, its head type's loss
    times ``loss.kind_weights[kind] * loss.task_weights.get(task, 1)``; the batch loss is
    the sum over tasks weighted by each task's share of the batch.

    With ``loss.balance: uncertainty`` each task's term is ``exp(-s_t) * w_t * L_t + s_t``
    (see the module's description), still weighted by the task's share of the batch;
    ``balance`` holds the ``s_t`` (None with ``fixed``). They are trained with the model but
    are not part of it: prediction never needs them."""

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
        self.balance: LossBalance | None = None
        if loss_config.balance == "uncertainty":
            self.balance = LossBalance([task.task_id for task in registry])

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
                # a switch given as text ("false") would read as true
                if isinstance(defaults[p], bool) and not isinstance(values[p], bool):
                    raise ConfigError(f"loss.params.{name}.{p}: expected true or false, got {values[p]!r}")

    def parameters(self) -> Iterator[nn.Parameter]:
        """The learned parameters of the loss itself (none with ``loss.balance: fixed``)."""
        return iter(()) if self.balance is None else self.balance.parameters()

    def to(self, device: "torch.device | str") -> "TaskLoss":
        if self.balance is not None:
            self.balance.to(device)
        return self

    def param_group(self, optim: OptimConfig) -> dict[str, Any] | None:
        """The optimiser group of the learned balance: the heads' rate (``optim.lr`` times
        ``optim.lr_multipliers.heads``), no weight decay (it would pull every ``s_t``
        towards 0, i.e. towards the fixed weights). ``train.grad_clip`` bounds the
        network's gradient only. None with ``loss.balance: fixed``."""
        if self.balance is None:
            return None
        rate = float(optim.lr) * float(optim.lr_multipliers.heads)
        return {"name": "loss balance", "lr": rate, "weight_decay": 0.0, "params": list(self.balance.parameters())}

    def balance_columns(self) -> dict[str, float]:
        """``balance_<task>``: each task's learned factor ``exp(-s_t)``, for the metric rows
        (nothing with ``loss.balance: fixed``)."""
        if self.balance is None:
            return {}
        return {f"balance_{t}": w for t, w in self.balance.weights().items()}

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
            share = targets[task_id].shape[0] / total_rows
            if self.balance is None:
                term = value * (self.weights[task_id] * share)
            else:
                s = self.balance.log_var(task_id)
                term = (torch.exp(-s) * (value * self.weights[task_id]) + s) * share
            total = term if total is None else total + term
        if total is None:
            raise ValueError("no task outputs to compute a loss on")
        return total, per_task
