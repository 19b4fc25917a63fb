"""The base of every task head and the signature of its loss: the torch side of a kind.

A kind's heads and losses live in ``fmuia.kinds.<kind>_heads`` and are registered on
first use of ``TaskKind.head_types`` (``TaskKind.register_heads``), so that the kind's
labels, submission records and scoring (``fmuia.kinds.<kind>``) import without torch:
``fmuia validate``, ``evaluate``, ``report`` and ``synth`` never load it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from fmuia.tasks import Kind, Task

if TYPE_CHECKING:
    from fmuia.config.predict import PredictConfig
    from fmuia.model.config import ModelConfig

__all__ = ["Head", "LossFn"]

LossFn = Callable[[torch.Tensor, torch.Tensor, Task, Mapping[str, Any]], torch.Tensor]


class Head(nn.Module):
    """A task head: ``forward(features, image_size)`` gives the raw output the loss sees,
    ``decode(raw)`` the normalised prediction. Every head takes ``(task, in_channels,
    config)``. ``feature_source`` may name the features the head needs (``top``/``fpn``)."""

    kind: ClassVar[Kind]
    type_name: ClassVar[str]
    feature_source: ClassVar[str | None] = None

    def __init__(self, task: Task, in_channels: int, config: "ModelConfig") -> None:
        super().__init__()
        self.task_id = task.task_id
        self.n = task.n

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def decode(self, raw: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def set_decoding(self, predict: "PredictConfig") -> None:
        """Take the prediction-only settings of ``predict`` (the ``predict:`` section, e.g.
        ``box_voting``) that this head's ``decode`` reads; a head without any ignores it."""
