"""The training loop: one epoch of task batches, validation, checkpoints, resume.

Reproducibility: the batches of an epoch, each sample's augmentation and the torch RNG
(dropout) at the start of an epoch are functions of (seed, epoch, rank) only, so a run
resumed from its ``last`` checkpoint continues exactly as the uninterrupted run would.
``augment.seeded: false`` gives that up for the augmentation, which then draws from
unseeded state as in the official code. The learning rate is a function of the step
alone, whether it moves every step or every epoch (``schedule.interval``).

Several processes (torchrun): each rank trains on its share of the epoch's batches with
DistributedDataParallel. Ranks usually hold batches of different tasks, so some heads
(and the FPN, for a classification batch) get no gradient on a rank in a step; DDP runs
with ``find_unused_parameters=True``, which marks them ready with a zero contribution
and leaves a head's gradient ``None`` when no rank used it, so the optimiser skips it
exactly as in a single process. (Adding ``0 * sum(unused parameters)`` to the loss would
instead give every head a zero gradient each step, and AdamW would then keep moving
heads of absent tasks by momentum and weight decay: a different optimisation from the
single-process run.) The learned loss weights of ``loss.balance: uncertainty`` live
outside the wrapped model; their gradients are averaged over the ranks before each
optimiser step on the same terms (``Dist.average_gradients``), so every rank keeps the
same weights. Only rank 0 validates and writes files.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from fmuia.config import Config, load_config, save_config
from fmuia.errors import CheckpointError, ConfigError, DataError, FmuiaError
from fmuia.io.atomic import write_json
from fmuia.io.images import set_exif_orientation
from fmuia.model import build_model, save_checkpoint
from fmuia.model.checkpoint import checkpoint_paths, open_checkpoint
from fmuia.model.routing import group_indices
from fmuia.runtime import autocast, resolve_device, training_precision
import fmuia.train.distributed as distributed
from fmuia.train.data import build_data, check_data
from fmuia.train.finetune import freeze, keep_frozen_in_eval, load_initial_weights
from fmuia.train.losses import TaskLoss
from fmuia.train.optim import build_optimizer, build_scheduler
from fmuia.train.history import MetricsLog, plot_curves
from fmuia.train.state import capture_rng, read_state, restore_rng
from fmuia.train.validation import Validation, run_validation

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "RunResult", "Trainer", "train"]


class NonFiniteLossError(FmuiaError):
    """The training loss became NaN or infinite; the run stopped, its last checkpoint kept."""


@dataclass
class RunResult:
    run_dir: str
    best_score: float | None
    best_epoch: int | None
    epochs: int
    steps: int
    last_checkpoint: str
    best_checkpoint: str | None
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: Validation | None = None


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank) % (2**63 - 1)


class Trainer:
    """A training run in ``run_dir``. ``fit()`` trains and returns a ``RunResult``.

    ``config``: a ``Config`` (``fmuia.config.load_config``), or a mapping read over the
    defaults."""

    def __init__(self, config: "Config | Mapping[str, Any]", data_root: str, run_dir: str, val_root: str | None = None,
                 resume: bool = False) -> None:
        config = config if isinstance(config, Config) else load_config(config)
        self.config = config
        self.run_dir = run_dir
        self.data_root, self.val_root = data_root, val_root
        set_exif_orientation(config.data.exif_orientation)  # before the check reads any header
        tcfg = config.train
        self.device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = distributed.init(self.device.type)
        self.last_dir = os.path.join(run_dir, "last")
        self.best_dir = os.path.join(run_dir, "best")
        if self.dist.is_main and not resume and os.path.exists(checkpoint_paths(self.last_dir)[1]):
            raise ConfigError(f"{run_dir} already holds a training run; resume it (--resume) or choose another folder")
        self._check_data()

        seed = int(config.seed)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        self.data = build_data(config.data, config.sampler, config.augment, data_root, val_root,
                               image_size=config.model.image_size, batch_size=tcfg.batch_size, seed=config.seed,
                               rank=self.dist.rank, world_size=self.dist.world_size,
                               local_world_size=self.dist.local_world_size, device_type=self.device.type,
                               input_scale=config.model.input_scale)
        self.registry = self.data.registry
        self.model = build_model(config.model, self.registry).to(self.device)
        self.initial_weights = None
        if config.finetune.init_from and not resume:  # a resumed run restores its own weights
            self.initial_weights = load_initial_weights(self.model, config.finetune.init_from)
        # Fine-tuning's frozen encoder part: no gradients, and kept in eval mode (BatchNorm).
        self.frozen = freeze(self.model, config.finetune)
        if self.model.config.channels_last:
            self.model.to(memory_format=torch.channels_last)

        self.precision = training_precision(tcfg.precision, self.device)
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.precision: fp16 training needs a CUDA device (use bf16 or fp32 on CPU)")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.loss = TaskLoss(self.registry, self.model.head_types, config.loss)
        # Also freezes what optim.train_decoder leaves untrained; before the DDP wrap below.
        self.optimizer = build_optimizer(self.model, config.optim, config.finetune)
        balance_group = self.loss.to(self.device).param_group(config.optim)
        if balance_group is not None:  # before the scheduler, which gives each group its rate curve
            self.optimizer.add_param_group(balance_group)
        self.steps_per_epoch = len(self.data.sampler)
        self.total_steps = int(tcfg.epochs) * self.steps_per_epoch
        if tcfg.max_steps:
            self.total_steps = min(self.total_steps, int(tcfg.max_steps))
        self.scheduler = build_scheduler(self.optimizer, config.schedule, max(1, self.total_steps), self.steps_per_epoch)
        self.ema = None
        if tcfg.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(float(tcfg.ema_decay)), use_buffers=True)

        forward = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            forward = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        if tcfg.compile:
            forward = torch.compile(forward)
        self.forward_model = forward

        self.epoch = 0
        self.step = 0
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.chance_scores = None  # the balanced rule's chance scores, from the first validation
        history: list[dict[str, Any]] = []
        if resume:
            history = self._restore()
        # Only once the data is checked and loaded and a resumed checkpoint verified: a bad
        # dataset leaves no run folder behind, a refused resume leaves its run as it was.
        if self.dist.is_main:
            os.makedirs(run_dir, exist_ok=True)
            save_config(config, os.path.join(run_dir, "config.yaml"))
            self._write_run_info()
        self.metrics = MetricsLog(run_dir, history, tcfg.log_dir) if self.dist.is_main else None
        self.history = history
        self.last_validation: Validation | None = None

    # -- bookkeeping -------------------------------------------------------------------
    def _check_data(self) -> None:
        """``data.check`` on the main process; every process stops on its verdict."""
        problem = None
        if self.dist.is_main:
            try:
                check_data(self.config.data, self.data_root, self.val_root)
            except DataError as exc:
                problem = str(exc)
        problem = self.dist.broadcast_object(problem)
        if problem:
            raise DataError(problem)

    def _write_run_info(self) -> None:
        info = {"data_root": os.path.abspath(self.data_root),
                "val_root": os.path.abspath(self.val_root) if self.val_root else None}
        write_json(os.path.join(self.run_dir, "run.json"), info)

    def autocast(self):
        return autocast(self.precision, self.device)

    def eval_model(self):
        return self.ema.module if self.ema is not None else self.model

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- one step ----------------------------------------------------------------------
    def _train_step(self, batch: Mapping[str, Any]) -> tuple[float, str]:
        images = batch["image"].to(self.device, non_blocking=True)
        task_ids = batch["task_id"]
        groups = group_indices(task_ids)
        targets = {t: torch.stack([batch["target"][i] for i in rows]).to(self.device, non_blocking=True)
                   for t, rows in groups.items()}
        with self.autocast():
            outputs = self.forward_model(images, task_ids)
        loss, per_task = self.loss(outputs, targets)
        self._check_finite(loss, per_task)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.dist.average_gradients(self.loss.parameters())
        clip = self.config.train.grad_clip
        if clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        return self._last_loss, ",".join(groups)

    def _check_finite(self, loss: torch.Tensor, per_task: Mapping[str, torch.Tensor]) -> None:
        flag = torch.stack([loss.detach().float(), (~torch.isfinite(loss.detach())).float()])
        self.dist.all_reduce_sum(flag)  # every rank stops together
        value, bad_anywhere = flag.tolist()
        self._last_loss = value / self.dist.world_size
        if not bad_anywhere:
            return
        bad = {t: float(v.detach()) for t, v in per_task.items() if not math.isfinite(float(v.detach()))}
        where = (", ".join(f"{t} ({self.registry[t].kind.value}) = {v}" for t, v in bad.items())
                 if bad else "a task on another process")
        kept = f"the last good checkpoint {self.last_dir} (epoch {self.epoch}) is kept" if os.path.isdir(self.last_dir) \
            else "no checkpoint had been written yet"
        raise NonFiniteLossError(
            f"non-finite training loss at step {self.step + 1} (epoch {self.epoch + 1}) in task {where}; "
            f"training stopped, {kept}. Try a lower optim.lr, train.grad_clip, or train.precision=fp32."
        )

    # -- epochs ------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> float:
        from tqdm import tqdm

        seed = int(self.config.seed)
        self.data.sampler.set_epoch(epoch)
        self.data.generator.manual_seed(_epoch_seed(seed, epoch, 0))
        torch.manual_seed(_epoch_seed(seed, epoch, self.dist.rank))
        self.forward_model.train()
        keep_frozen_in_eval(self.frozen)
        show = bool(self.config.train.progress) and self.dist.is_main
        epochs = int(self.config.train.epochs)
        bar = tqdm(self.data.train_loader, total=len(self.data.sampler), desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not show, dynamic_ncols=True, leave=False)
        total, count = 0.0, 0
        max_steps = self.config.train.max_steps
        for batch in _batches(bar, lambda exc: self._stopped_because(exc, f"step {self.step + 1} (epoch {epoch + 1})")):
            value, tasks = self._train_step(batch)
            total += value
            count += 1
            bar.set_postfix(loss=f"{value:.4f}", task=tasks[:30])
            if self.metrics is not None and self.step % 50 == 0:
                self.metrics.scalar("loss/step", value, self.step)
            if max_steps and self.step >= max_steps:
                break
        bar.close()
        return total / max(count, 1)

    def _validate(self) -> Validation | None:
        if self.data.val_loader is None or not self.dist.is_main:
            return None
        from tqdm import tqdm

        show = bool(self.config.train.progress)
        progress = (lambda it: tqdm(it, desc="validation", leave=False, dynamic_ncols=True)) if show else None
        loader = _batches(self.data.val_loader, lambda exc: self._stopped_because(exc, f"validation after epoch {self.epoch}"))
        val = run_validation(self.eval_model(), loader, self.registry, self.device, self.autocast, progress,
                             select=self.config.train.select, chance=self.chance_scores)
        self.chance_scores = val.chance
        return val

    def _stopped_because(self, exc: DataError, at: str) -> DataError:
        """A file that failed when read mid-run (changed after the check, or beyond what
        the check looks at): its row and reason, where the run stopped and what was kept."""
        if os.path.isdir(self.last_dir):
            epoch = self.history[-1].get("epoch", "?") if self.history else "?"
            kept = f"the last good checkpoint {self.last_dir} (epoch {epoch}) is kept"
        else:
            kept = "no checkpoint had been written yet"
        return DataError(f"{_worker_message(exc)}\ntraining stopped at {at}; {kept}")

    def _row(self, epoch: int, train_loss: float | None, val: Validation | None, seconds: float) -> dict[str, Any]:
        row: dict[str, Any] = {"epoch": epoch, "step": self.step, "lr": self._lr(), "train_loss": train_loss,
                               "time_s": round(seconds, 2)}
        if val is not None:
            row.update(val.kind_columns())
            row.update(val.selection_columns())  # val_score: the score that selects the best checkpoint
            row.update({f"score_{r.task_id}": r.score for r in val.results})
        row.update(self.loss.balance_columns())
        return row

    def _save(self, row: Mapping[str, Any], val: Validation | None) -> None:
        model = self.eval_model()
        extra = {"epoch": self.epoch, "step": self.step, "val_score": row.get("val_score")}
        score = row.get("val_score")
        improved = score is not None and (self.best_score is None or score > self.best_score)
        if improved:
            self.best_score, self.best_epoch = score, self.epoch
        extra["best_score"], extra["best_epoch"] = self.best_score, self.best_epoch
        # weights, sidecar and training state replace the previous ones as one unit
        save_checkpoint(model, self.last_dir, training_config=self.config.to_dict(), extra=extra, training_state=self._state())
        if improved or (val is None and self.best_score is None):
            save_checkpoint(model, self.best_dir, training_config=self.config.to_dict(), extra=extra)

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "format": "fmuia-training-state",
            "epoch": self.epoch,
            "step": self.step,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "select": self.config.train.select,  # the rule best_score was chosen by
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.data.sampler.state_dict(),
            "rng": capture_rng(),
            "history": [dict(r) for r in self.history],
        }
        if self.loss.balance is not None:  # learned loss weights: not model weights, but needed to resume
            state["loss_balance"] = self.loss.balance.state()
        if self.ema is not None:  # the checkpoint holds the average; keep the raw weights too
            state["ema"] = self.ema.state_dict()
            state["model"] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return state

    def _restore(self) -> list[dict[str, Any]]:
        files = open_checkpoint(self.last_dir, training_state=True)  # refuses a mixed or edited checkpoint
        state, meta = read_state(files), files.meta
        if int(meta.get("extra", {}).get("epoch", -1)) != int(state["epoch"]):
            raise CheckpointError(f"{self.last_dir}: weights (epoch {meta.get('extra', {}).get('epoch')}) and training "
                                  f"state (epoch {state['epoch']}) disagree; the run was interrupted while saving")
        weights = load_safetensors(files.weights)
        if self.ema is not None:
            if "ema" not in state:
                raise CheckpointError(f"{self.last_dir}: the run had no EMA (train.ema_decay) and cannot resume with one")
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
        else:
            if "ema" in state:
                weights = state["model"]
            self.model.load_state_dict(weights)
        if (self.loss.balance is None) != ("loss_balance" not in state):
            raise CheckpointError(f"{self.last_dir}: the run was trained with a different loss.balance than {self.config.loss.balance}")
        if self.loss.balance is not None:
            self.loss.balance.load(state["loss_balance"], self.last_dir)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.data.sampler.load_state_dict(state["sampler"])
        restore_rng(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        if state.get("select", "challenge") != self.config.train.select:
            raise ConfigError(f"train.select: the run picked its best checkpoint by the {state.get('select', 'challenge')} "
                              f"score; resume it with that rule, not {self.config.train.select!r}")
        log.info("resuming %s at epoch %d, step %d", self.run_dir, self.epoch, self.step)
        return list(state["history"])

    def _end_epoch(self, train_loss: float | None, seconds: float) -> None:
        self.dist.broadcast_buffers(self.model)
        val = self._validate()
        row = self._row(self.epoch, train_loss, val, seconds)
        if self.dist.is_main:
            self.history.append(row)
            self.metrics.add(row)
            self._save(row, val)
            if val is not None:
                log.info("epoch %d  step %d  loss %s\n%s", self.epoch, self.step,
                         f"{train_loss:.4f}" if train_loss is not None else "-", val.format_table())
            else:
                log.info("epoch %d  step %d  loss %.4f", self.epoch, self.step, train_loss or float("nan"))
        self.last_validation = val
        self.dist.barrier()

    def fit(self) -> RunResult:
        epochs = int(self.config.train.epochs)
        max_steps = self.config.train.max_steps
        try:
            if epochs == 0 and self.epoch == 0 and not self.history:
                self._end_epoch(None, 0.0)  # the untrained model, scored and saved
            while self.epoch < epochs and not (max_steps and self.step >= max_steps):
                start = time.perf_counter()
                train_loss = self._train_epoch(self.epoch)
                self.epoch += 1
                self._end_epoch(train_loss, time.perf_counter() - start)
            if self.dist.is_main and self.config.train.plot:
                plot_curves(self.history, os.path.join(self.run_dir, "curves.png"))
        finally:
            if self.metrics is not None:
                self.metrics.close()
        history = self.dist.broadcast_object(self.history)
        best = self.dist.broadcast_object((self.best_score, self.best_epoch))
        result = RunResult(
            run_dir=self.run_dir, best_score=best[0], best_epoch=best[1], epochs=self.epoch, steps=self.step,
            last_checkpoint=self.last_dir,
            best_checkpoint=self.best_dir if os.path.isdir(self.best_dir) else None,
            history=history, validation=self.last_validation,
        )
        return result

    def close(self) -> None:
        self.dist.close()


def _batches(loader, stopped_because):
    """The loader's batches; a ``DataError`` raised reading one becomes the run's stop reason."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except DataError as exc:
            raise stopped_because(exc) from None
        yield batch


def _worker_message(exc: DataError) -> str:
    """The error's own text: a DataLoader worker re-raises it wrapped in its traceback."""
    text = str(exc)
    marker = "DataError: "
    if "Original Traceback" in text and marker in text:
        return text[text.rindex(marker) + len(marker):].strip()
    return text


def _resume_info(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, "run.json")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError:
        raise CheckpointError(f"{run_dir}: not a training run folder (no run.json)") from None


def train(
    config: "str | os.PathLike[str] | Mapping[str, Any] | Config | None" = None,
    data_root: str | None = None,
    out_dir: str | None = None,
    val_root: str | None = None,
    overrides: "list[str] | Mapping[str, Any] | None" = None,
    resume: str | None = None,
) -> RunResult:
    """Train a model and return where it is and how well it scored.

    ``config``: a YAML path, a mapping (over the defaults of ``fmuia.config``) or a ``Config``;
    ``overrides``: ``["train.epochs=2", ...]`` or ``{"train.epochs": 2}``. ``resume``: a
    run folder to continue from its ``last`` checkpoint (its saved config and data roots
    are used unless given here)."""
    if resume:
        info = _resume_info(resume)
        config = config or os.path.join(resume, "config.yaml")
        data_root = data_root or info["data_root"]
        val_root = val_root or info.get("val_root")
        out_dir = resume
    if not data_root or not out_dir:
        raise ConfigError("train needs a data root and an output folder")
    resolved = load_config(config, overrides)
    trainer = Trainer(resolved, data_root, out_dir, val_root=val_root, resume=bool(resume))
    try:
        return trainer.fit()
    finally:
        trainer.close()
