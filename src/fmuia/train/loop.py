"""The training loop of every run: ``fmuia train``, ``fmuia finetune`` and ``fmuia pretrain``.

``TrainingLoop`` owns what every run does the same way: epochs of optimiser steps,
mixed precision (autocast, and a gradient scaler under fp16), gradient clipping, the
learning-rate schedule, an optional weight average (EMA), several processes
(DistributedDataParallel), the progress bar, ``metrics.csv`` and the curves, the
training state a checkpoint carries, resume, and stopping (``train.max_steps``, a
non-finite loss, a file that fails when read). A run (``fmuia.train.engine.Trainer``,
``fmuia.pretrain.engine.Pretrainer``) builds its data, model and optimiser, hands them to
``prepare``, and fills in the hooks for what differs:

* ``_batch_loss(batch)``: the loss of one batch (the forward pass under ``autocast()``);
* ``_loader()``, ``_set_epoch(epoch)``: the training batches, and the epoch's batch order
  and augmentation seeds;
* ``_validate()``, ``_epoch_row``: the validation after an epoch and its metrics row;
* ``_save(row, validation)``, ``_restore()``: what a checkpoint carries, written and read
  back (``_loop_state``/``_restore_loop_state`` and ``_restore_weights`` are the shared part);
* ``_result(history)``: what ``fit()`` returns.

Reproducibility: the batches of an epoch, each sample's augmentation and the torch RNG
(dropout) at the start of an epoch are functions of (seed, epoch, rank) only, so a run
resumed from its ``last`` checkpoint continues exactly as the uninterrupted run would.
The learning rate is a function of the step alone, whether it moves every step or every
epoch (``schedule.interval``).

Several processes (torchrun): each rank trains on its share of the epoch's batches with
DistributedDataParallel, every rank stops together on a non-finite loss, and only rank 0
validates and writes files. Parameters outside the wrapped model (``averaged_parameters``,
e.g. learned loss weights) have their gradients averaged over the ranks before each
optimiser step, so every rank keeps the same values.
"""
from __future__ import annotations

import logging
import math
import os
import random
import time
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from fmuia.config import save_config
from fmuia.errors import CheckpointError, ConfigError, DataError, FmuiaError
from fmuia.io.atomic import write_json
from fmuia.runtime import autocast, resolve_device, training_precision
import fmuia.train.distributed as distributed
from fmuia.train.history import MetricsLog, plot_curves
from fmuia.train.optim import build_scheduler
from fmuia.train.state import capture_rng, restore_rng
from fmuia.train.transfer import keep_frozen_in_eval

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "TrainingLoop", "epoch_seed"]


class NonFiniteLossError(FmuiaError):
    """The training loss became NaN or infinite; the run stopped, its last checkpoint kept."""


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of an epoch's random draws on one rank."""
    return (seed * 1_000_003 + epoch * 10_007 + rank) % (2**63 - 1)


class TrainingLoop:
    """Epochs of optimiser steps for a run in ``run_dir`` (see the module notes).

    ``settings``: the run's ``train:`` section (``epochs``, ``max_steps``, ``precision``,
    ``grad_clip``, ``progress``, ``plot``); ``device``: the ``device`` key."""

    what = "training"  # the run's name in messages: "non-finite training loss ..."
    progress_name = "epoch"  # the progress bar's label

    def __init__(self, run_dir: str, settings: Any, seed: int, device: str) -> None:
        self.run_dir = run_dir
        self.settings = settings
        self.seed = int(seed)
        self.device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = distributed.init(self.device.type)
        self.last_dir = os.path.join(run_dir, "last")
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.frozen: list[nn.Module] = []  # modules kept in eval mode while training (``fmuia.train.transfer``)
        self.averaged_parameters: list[torch.Tensor] = []
        self.ema = None
        self.metrics: MetricsLog | None = None
        self.last_validation = None

    # -- set-up ---------------------------------------------------------------------------
    def seed_everything(self) -> None:
        """Seed torch, numpy and Python's RNG with the run's seed (before the model is built)."""
        torch.manual_seed(self.seed)
        np.random.seed(self.seed % 2**32)
        random.seed(self.seed)

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Any, steps_per_epoch: int, *,
                ema_decay: float | None = None, find_unused_parameters: bool = False, compile: bool = False) -> None:
        """The precision, scheduler (``schedule``: a ``ScheduleConfig``), weight average and
        process wrapping around ``model`` and its ``optimizer``; once the optimiser holds
        every parameter group."""
        self.model = model
        self.optimizer = optimizer
        self.precision = training_precision(self.settings.precision, self.device)
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.precision: fp16 training needs a CUDA device (use bf16 or fp32 on CPU)")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = int(self.settings.epochs) * steps_per_epoch
        if self.settings.max_steps:
            self.total_steps = min(self.total_steps, int(self.settings.max_steps))
        self.scheduler = build_scheduler(optimizer, schedule, max(1, self.total_steps), steps_per_epoch)
        if ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(ema_decay)), use_buffers=True)
        forward = model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # Training: ranks hold batches of different tasks, so some heads get no
            # gradient on a rank; find_unused_parameters marks them ready with a zero
            # contribution and leaves a head's gradient None when no rank used it, so
            # the optimiser skips it exactly as in one process.
            forward = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )
        if compile:
            forward = torch.compile(forward)
        self.forward_model = forward

    def open_run(self, config: Any, info: Mapping[str, Any], tensorboard_dir: str | None = None) -> None:
        """Write ``config.yaml`` and ``run.json`` (``info``) and open ``metrics.csv`` (rank 0);
        only once the data is checked and loaded and a resumed checkpoint verified, so a
        refused start leaves nothing behind and a refused resume leaves its run as it was."""
        if self.dist.is_main:
            os.makedirs(self.run_dir, exist_ok=True)
            save_config(config, os.path.join(self.run_dir, "config.yaml"))
            write_json(os.path.join(self.run_dir, "run.json"), dict(info))
            self.metrics = MetricsLog(self.run_dir, self.history, tensorboard_dir)

    def autocast(self):
        return autocast(self.precision, self.device)

    def eval_model(self) -> nn.Module:
        """The weights validation and checkpoints use: the average under EMA."""
        return self.ema.module if self.ema is not None else self.model

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- hooks ----------------------------------------------------------------------------
    def _batch_loss(self, batch: Any) -> tuple[torch.Tensor, Mapping[str, torch.Tensor], str]:
        """(loss, its parts by name, a short note for the progress bar) of one batch."""
        raise NotImplementedError

    def _set_epoch(self, epoch: int) -> None:
        """Set the batch order and augmentation of ``epoch``."""
        raise NotImplementedError

    def _loader(self) -> Iterable:
        raise NotImplementedError

    def _culprits(self, parts: Mapping[str, float]) -> str:
        """Where a non-finite loss came from, from its non-finite ``parts`` ('' for nowhere in particular)."""
        return ""

    def _validate(self):
        """The validation after an epoch (rank 0), or None."""
        return None

    def _epoch_row(self, train_loss: float | None, validation: Any, seconds: float) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "lr": self._lr(), "train_loss": train_loss,
                "time_s": round(seconds, 2)}

    def _save(self, row: Mapping[str, Any], validation: Any) -> None:
        raise NotImplementedError

    def _result(self, history: list[dict[str, Any]]):
        raise NotImplementedError

    # -- one step -------------------------------------------------------------------------
    def _train_step(self, batch: Any) -> tuple[float, str]:
        loss, parts, note = self._batch_loss(batch)
        value = self._check_finite(loss, parts)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.dist.average_gradients(self.averaged_parameters)
        clip = self.settings.grad_clip
        if clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        return value, note

    def _check_finite(self, loss: torch.Tensor, parts: Mapping[str, torch.Tensor]) -> float:
        """The loss averaged over the ranks; ``NonFiniteLossError`` on every rank when it
        is not finite on one of them."""
        flag = torch.stack([loss.detach().float(), (~torch.isfinite(loss.detach())).float()])
        self.dist.all_reduce_sum(flag)  # every rank stops together
        value, bad_anywhere = flag.tolist()
        if not bad_anywhere:
            return value / self.dist.world_size
        bad = {name: float(v.detach()) for name, v in parts.items() if not math.isfinite(float(v.detach()))}
        where = self._culprits(bad) if bad else ("" if not parts else "a task on another process")
        kept = f"the last good checkpoint {self.last_dir} (epoch {self.epoch}) is kept" if os.path.isdir(self.last_dir) \
            else "no checkpoint had been written yet"
        raise NonFiniteLossError(
            f"non-finite {self.what} loss at step {self.step + 1} (epoch {self.epoch + 1})"
            f"{' in task ' + where if where else ''}; training stopped, {kept}. "
            "Try a lower optim.lr, train.grad_clip, or train.precision=fp32."
        )

    # -- epochs ---------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> float:
        from tqdm import tqdm

        self._set_epoch(epoch)
        torch.manual_seed(epoch_seed(self.seed, epoch, self.dist.rank))
        self.forward_model.train()
        keep_frozen_in_eval(self.frozen)
        show = bool(self.settings.progress) and self.dist.is_main
        bar = tqdm(self._loader(), total=self.steps_per_epoch,
                   desc=f"{self.progress_name} {epoch + 1}/{int(self.settings.epochs)}",
                   disable=not show, dynamic_ncols=True, leave=False)
        total, count = 0.0, 0
        max_steps = self.settings.max_steps
        for batch in self._batches(bar, f"step {self.step + 1} (epoch {epoch + 1})"):
            value, note = self._train_step(batch)
            total += value
            count += 1
            bar.set_postfix(loss=f"{value:.4f}", **({"task": note[:30]} if note else {}))
            if self.metrics is not None and self.step % 50 == 0:
                self.metrics.scalar("loss/step", value, self.step)
            if max_steps and self.step >= max_steps:
                break
        bar.close()
        return total / max(count, 1)

    def _batches(self, loader: Iterable, at: str):
        """The loader's batches; a ``DataError`` raised reading one stops the run, saying
        where it stopped (``at``) and what was kept."""
        iterator = iter(loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except DataError as exc:
                raise self._stopped_because(exc, at) from None
            yield batch

    def _stopped_because(self, exc: DataError, at: str) -> DataError:
        """A file that failed when read mid-run (changed after the check, or beyond what
        the check looks at): its row and reason, where the run stopped and what was kept."""
        if os.path.isdir(self.last_dir):
            epoch = self.history[-1].get("epoch", "?") if self.history else "?"
            kept = f"the last good checkpoint {self.last_dir} (epoch {epoch}) is kept"
        else:
            kept = "no checkpoint had been written yet"
        return DataError(f"{_worker_message(exc)}\n{self.what} stopped at {at}; {kept}")

    def _end_epoch(self, train_loss: float | None, seconds: float) -> None:
        self.dist.broadcast_buffers(self.model)
        validation = self._validate()
        row = self._epoch_row(train_loss, validation, seconds)
        if self.dist.is_main:
            self.history.append(row)
            self.metrics.add(row)
            self._save(row, validation)
            loss = f"{train_loss:.4f}" if train_loss is not None else "-"
            if validation is not None:
                log.info("epoch %d  step %d  loss %s\n%s", self.epoch, self.step, loss, validation.format_table())
            else:
                log.info("epoch %d  step %d  loss %s", self.epoch, self.step, loss)
        self.last_validation = validation
        self.dist.barrier()

    def fit(self):
        """Train to ``train.epochs`` (or ``train.max_steps``), from where a resumed run
        stopped; returns the run's result (``_result``)."""
        epochs = int(self.settings.epochs)
        max_steps = self.settings.max_steps
        try:
            if epochs == 0 and self.epoch == 0 and not self.history:
                self._end_epoch(None, 0.0)  # the untrained model, scored and saved
            while self.epoch < epochs and not (max_steps and self.step >= max_steps):
                start = time.perf_counter()
                train_loss = self._train_epoch(self.epoch)
                self.epoch += 1
                self._end_epoch(train_loss, time.perf_counter() - start)
            if self.dist.is_main and self.settings.plot:
                plot_curves(self.history, os.path.join(self.run_dir, "curves.png"))
        finally:
            if self.metrics is not None:
                self.metrics.close()
        return self._result(self.dist.broadcast_object(self.history))

    def close(self) -> None:
        self.dist.close()

    # -- the training state of a checkpoint --------------------------------------------------
    def _loop_state(self) -> dict[str, Any]:
        """What every run's checkpoint carries to resume: position, optimiser, schedule,
        scaler, RNG states, history, and under EMA the raw weights next to the average."""
        state: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng(),
            "history": [dict(r) for r in self.history],
        }
        if self.ema is not None:  # the checkpoint holds the average; keep the raw weights too
            state["ema"] = self.ema.state_dict()
            state["model"] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return state

    def _restore_weights(self, weights: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
        """The model (and average) from a checkpoint's published ``weights`` and its ``state``."""
        if self.ema is not None:
            if "ema" not in state:
                raise CheckpointError(f"{self.last_dir}: the run had no EMA (train.ema_decay) and cannot resume with one")
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
        else:
            self.model.load_state_dict(state["model"] if "ema" in state else weights)

    def _restore_loop_state(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = list(state["history"])
        log.info("resuming %s at epoch %d, step %d", self.run_dir, self.epoch, self.step)


def _worker_message(exc: DataError) -> str:
    """The error's own text: a DataLoader worker re-raises it wrapped in its traceback."""
    text = str(exc)
    marker = "DataError: "
    if "Original Traceback" in text and marker in text:
        return text[text.rindex(marker) + len(marker):].strip()
    return text
