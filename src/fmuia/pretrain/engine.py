"""Pretraining the encoder: the ``Pretrainer`` run of ``fmuia pretrain``.

A run folder holds:

* ``config.yaml``: the resolved ``PretrainConfig``; ``run.json``: the image sources;
* ``last/``: the checkpoint of the last finished epoch (``fmuia.pretrain.checkpoint``),
  published as one unit, from which ``--resume`` continues;
* ``encoder.safetensors``: the encoder alone (``fmuia.model.encoder_file``), rewritten
  atomically after every epoch, for ``model.pretrained: RUN/encoder.safetensors``;
* ``metrics.csv`` (one row per epoch) and ``curves.png``.

The loop is training's (``fmuia.train.loop``: steps, precision, schedule, several
processes, checkpoint state, resume, stopping), so a run resumed from ``last`` continues
exactly as the uninterrupted run would (bit for bit on CPU); this module gives it the
two-view batches and their loss, and what its checkpoint and encoder file carry. Several
processes (torchrun): each rank takes its share of the batches, the loss sees every
rank's views as negatives (``nt_xent_loss``), and only rank 0 writes files.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch
from safetensors.torch import load as load_safetensors

from fmuia.config.pretrain import PretrainConfig, load_pretrain_config
from fmuia.data.torch_datasets import seed_worker
from fmuia.errors import CheckpointError, ConfigError
from fmuia.model.encoder import Encoder
from fmuia.model.encoder_file import save_encoder
from fmuia.pretrain.checkpoint import RECORD_NAME, read_pretraining_checkpoint, save_pretraining_checkpoint
from fmuia.pretrain.images import collect_images
from fmuia.pretrain.simclr import SimCLR, nt_xent_loss
from fmuia.pretrain.views import EpochBatches, TwoViews, build_view_transform
from fmuia.runtime import training_workers
from fmuia.train.loop import TrainingLoop

log = logging.getLogger(__name__)

__all__ = ["ENCODER_NAME", "PretrainResult", "Pretrainer", "pretrain"]

ENCODER_NAME = "encoder.safetensors"


@dataclass
class PretrainResult:
    run_dir: str
    encoder_file: str
    epochs: int
    steps: int
    images: int
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class EncoderSettings:
    """The encoder a run pretrains: timm name, view side, starting weights, memory format."""

    name: str
    image_size: int
    pretrained: str
    channels_last: bool


def encoder_settings(config: PretrainConfig) -> EncoderSettings:
    """The encoder keys of a pretraining config; the one place that reads them."""
    enc = config.encoder
    return EncoderSettings(enc.name, enc.image_size, enc.pretrained, enc.channels_last)


class Pretrainer(TrainingLoop):
    """A pretraining run in ``run_dir`` on the images of ``sources``; ``fit()`` trains."""

    what = "pretraining"
    progress_name = "pretrain"

    def __init__(self, config: PretrainConfig, sources: Iterable[str], run_dir: str, resume: bool = False) -> None:
        super().__init__(run_dir, config.train, config.seed, config.device)
        self.config = config
        self.encoder_settings = encoder_settings(config)
        self.sources = [os.fspath(s) for s in sources]
        if self.dist.is_main and not resume and os.path.exists(os.path.join(self.last_dir, RECORD_NAME)):
            raise ConfigError(f"{run_dir} already holds a pretraining run; resume it (--resume) or choose another folder")
        self.files = collect_images(self.sources, config.data.min_images)

        self.seed_everything()
        enc = self.encoder_settings
        self.model = SimCLR(Encoder(enc.name, enc.image_size, enc.pretrained), config.method).to(self.device)
        if enc.channels_last:
            self.model.to(memory_format=torch.channels_last)

        tcfg = config.train
        self.batches = EpochBatches(len(self.files), tcfg.batch_size, self.seed, self.dist.rank, self.dist.world_size)
        if len(self.batches) == 0:
            raise ConfigError(f"train.batch_size: {len(self.files)} image(s) give no full batch of {tcfg.batch_size}"
                              + (f" on each of {self.dist.world_size} processes" if self.dist.enabled else "")
                              + "; lower train.batch_size or add images")
        workers = config.data.num_workers if config.data.num_workers is not None else \
            training_workers(self.dist.local_world_size, self.device.type)
        self.loader = torch.utils.data.DataLoader(
            TwoViews(self.files, build_view_transform(config.views, enc.image_size)), batch_sampler=self.batches,
            num_workers=workers, worker_init_fn=seed_worker, persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda")
        self.prepare(self.model, _optimizer(self.model, config), config.schedule, len(self.batches))
        if resume:
            self._restore()
        self.open_run(config, {"images": [os.path.abspath(s) for s in self.sources]})

    # -- the loop's hooks ----------------------------------------------------------------
    def _set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def _loader(self):
        return self.loader

    def _batch_loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, Mapping[str, torch.Tensor], str]:
        views = torch.cat([batch["view1"], batch["view2"]]).to(self.device, non_blocking=True)
        if self.encoder_settings.channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            projections = self.forward_model(views)
        z1, z2 = projections.chunk(2)
        loss = nt_xent_loss(z1, z2, self.config.method.temperature, self.dist.rank, self.dist.world_size)
        return loss, {}, ""

    def _save(self, row: Mapping[str, Any], validation: Any) -> None:
        save_pretraining_checkpoint(self.last_dir, self.model, self._loop_state(), self.config.to_dict())
        save_encoder(self.model.encoder, os.path.join(self.run_dir, ENCODER_NAME), self.encoder_settings.name, {
            "image_size": self.encoder_settings.image_size, "method": self.config.method.name, "epochs": self.epoch,
            "steps": self.step, "images": len(self.files)})

    def _restore(self) -> None:
        weights, state = read_pretraining_checkpoint(self.last_dir)
        try:
            self._restore_weights(load_safetensors(weights), state)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.last_dir}: its weights do not fit the configured encoder "
                                  f"{self.encoder_settings.name} and method: {str(exc).splitlines()[0]}") from None
        self._restore_loop_state(state)

    def _result(self, history: list[dict[str, Any]]) -> PretrainResult:
        return PretrainResult(self.run_dir, os.path.join(self.run_dir, ENCODER_NAME), self.epoch, self.step,
                              len(self.files), history)


def _optimizer(model: torch.nn.Module, config: PretrainConfig) -> torch.optim.Optimizer:
    optim = config.optim
    # No weight decay on BatchNorm and bias parameters (the usual SimCLR practice).
    decay = [p for p in model.parameters() if p.ndim > 1]
    plain = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": float(optim.weight_decay)}, {"params": plain, "weight_decay": 0.0}]
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=float(optim.lr), momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=float(optim.lr))


def pretrain(
    config: "str | os.PathLike[str] | Mapping[str, Any] | PretrainConfig | list | None" = None,
    images: Iterable[str] | None = None,
    out_dir: str | None = None,
    overrides: "list[str] | Mapping[str, Any] | None" = None,
    resume: str | None = None,
) -> PretrainResult:
    """Pretrain the encoder on the images of ``images`` (folders, fmuia data roots, files)
    into ``out_dir``; ``resume``: a run folder to continue (its saved config and image
    sources are used unless given here)."""
    if resume:
        try:
            with open(os.path.join(resume, "run.json"), encoding="utf-8") as fh:
                info = json.load(fh)
        except (OSError, ValueError):
            raise CheckpointError(f"{resume}: not a pretraining run folder (no readable run.json)") from None
        config = config or os.path.join(resume, "config.yaml")
        images = images or info.get("images")
        out_dir = resume
    if not images or not out_dir:
        raise ConfigError("pretrain needs --images and --out (or --resume RUN)")
    resolved = load_pretrain_config(config, overrides)
    trainer = Pretrainer(resolved, list(images), out_dir, resume=bool(resume))
    try:
        return trainer.fit()
    finally:
        trainer.close()

