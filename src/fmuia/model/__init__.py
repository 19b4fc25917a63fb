"""The multi-task network: timm encoder, FPN decoder, per-kind task routing, task heads,
and checkpoints that rebuild the model on their own.

The names below are imported on first use: ``fmuia.model.config``, ``routing`` and
``input_sizes`` are read by the exported-graph backends, which must not pay for
importing timm (and through it torchvision), which only the network itself needs."""
from __future__ import annotations

from typing import Any

__all__ = [
    "Encoder", "FPN", "FeatureInfo", "Head", "default_heads", "default_routes", "head_types",
    "LoadReport", "ModelConfig", "MultiTaskModel", "autocast", "build_model", "cpu_has_fast_bf16",
    "group_indices", "load_checkpoint", "read_checkpoint_meta", "resolve_precision",
    "resolve_routes", "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'fmuia.model' has no attribute {name!r}")
    from fmuia import runtime
    from fmuia.model import checkpoint, config, decoder, encoder, heads, network, pretrained, routing

    for module in (checkpoint, config, decoder, encoder, heads, network, pretrained, routing, runtime):
        if hasattr(module, name):
            globals()[name] = value = getattr(module, name)
            return value
    raise AttributeError(f"module 'fmuia.model' has no attribute {name!r}")  # pragma: no cover - __all__ out of date
