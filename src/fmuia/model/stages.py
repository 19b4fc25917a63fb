"""The encoder's stages: which feature level each of its layers belongs to.

timm's feature extractors name, for each feature level they return (shallow to deep),
the module that produces it (``feature_info[k]["module"]``: ``layer1`` of a ResNet,
``blocks.2`` of an EfficientNet). Modules run in the order they are registered, so
stage ``k`` is every module after the one producing level ``k - 1`` up to and including
the one producing level ``k`` (the stem belongs to stage 0). Fine-tuning freezes the
first N stages and decays learning rates by stage with this map.
"""
from __future__ import annotations

from torch import nn

from fmuia.errors import ConfigError
from fmuia.model.encoder import Encoder

__all__ = ["module_stages", "modules_before", "parameter_stages", "stage_count"]


def module_stages(encoder: Encoder) -> dict[str, int]:
    """Stage of each module of ``encoder.model`` (by its name in ``named_modules()``)."""
    if encoder.pyramid is not None:
        raise ConfigError(f"finetune: encoder {encoder.name} returns one token map (no stages); freeze the whole "
                          "encoder (finetune.freeze: encoder) and leave finetune.layer_decay null")
    names = [name for name, _ in encoder.model.named_modules()]
    ends = []
    for level in encoder.model.feature_info:
        produced_by = level["module"]
        # FeatureListNet flattens nested names ("stages.0" -> "stages_0").
        match = next((n for n in (produced_by, produced_by.replace(".", "_")) if n in names), None)
        if match is None:
            raise ConfigError(f"finetune: cannot find module {produced_by!r} of encoder {encoder.name}'s feature levels")
        ends.append(max(i for i, n in enumerate(names) if n == match or n.startswith(match + ".")))
    last = len(ends) - 1
    return {name: next((k for k, end in enumerate(ends) if i <= end), last) for i, name in enumerate(names)}


def parameter_stages(encoder: Encoder) -> dict[str, int]:
    """Stage of each parameter of ``encoder`` (names as in ``encoder.named_parameters()``)."""
    modules = module_stages(encoder)
    out = {}
    for name, _ in encoder.named_parameters():
        owner = name.rpartition(".")[0]
        inner = owner[len("model."):] if owner.startswith("model.") else owner
        out[name] = modules.get(inner, stage_count(encoder) - 1)  # outside the extractor: the top
    return out


def stage_count(encoder: Encoder) -> int:
    return len(encoder.model.feature_info)


def modules_before(encoder: Encoder, stages: int) -> list[nn.Module]:
    """The modules of the first ``stages`` stages (leaves and containers alike)."""
    found = module_stages(encoder)
    return [module for name, module in encoder.model.named_modules() if name and found[name] < stages]
