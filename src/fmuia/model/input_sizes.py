"""Each task's input side: the rule of ``MultiTaskModel.input_sizes``.

Kept apart from the network (no torch, no timm) so that the exported-graph backends
can apply it to a graph's config without building the model."""
from __future__ import annotations

import math

from fmuia import kinds
from fmuia.errors import ConfigError
from fmuia.model.config import ModelConfig
from fmuia.tasks import TaskRegistry


def scaled_size(image_size: int, factor: float) -> int:
    """The input side for a scale factor: ``image_size * factor`` rounded up to a
    multiple of 32 (the encoder's largest stride)."""
    return 32 * math.ceil(image_size * factor / 32 - 1e-9)


def task_input_sizes(registry: TaskRegistry, config: ModelConfig) -> dict[str, int]:
    """The input side of every task: its ``model.input_scale`` factor (a task-id entry,
    else a kind entry, else 1) applied to ``model.image_size``.

    The rule of ``MultiTaskModel.input_sizes``, which is what everyone else reads (the
    training data, the predictor, the export); a graph exported without the mapping
    applies it to the config it carries."""
    scales = dict(config.input_scale or {})
    names = [k.name for k in kinds.all_kinds()]
    for key in scales:
        if key not in registry and key not in names:
            raise ConfigError(f"model.input_scale: {key!r} is neither a task id nor a kind ({', '.join(names)})")
    return {t.task_id: scaled_size(config.image_size, scales.get(t.task_id, scales.get(t.kind.value, 1.0)))
            for t in registry}
