"""Fine-tuning: a training run that starts from trained weights.

``fmuia finetune`` is ``fmuia train`` with the ``finetune:`` section set, so a fine-tuned
run resumes, predicts, evaluates and exports like any other. The engine calls three
hooks of this module:

* ``load_initial_weights`` once, before the first step (never on resume): the encoder
  and FPN weights of an fmuia checkpoint, and the heads of the tasks the checkpoint
  shares with the new data root (same id, kind and classes); every other head is new;
* ``freeze`` before the optimiser is built: the frozen encoder parameters stop
  requiring gradients, so the optimiser, gradient clipping and DDP leave them out;
* ``keep_frozen_in_eval`` after every ``model.train()``: the frozen modules stay in
  eval mode, so their BatchNorm statistics (running mean and variance) do not move
  either and dropout inside them is off. Linear probing needs both.

An encoder file (``fmuia pretrain``'s ``encoder.safetensors`` or any weights file) starts a
run through ``model.pretrained`` instead (``finetune_overrides`` arranges that).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from safetensors.torch import load as load_safetensors
from torch import nn

from fmuia.config.sections import FinetuneConfig, freeze_stages
from fmuia.errors import CheckpointError, ConfigError
from fmuia.model.checkpoint import checkpoint_paths, open_checkpoint, read_checkpoint_meta
from fmuia.model.encoder_file import encoder_file_info
from fmuia.model.network import MultiTaskModel, _module_key
from fmuia.model.pretrained import WEIGHT_SUFFIXES
from fmuia.model.stages import modules_before, parameter_stages
from fmuia.tasks import TaskRegistry

log = logging.getLogger(__name__)

__all__ = ["ARCHITECTURE_KEYS", "InitialWeights", "finetune_overrides", "freeze", "keep_frozen_in_eval",
           "load_initial_weights"]

# The model keys a checkpoint fixes for the run that starts from it: the encoder and
# FPN weights only fit a network of the same shape.
ARCHITECTURE_KEYS = ("encoder", "decoder_channels", "decoder_out_channels")


@dataclass
class InitialWeights:
    """What ``load_initial_weights`` took from the checkpoint."""

    source: str
    kept: list[str] = field(default_factory=list)  # "encoder", "decoder", "head:<task>"
    new_heads: list[str] = field(default_factory=list)
    fresh_decoder: bool = False  # the model has an FPN and the checkpoint none

    def summary(self) -> str:
        parts = [f"{self.source}: kept {', '.join(self.kept)}"]
        if self.new_heads:
            parts.append(f"new heads {', '.join(self.new_heads)}")
        if self.fresh_decoder:
            parts.append("the FPN starts from random weights (the checkpoint has none)")
        return "; ".join(parts)


def load_initial_weights(model: MultiTaskModel, source: str) -> InitialWeights:
    """Copy the encoder, FPN and shared-task heads of the checkpoint ``source`` into
    ``model`` (see the module notes). The checkpoint is verified against its hashes and
    read as safetensors; ``CheckpointError`` names the file and the mismatch."""
    files = open_checkpoint(source)
    saved = load_safetensors(files.weights)
    try:
        saved_registry = TaskRegistry.from_list(files.meta["registry"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{files.sidecar_path}: invalid task registry: {exc}") from None
    saved_encoder = files.meta.get("model_config", {}).get("encoder")
    own = model.state_dict()
    report = InitialWeights(source=str(source))
    chosen = {}

    def take(prefix: str, part: str, required: bool) -> bool:
        wanted = {k: v for k, v in own.items() if k.startswith(prefix)}
        present = {k: saved[k] for k in wanted if k in saved}
        if not present and not required:
            return False
        missing = [k for k in wanted if k not in saved]
        shapes = [f"{k} {tuple(saved[k].shape)} vs {tuple(v.shape)}" for k, v in wanted.items()
                  if k in saved and saved[k].shape != v.shape]
        if missing or shapes:
            what = "; ".join(filter(None, [f"missing {', '.join(missing[:4])}" if missing else "",
                                           f"shape differs {', '.join(shapes[:4])}" if shapes else ""]))
            raise CheckpointError(
                f"{source}: its {part} (encoder {saved_encoder}) does not fit the model being trained "
                f"(model.encoder {model.config.encoder}, decoder_channels {model.config.decoder_channels}, "
                f"decoder_out_channels {model.config.decoder_out_channels}): {what}")
        chosen.update(present)
        report.kept.append(part)
        return True

    take("encoder.", "encoder", required=True)
    if model.decoder is not None and not take("decoder.", "decoder", required=False):
        report.fresh_decoder = True
    for task in model.registry:
        old = saved_registry.get(task.task_id)
        prefix = f"heads.{_module_key(task.task_id)}."
        head = {k: v for k, v in own.items() if k.startswith(prefix)}
        if old is not None and (old.kind, old.n) == (task.kind, task.n) and \
                all(k in saved and saved[k].shape == v.shape for k, v in head.items()):
            chosen.update({k: saved[k] for k in head})
            report.kept.append(f"head:{task.task_id}")
        else:
            report.new_heads.append(task.task_id)
    model.load_state_dict(chosen, strict=False)
    log.info("initial weights %s", report.summary())
    return report


def freeze(model: MultiTaskModel, finetune: FinetuneConfig) -> list[nn.Module]:
    """Stop the frozen encoder parameters of ``finetune.freeze`` from learning; returns
    the modules to keep in eval mode (``keep_frozen_in_eval``)."""
    stages = freeze_stages(finetune.freeze)
    if stages == 0:
        return []
    encoder = model.encoder
    if stages is None:
        params = list(encoder.parameters())
        modules = [encoder]
    else:
        found = parameter_stages(encoder)
        available = max(found.values()) + 1
        if stages > available:
            raise ConfigError(f"finetune.freeze: stages:{stages}, but encoder {encoder.name} has {available} stages")
        params = [p for name, p in encoder.named_parameters() if found[name] < stages]
        modules = modules_before(encoder, stages)
    for p in params:
        p.requires_grad_(False)
    return modules


def keep_frozen_in_eval(modules: Sequence[nn.Module]) -> None:
    for module in modules:
        module.eval()


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
    from fmuia.config.loading import parse_override
    from fmuia.train.engine import train  # the engine imports this module's hooks

    architecture, settings = finetune_overrides(source, freeze_spec, layer_decay)
    layers = [config] if isinstance(config, (str, os.PathLike)) else list(config or [])
    mixed = dict(overrides) if isinstance(overrides, Mapping) else dict(parse_override(o) for o in overrides or [])
    return train([*layers, architecture] if architecture else layers or None, data_root, out_dir,
                 val_root=val_root, overrides={**mixed, **settings})
