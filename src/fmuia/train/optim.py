"""Task-adaptive learning rates and the learning-rate schedule.

Parameter groups: the encoder, the decoder, and one group per task head. A head's
rate multiplier is ``optim.lr_multipliers.tasks[task]``, else ``...kinds[kind]``, else
``...heads``; the encoder and decoder have their own. The group's rate is
``optim.lr * multiplier``.

``optim.train_decoder: false`` (the official code, whose optimiser holds the encoder and
the heads only): the decoder has no group and ``build_optimizer`` marks its parameters
``requires_grad=False``, so it keeps its random initialisation. Gradients still flow
*through* it into the encoder; none is stored for its own parameters, so gradient
clipping and DistributedDataParallel leave them out too.

Schedule: an optional linear warm-up from 0 over ``schedule.warmup_steps`` optimiser
steps, then cosine annealing of every group from its rate down to ``schedule.min_lr``
(or a constant rate). ``schedule.interval`` says when the cosine moves:

* ``step`` (default): at every optimiser step, reaching ``min_lr`` at the last one;
* ``epoch``: once per epoch, as the official ``CosineAnnealingLR(T_max=epochs,
  eta_min=min_lr)`` stepped after each epoch: during epoch ``e`` (0-based) the rate is
  ``min_lr + (base - min_lr) * (1 + cos(pi * e / E)) / 2``, ``E`` the run's epochs
  (``ceil(total steps / steps per epoch)`` when ``train.max_steps`` ends it first), so
  the last epoch stays above ``min_lr``.

Either way the rate is a function of the step number alone (a ``LambdaLR`` over steps),
so a resumed run continues with exactly the rates of an uninterrupted one.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fmuia.config import FinetuneConfig, OptimConfig, ScheduleConfig
from fmuia.errors import ConfigError
from fmuia.tasks import Kind

__all__ = ["build_optimizer", "build_scheduler", "lr_factor", "param_groups"]


def param_groups(model: nn.Module, optim: OptimConfig, layer_decay: float | None = None) -> list[dict[str, Any]]:
    """Parameter groups of a ``MultiTaskModel`` with their rates (``name``, ``lr``, ``params``);
    the decoder has none when ``optim.train_decoder`` is false. ``layer_decay``
    (``finetune.layer_decay``): one encoder group per stage instead of one for the whole
    encoder, stage ``k`` of ``L`` at the encoder's rate times ``layer_decay ** (L - 1 - k)``."""
    base = float(optim.lr)
    mult = optim.lr_multipliers
    kinds = {k.value for k in Kind}
    for name in mult.kinds:
        if name not in kinds:
            raise ConfigError(f"optim.lr_multipliers.kinds.{name}: not a kind (expected one of {', '.join(sorted(kinds))})")
    for name in mult.tasks:
        if name not in model.registry:
            raise ConfigError(f"optim.lr_multipliers.tasks.{name}: the model has no such task")
    groups = _encoder_groups(model, base * float(mult.encoder), layer_decay)
    if model.decoder is not None and optim.train_decoder:
        groups.append({"name": "decoder", "lr": base * float(mult.decoder), "params": list(model.decoder.parameters())})
    for task in model.registry:
        factor = mult.tasks.get(task.task_id, mult.kinds.get(task.kind.value, mult.heads))
        groups.append({"name": f"head:{task.task_id}", "lr": base * float(factor), "params": list(model.head(task.task_id).parameters())})
    covered = {id(p) for g in groups for p in g["params"]} | {id(p) for p in _untrained(model, optim)}
    rest = [p for p in model.parameters() if id(p) not in covered]
    if rest:  # parameters outside encoder, decoder and heads train at the base rate
        groups.append({"name": "other", "lr": base, "params": rest})
    for g in groups:
        g["params"] = [p for p in g["params"] if p.requires_grad]
    return [g for g in groups if g["params"]]


def _encoder_groups(model: nn.Module, lr: float, layer_decay: float | None) -> list[dict[str, Any]]:
    if layer_decay is None:
        return [{"name": "encoder", "lr": lr, "params": list(model.encoder.parameters())}]
    from fmuia.model.stages import parameter_stages  # fine-tuning only

    stages = parameter_stages(model.encoder)
    count = max(stages.values()) + 1
    named = dict(model.encoder.named_parameters())
    return [{"name": f"encoder:stage{k}", "lr": lr * float(layer_decay) ** (count - 1 - k),
             "params": [named[n] for n, stage in stages.items() if stage == k]} for k in range(count)]


def _untrained(model: nn.Module, optim: OptimConfig) -> list[nn.Parameter]:
    """The parameters the ``optim`` section leaves out of training: the decoder's when
    ``optim.train_decoder`` is false."""
    if optim.train_decoder or model.decoder is None:
        return []
    return list(model.decoder.parameters())


def build_optimizer(model: nn.Module, optim: OptimConfig, finetune: FinetuneConfig | None = None) -> torch.optim.Optimizer:
    """The optimiser of the ``optim`` section over ``param_groups``.

    Where training fixes which parameters learn: those that ``optim.train_decoder: false``
    leaves out are set ``requires_grad=False`` here, before the training loop wraps the
    model for several processes (DDP registers only the parameters that require a
    gradient); parameters already frozen (``fmuia.train.transfer.freeze``) are left out.
    ``finetune.layer_decay`` splits the encoder group by stage."""
    for p in _untrained(model, optim):
        p.requires_grad_(False)
    groups = param_groups(model, optim, finetune.layer_decay if finetune is not None else None)
    name = optim.name
    wd = float(optim.weight_decay)
    if name in ("adamw", "adam"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        # The fused kernel updates all tensors at once: several times faster than the
        # per-tensor loop for the many small tensors of a CNN, on CPU as on GPU.
        return cls(groups, lr=float(optim.lr), weight_decay=wd, betas=tuple(optim.betas), fused=_fused_ok(groups))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=float(optim.lr), weight_decay=wd, momentum=0.9, nesterov=True)
    raise ConfigError(f"optim.name: expected adamw, adam or sgd, got {name!r}")


def _fused_ok(groups: list[dict[str, Any]]) -> bool:
    params = [p for g in groups for p in g["params"]]
    return all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in params)


def lr_factor(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float, name: str = "cosine",
              steps_per_epoch: int | None = None) -> float:
    """The multiplier of a group's base rate at ``step`` (0-based: the rate of the step-th update).

    ``steps_per_epoch`` None: the cosine moves at every step (``schedule.interval: step``);
    otherwise it moves once per epoch of that many steps (``interval: epoch``)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "constant" or base_lr <= 0:
        return 1.0
    if steps_per_epoch is None:
        span = max(1, total_steps - warmup_steps - 1)
        progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    else:
        progress = _epoch_progress(step, total_steps, steps_per_epoch)
    floor = min(min_lr, base_lr) / base_lr
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _epoch_progress(step: int, total_steps: int, steps_per_epoch: int) -> float:
    """``e / E`` of ``CosineAnnealingLR(T_max=E)`` stepped once per epoch: ``e`` the epoch
    of ``step``, ``E`` the run's epochs (a partial last epoch, where ``max_steps`` cuts the
    run, counts as one)."""
    per_epoch = max(1, int(steps_per_epoch))
    epochs = max(1, math.ceil(total_steps / per_epoch))
    return min(1.0, (step // per_epoch) / epochs)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig, total_steps: int,
                    steps_per_epoch: int | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step rates of the ``schedule`` section over ``total_steps`` optimiser steps;
    ``steps_per_epoch`` is needed by ``schedule.interval: epoch``."""
    warmup = int(schedule.warmup_steps)
    min_lr = float(schedule.min_lr)
    name = schedule.name
    per_epoch = None
    if schedule.interval == "epoch":
        if steps_per_epoch is None:
            raise ConfigError("schedule.interval: epoch needs the number of steps per epoch")
        per_epoch = int(steps_per_epoch)
    lambdas = [
        (lambda step, base=float(g["lr"]): lr_factor(step, total_steps, warmup, base, min_lr, name, per_epoch))
        for g in optimizer.param_groups
    ]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
