"""Starting a run from trained weights: the hooks the training loop calls.

* ``load_initial_weights`` once, before the first step (never on resume): the encoder
  and FPN weights of an fmuia checkpoint, and the heads of the tasks the checkpoint
  shares with the new data root (same id, kind and classes); every other head is new;
* ``freeze`` before the optimiser is built: the frozen encoder parameters stop
  requiring gradients, so the optimiser, gradient clipping and DDP leave them out;
* ``keep_frozen_in_eval`` after every ``model.train()`` (``fmuia.train.loop`` does it
  for every run): the frozen modules stay in eval mode, so their BatchNorm statistics
  (running mean and variance) do not move either and dropout inside them is off.
  Linear probing needs both.

Layer-wise learning rates (``finetune.layer_decay``) are the optimiser's
(``fmuia.train.optim``). ``fmuia.train.finetune`` turns a checkpoint or an encoder file
into the config of such a run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

from safetensors.torch import load as load_safetensors
from torch import nn

from fmuia.config.sections import FinetuneConfig, freeze_stages
from fmuia.errors import CheckpointError, ConfigError
from fmuia.model.checkpoint import open_checkpoint
from fmuia.model.network import MultiTaskModel, _module_key
from fmuia.model.stages import modules_before, parameter_stages
from fmuia.tasks import TaskRegistry

log = logging.getLogger(__name__)

__all__ = ["InitialWeights", "freeze", "keep_frozen_in_eval", "load_initial_weights"]


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


def freeze(model: nn.Module, finetune: FinetuneConfig) -> list[nn.Module]:
    """Stop the frozen encoder parameters of ``finetune.freeze`` from learning; returns
    the modules to keep in eval mode (``TrainingLoop.frozen``, ``keep_frozen_in_eval``).
    ``model``: a network with an ``encoder`` (``MultiTaskModel``, pretraining's ``SimCLR``)."""
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
