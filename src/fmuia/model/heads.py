"""Task heads: each kind registers its head types (``fmuia.kinds``); this module picks
and builds them for a model.

The config picks a type per kind (``model.heads: {keypoints: heatmap, detection:
centernet}``); a kind not named takes its default head. Every head takes ``(task,
in_channels, config)``, maps a feature map to its raw output in ``forward(features,
image_size)``, and turns raw output into normalised predictions in ``decode(raw)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from fmuia import kinds
from fmuia.errors import ConfigError
from fmuia.kinds.head import Head
from fmuia.tasks import Kind, Task

if TYPE_CHECKING:
    from fmuia.model.config import ModelConfig

__all__ = ["Head", "build_head", "default_heads", "head_class", "head_types"]


def default_heads() -> dict[Kind, str]:
    """The default head type of every registered kind."""
    return {k.kind: k.default_head for k in kinds.all_kinds()}


def head_types(overrides: dict[str, str] | None = None) -> dict[Kind, str]:
    """The head type of each kind: the defaults, overridden by ``model.heads``."""
    chosen = default_heads()
    names = {k.name: k for k in kinds.all_kinds()}
    for key, name in (overrides or {}).items():
        if key not in names:
            raise ConfigError(f"model.heads: {key!r} is not a kind (expected one of {', '.join(names)})")
        if name not in names[key].head_types:
            raise ConfigError(f"model.heads.{key}: unknown head type {name!r} (known: {', '.join(names[key].head_types)})")
        chosen[names[key].kind] = name
    return chosen


def head_class(kind: "Kind | str", type_name: str) -> type[Head]:
    return kinds.kind_of(kind).head_type(type_name).head


def build_head(task: Task, in_channels: int, config: "ModelConfig", type_name: str) -> Head:
    return head_class(task.kind, type_name)(task, in_channels, config)
