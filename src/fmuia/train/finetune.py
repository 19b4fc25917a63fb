"""Fine-tuning: a training run that starts from trained weights.

``fmuia finetune`` is ``fmuia train`` with the ``finetune:`` section set, so a fine-tuned
run resumes, predicts, evaluates and exports like any other; the hooks the training
loop calls for it (initial weights, the frozen encoder part) are ``fmuia.train.transfer``.

An encoder file (``fmuia pretrain``'s ``encoder.safetensors`` or any weights file) starts a
run through ``model.pretrained`` instead (``finetune_overrides`` arranges that).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from fmuia.config.loading import parse_override
from fmuia.errors import ConfigError
from fmuia.model.checkpoint import checkpoint_paths, read_checkpoint_meta
from fmuia.model.encoder_file import encoder_file_info
from fmuia.model.pretrained import WEIGHT_SUFFIXES
from fmuia.train.engine import train

__all__ = ["ARCHITECTURE_KEYS", "finetune", "finetune_overrides"]

# The model keys a checkpoint fixes for the run that starts from it: the encoder and
# FPN weights only fit a network of the same shape.
ARCHITECTURE_KEYS = ("encoder", "decoder_channels", "decoder_out_channels")


def finetune_overrides(source: str, freeze_spec: str | None = None, layer_decay: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(architecture layer, overrides) that make a training config fine-tune from ``source``.

    ``source``: an fmuia checkpoint (folder, or ``.safetensors`` with its ``.json``
    sidecar): the architecture layer holds its ``model`` keys (``ARCHITECTURE_KEYS``), to
    go over the recipe, and the overrides set ``finetune.init_from``; an encoder file
    (``.safetensors``/``.pth``/``.pt``): ``model.pretrained`` is set to it (and
    ``model.encoder`` from an ``fmuia pretrain`` file's metadata). ``ConfigError`` naming
    ``--from`` when it is neither."""
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"--from {source}: no such file or folder")
    overrides: dict[str, Any] = {}
    if freeze_spec is not None:
        overrides["finetune.freeze"] = freeze_spec
    if layer_decay is not None:
        overrides["finetune.layer_decay"] = float(layer_decay)
    if path.is_dir() or checkpoint_paths(path)[1].is_file():
        meta = read_checkpoint_meta(path)
        model = meta["model_config"]
        architecture = {"model": {key: model[key] for key in ARCHITECTURE_KEYS if key in model}}
        overrides.update({"finetune.init_from": os.path.abspath(source), "model.pretrained": "none"})
        return architecture, overrides
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(f"--from {source}: not an fmuia checkpoint (a folder, or a .safetensors file with its .json "
                          f"sidecar) nor an encoder weights file ({', '.join(WEIGHT_SUFFIXES)})")
    info = encoder_file_info(path) if path.suffix == ".safetensors" else None
    architecture = {"model": {"encoder": info["encoder"]}} if info else {}
    overrides["model.pretrained"] = os.path.abspath(source)
    return architecture, overrides


def finetune(
    source: str,
    data_root: str,
    out_dir: str,
    config: "str | os.PathLike[str] | Sequence[Any] | None" = None,
    val_root: str | None = None,
    overrides: "list[str] | Mapping[str, Any] | None" = None,
    freeze_spec: str | None = None,
    layer_decay: float | None = None,
):
    """Train on ``data_root`` starting from ``source`` (a checkpoint or an encoder file,
    see ``finetune_overrides``) and return the ``RunResult``. Layers, first to last: the
    ``config`` files, the checkpoint's architecture, ``overrides`` (``KEY=VALUE`` strings
    or a mapping of dotted keys), then
    ``freeze_spec`` and ``layer_decay`` when given."""
    architecture, settings = finetune_overrides(source, freeze_spec, layer_decay)
    layers = [config] if isinstance(config, (str, os.PathLike)) else list(config or [])
    mixed = dict(overrides) if isinstance(overrides, Mapping) else dict(parse_override(o) for o in overrides or [])
    return train([*layers, architecture] if architecture else layers or None, data_root, out_dir,
                 val_root=val_root, overrides={**mixed, **settings})
