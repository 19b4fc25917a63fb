"""Which features each task reads, and how a mixed batch is split by task.

Global tasks (one answer per image) read the deepest encoder stage (``top``); dense
tasks (an answer per location) read the fused FPN map (``fpn``). Each kind says which
by default (``TaskKind.default_route``); a config may override it per kind or per task id.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from fmuia import kinds
from fmuia.errors import ConfigError
from fmuia.kinds.base import FPN, TOP
from fmuia.tasks import TaskRegistry

SOURCES = (TOP, FPN)

__all__ = ["FPN", "SOURCES", "TOP", "default_routes", "group_indices", "resolve_routes"]


def default_routes() -> dict:
    """Kind -> the feature source its tasks read unless configured otherwise."""
    return {k.kind: k.default_route for k in kinds.all_kinds()}


def resolve_routes(registry: TaskRegistry, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The feature source of every task: a task-id override, else a kind override, else the kind's default."""
    overrides = dict(overrides or {})
    names = [k.name for k in kinds.all_kinds()]
    for key, source in overrides.items():
        if key not in registry and key not in names:
            raise ConfigError(f"model.routing: {key!r} is neither a task id nor a kind ({', '.join(names)})")
        if source not in SOURCES:
            raise ConfigError(f"model.routing.{key}: expected one of {', '.join(SOURCES)}, got {source!r}")
    return {
        t.task_id: overrides.get(t.task_id, overrides.get(t.kind.value, kinds.kind_of(t).default_route))
        for t in registry
    }


def group_indices(task_ids: Iterable[str]) -> dict[str, list[int]]:
    """Batch positions of each task, tasks in order of first appearance, positions ascending.

    This is the row order of the model's per-task outputs: ``out[task][j]`` belongs to
    batch sample ``group_indices(task_ids)[task][j]``."""
    groups: dict[str, list[int]] = {}
    for i, task_id in enumerate(task_ids):
        groups.setdefault(task_id, []).append(i)
    return groups
