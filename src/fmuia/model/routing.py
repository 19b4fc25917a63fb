"""Which features each task reads, and how a mixed batch is split by task.

Global tasks (one answer per image) read the deepest encoder stage (``top``); dense
tasks (an answer per location) read the fused FPN map (``fpn``). The table is data: a
config may override it per kind or per task id.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from fmuia.errors import ConfigError
from fmuia.tasks import Kind, TaskRegistry

TOP = "top"
FPN = "fpn"
SOURCES = (TOP, FPN)

DEFAULT_ROUTES: dict[Kind, str] = {
    Kind.SEGMENTATION: FPN,
    Kind.DETECTION: FPN,
    Kind.CLASSIFICATION: TOP,
    Kind.KEYPOINTS: TOP,
}


def resolve_routes(registry: TaskRegistry, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The feature source of every task: a task-id override, else a kind override, else the table."""
    overrides = dict(overrides or {})
    kinds = {k.value: k for k in Kind}
    for key, source in overrides.items():
        if key not in registry and key not in kinds:
            raise ConfigError(f"model.routing: {key!r} is neither a task id nor a kind ({', '.join(kinds)})")
        if source not in SOURCES:
            raise ConfigError(f"model.routing.{key}: expected one of {', '.join(SOURCES)}, got {source!r}")
    return {
        t.task_id: overrides.get(t.task_id, overrides.get(t.kind.value, DEFAULT_ROUTES[t.kind]))
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
