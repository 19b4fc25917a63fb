"""The registry of task kinds: one module per kind owns everything that differs by kind
(see ``fmuia.kinds.base.TaskKind`` for the hooks).

``kind_of(task_or_kind)`` is how the rest of the project reaches a kind's behaviour;
``all_kinds()`` iterates over them in registration order. A new kind is one module with
a ``TaskKind`` subclass plus one ``register_kind(...)`` call: registering also adds its
name to ``fmuia.tasks.Kind``, so tasks, CSVs and configs accept it.

A built-in kind is two modules: ``<kind>.py`` (labels, records, scoring, drawing; no
torch) and ``<kind>_heads.py`` (its heads and losses), which ``register_heads`` imports
on first use of ``head_types``. Importing this package therefore does not import torch.
"""
from __future__ import annotations

from typing import Iterator

from fmuia.config import catalogue
from fmuia.kinds.base import FPN, TOP, HeadType, LabelCells, LabelError, SampleScore, TaskKind
from fmuia.kinds.classification import ClassificationKind
from fmuia.kinds.detection import DetectionKind
from fmuia.kinds.keypoints import KeypointsKind
from fmuia.kinds.segmentation import SegmentationKind
from fmuia.tasks import Kind, Task

__all__ = ["FPN", "TOP", "HeadType", "LabelCells", "LabelError", "SampleScore", "TaskKind", "all_kinds",
           "kind_metrics", "kind_of", "register_kind", "unregister_kind"]

_KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    """Add a kind (its ``Kind`` name was registered when it was constructed)."""
    if not isinstance(kind, TaskKind):
        raise TypeError(f"expected a TaskKind instance, got {type(kind).__name__}")
    if kind.name in _KINDS:
        raise ValueError(f"kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind added at run time (tests); built-in kinds stay."""
    Kind.unregister(name)
    kind = _KINDS.pop(name, None)
    for head in kind.head_types if kind is not None else ():
        catalogue.forget_head_type(name, head)


def kind_of(value: "Task | Kind | str") -> TaskKind:
    """The behaviour of a task's kind, of a ``Kind`` or of a kind name."""
    name = value.kind.value if isinstance(value, Task) else Kind.parse(value).value
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"kind {name!r} has no registered behaviour (known: {', '.join(_KINDS)})") from None


def all_kinds() -> Iterator[TaskKind]:
    return iter(list(_KINDS.values()))


def kind_metrics() -> dict[Kind, tuple[str, ...]]:
    """Kind -> the metrics its summary reports, in order (every registered kind)."""
    return {k.kind: k.metric_names for k in all_kinds()}


for _kind in (SegmentationKind(), ClassificationKind(), DetectionKind(), KeypointsKind()):
    register_kind(_kind)
