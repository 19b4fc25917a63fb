"""The pretraining loop: epochs of two-view batches, checkpoints, resume, the encoder file.

A run folder holds:

* ``config.yaml``: the resolved ``PretrainConfig``; ``run.json``: the image sources;
* ``last/``: the checkpoint of the last finished epoch (``fmuia.pretrain.checkpoint``),
  published as one unit, from which ``--resume`` continues;
* ``encoder.safetensors``: the encoder alone (``fmuia.model.encoder_file``), rewritten
  atomically after every epoch, for ``model.pretrained: RUN/encoder.safetensors``;
* ``metrics.csv`` (one row per epoch) and ``curves.png``.

Reproducibility as in ``fmuia.train.engine``: the batches and views of an epoch and the
torch RNG at its start are functions of (seed, epoch, rank), and the learning rate of
the step alone, so a run resumed from ``last`` continues exactly as the uninterrupted
run would (bit for bit on CPU). Several processes (torchrun): each rank takes its share
of the batches, the model is wrapped in DistributedDataParallel, the loss sees every
rank's views as negatives (``nt_xent_loss``), and only rank 0 writes files.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from fmuia.config import save_config
from fmuia.config.pretrain import PretrainConfig, load_pretrain_config
from fmuia.data.torch_datasets import seed_worker
from fmuia.errors import CheckpointError, ConfigError, FmuiaError
from fmuia.io.atomic import write_json
from fmuia.io.dicom import set_dicom_range
from fmuia.model.encoder import Encoder
from fmuia.model.encoder_file import save_encoder
from fmuia.pretrain.checkpoint import RECORD_NAME, read_pretraining_checkpoint, save_pretraining_checkpoint
from fmuia.pretrain.images import collect_images
from fmuia.pretrain.simclr import SimCLR, nt_xent_loss
from fmuia.pretrain.views import EpochBatches, TwoViews, build_view_transform
from fmuia.runtime import autocast, resolve_device, training_precision, training_workers
import fmuia.train.distributed as distributed
from fmuia.train.history import MetricsLog, plot_curves
from fmuia.train.optim import build_scheduler
from fmuia.train.state import capture_rng, restore_rng

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


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank) % (2**63 - 1)


class Pretrainer:
    """A pretraining run in ``run_dir`` on the images of ``sources``; ``fit()`` trains."""

    def __init__(self, config: PretrainConfig, sources: Iterable[str], run_dir: str, resume: bool = False) -> None:
        self.config, self.run_dir = config, run_dir
        self.sources = [os.fspath(s) for s in sources]
        self.last_dir = os.path.join(run_dir, "last")
        self.device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = distributed.init(self.device.type)
        if self.dist.is_main and not resume and os.path.exists(os.path.join(self.last_dir, RECORD_NAME)):
            raise ConfigError(f"{run_dir} already holds a pretraining run; resume it (--resume) or choose another folder")
        set_dicom_range(config.data.dicom_range)  # before any frame is read, here or in a loader process
        self.files = collect_images(self.sources, config.data.min_images)

        seed = int(config.seed)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        enc = config.encoder
        encoder = Encoder(enc.name, enc.image_size, enc.pretrained)
        self.model = SimCLR(encoder, config.method).to(self.device)
        if enc.channels_last:
            self.model.to(memory_format=torch.channels_last)

        tcfg = config.train
        self.batches = EpochBatches(len(self.files), tcfg.batch_size, seed, self.dist.rank, self.dist.world_size)
        self.steps_per_epoch = len(self.batches)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"train.batch_size: {len(self.files)} image(s) give no full batch of {tcfg.batch_size}"
                              + (f" on each of {self.dist.world_size} processes" if self.dist.enabled else "")
                              + "; lower train.batch_size or add images")
        workers = config.data.num_workers if config.data.num_workers is not None else \
            training_workers(self.dist.local_world_size, self.device.type)
        self.loader = torch.utils.data.DataLoader(
            TwoViews(self.files, build_view_transform(config.views, enc.image_size)), batch_sampler=self.batches,
            num_workers=workers, worker_init_fn=seed_worker, persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda")

        self.precision = training_precision(tcfg.precision, self.device)
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.precision: fp16 training needs a CUDA device (use bf16 or fp32 on CPU)")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.optimizer = _optimizer(self.model, config)
        self.total_steps = int(tcfg.epochs) * self.steps_per_epoch
        if tcfg.max_steps:
            self.total_steps = min(self.total_steps, int(tcfg.max_steps))
        self.scheduler = build_scheduler(self.optimizer, config.schedule, max(1, self.total_steps), self.steps_per_epoch)
        self.forward_model: torch.nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.forward_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        self.epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = self._restore() if resume else []
        if self.dist.is_main:  # only once the images are found and a resumed checkpoint verified
            os.makedirs(run_dir, exist_ok=True)
            save_config(config, os.path.join(run_dir, "config.yaml"))
            write_json(os.path.join(run_dir, "run.json"), {"images": [os.path.abspath(s) for s in self.sources]})
        self.metrics = MetricsLog(run_dir, self.history) if self.dist.is_main else None

    # -- steps and epochs ------------------------------------------------------------------
    def _train_step(self, batch: Mapping[str, torch.Tensor]) -> float:
        views = torch.cat([batch["view1"], batch["view2"]]).to(self.device, non_blocking=True)
        if self.config.encoder.channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device):
            projections = self.forward_model(views)
        z1, z2 = projections.chunk(2)
        loss = nt_xent_loss(z1, z2, self.config.method.temperature, self.dist.rank, self.dist.world_size)
        value = self._checked(loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = self.config.train.grad_clip
        if clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return value

    def _checked(self, loss: torch.Tensor) -> float:
        flag = torch.stack([loss.detach().float(), (~torch.isfinite(loss.detach())).float()])
        self.dist.all_reduce_sum(flag)  # every rank stops together
        value, bad = flag.tolist()
        if bad:
            raise FmuiaError(f"non-finite pretraining loss at step {self.step + 1} (epoch {self.epoch + 1}); training "
                             f"stopped, the last checkpoint {self.last_dir} is kept if there is one. Try a lower "
                             "optim.lr, a train.grad_clip or train.precision=fp32.")
        return value / self.dist.world_size

    def _train_epoch(self, epoch: int) -> float:
        from tqdm import tqdm

        self.batches.set_epoch(epoch)
        torch.manual_seed(_epoch_seed(int(self.config.seed), epoch, self.dist.rank))
        self.forward_model.train()
        show = bool(self.config.train.progress) and self.dist.is_main
        bar = tqdm(self.loader, total=self.steps_per_epoch, desc=f"pretrain {epoch + 1}/{self.config.train.epochs}",
                   disable=not show, dynamic_ncols=True, leave=False)
        total, count = 0.0, 0
        max_steps = self.config.train.max_steps
        for batch in bar:
            value = self._train_step(batch)
            total, count = total + value, count + 1
            bar.set_postfix(loss=f"{value:.4f}")
            if max_steps and self.step >= max_steps:
                break
        bar.close()
        return total / max(count, 1)

    def fit(self) -> PretrainResult:
        epochs, max_steps = int(self.config.train.epochs), self.config.train.max_steps
        try:
            while self.epoch < epochs and not (max_steps and self.step >= max_steps):
                start = time.perf_counter()
                loss = self._train_epoch(self.epoch)
                self.epoch += 1
                self._end_epoch(loss, time.perf_counter() - start)
            if self.dist.is_main and self.config.train.plot:
                plot_curves(self.history, os.path.join(self.run_dir, "curves.png"))
        finally:
            if self.metrics is not None:
                self.metrics.close()
        return PretrainResult(self.run_dir, os.path.join(self.run_dir, ENCODER_NAME), self.epoch, self.step,
                              len(self.files), self.dist.broadcast_object(self.history))

    def _end_epoch(self, loss: float, seconds: float) -> None:
        self.dist.broadcast_buffers(self.model)
        row = {"epoch": self.epoch, "step": self.step, "lr": float(self.optimizer.param_groups[0]["lr"]),
               "train_loss": loss, "time_s": round(seconds, 2)}
        if self.dist.is_main:
            self.history.append(row)
            self.metrics.add(row)
            self._save()
            log.info("epoch %d  step %d  loss %.4f", self.epoch, self.step, loss)
        self.dist.barrier()

    # -- checkpoints ---------------------------------------------------------------------
    def _save(self) -> None:
        state = {"epoch": self.epoch, "step": self.step, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": capture_rng(),
                 "history": [dict(r) for r in self.history]}
        save_pretraining_checkpoint(self.last_dir, self.model, state, self.config.to_dict())
        enc = self.config.encoder
        save_encoder(self.model.encoder, os.path.join(self.run_dir, ENCODER_NAME), enc.name, {
            "image_size": enc.image_size, "method": self.config.method.name, "epochs": self.epoch,
            "steps": self.step, "images": len(self.files)})

    def _restore(self) -> list[dict[str, Any]]:
        weights, state = read_pretraining_checkpoint(self.last_dir)
        try:
            self.model.load_state_dict(load_safetensors(weights))
        except RuntimeError as exc:
            raise CheckpointError(f"{self.last_dir}: its weights do not fit the configured encoder "
                                  f"{self.config.encoder.name} and method: {str(exc).splitlines()[0]}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        log.info("resuming %s at epoch %d, step %d", self.run_dir, self.epoch, self.step)
        return list(state["history"])


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
        trainer.dist.close()

