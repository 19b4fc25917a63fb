"""Training a multi-task model: the ``Trainer`` run of ``fmuia train`` and ``fmuia finetune``.

The loop itself (steps, precision, schedule, EMA, several processes, checkpoint state,
resume, stopping) is ``fmuia.train.loop``'s, shared with pretraining; this module gives it
the task batches and their loss, validation with the challenge's metrics and the choice
of the best checkpoint.

Reproducibility: as the loop's, plus: ``augment.seeded: false`` gives up the seeded
augmentation, which then draws from unseeded state as in the official code.

Several processes (torchrun): ranks usually hold batches of different tasks, so some
heads (and the FPN, for a classification batch) get no gradient on a rank in a step; DDP
runs with ``find_unused_parameters=True``, which marks them ready with a zero
contribution and leaves a head's gradient ``None`` when no rank used it, so the
optimiser skips it exactly as in a single process. (Adding ``0 * sum(unused parameters)``
to the loss would instead give every head a zero gradient each step, and AdamW would
then keep moving heads of absent tasks by momentum and weight decay: a different
optimisation from the single-process run.) The learned loss weights of ``loss.balance:
uncertainty`` live outside the wrapped model; their gradients are averaged over the
ranks before each optimiser step on the same terms (``Dist.average_gradients``), so
every rank keeps the same weights. Only rank 0 validates and writes files.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from safetensors.torch import load as load_safetensors

from fmuia.config import Config, load_config
from fmuia.errors import CheckpointError, ConfigError, DataError
from fmuia.model import build_model, save_checkpoint
from fmuia.model.checkpoint import checkpoint_paths, open_checkpoint
from fmuia.model.routing import group_indices
from fmuia.train.data import build_data, check_data, read_datasets
from fmuia.train.losses import TaskLoss
from fmuia.train.loop import NonFiniteLossError, TrainingLoop, epoch_seed
from fmuia.train.optim import build_optimizer
from fmuia.train.state import read_state
from fmuia.train.transfer import freeze, load_initial_weights
from fmuia.train.validation import Validation, run_validation

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "RunResult", "Trainer", "train"]


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
    select: str = "challenge"  # train.select: the rule that chose best_score


class Trainer(TrainingLoop):
    """A training run in ``run_dir``. ``fit()`` trains and returns a ``RunResult``.

    ``config``: a ``Config`` (``fmuia.config.load_config``), or a mapping read over the
    defaults."""

    def __init__(self, config: "Config | Mapping[str, Any]", data_root: str, run_dir: str, val_root: str | None = None,
                 resume: bool = False) -> None:
        config = config if isinstance(config, Config) else load_config(config)
        tcfg = config.train
        super().__init__(run_dir, tcfg, config.seed, config.device)
        self.config = config
        self.data_root, self.val_root = data_root, val_root
        self.best_dir = os.path.join(run_dir, "best")
        if self.dist.is_main and not resume and os.path.exists(checkpoint_paths(self.last_dir)[1]):
            raise ConfigError(f"{run_dir} already holds a training run; resume it (--resume) or choose another folder")
        self._check_data()

        self.seed_everything()
        datasets = read_datasets(config.data, data_root, val_root, seed=config.seed)
        self.registry = datasets.registry
        self.model = build_model(config.model, self.registry).to(self.device)
        # The model owns each task's input side; the loaders take it from there.
        self.data = build_data(config.data, config.sampler, config.augment, datasets, input_sizes=self.model.input_sizes,
                               batch_size=tcfg.batch_size, seed=config.seed, rank=self.dist.rank,
                               world_size=self.dist.world_size, local_world_size=self.dist.local_world_size,
                               device_type=self.device.type)
        self.initial_weights = None
        if config.finetune.init_from and not resume:  # a resumed run restores its own weights
            self.initial_weights = load_initial_weights(self.model, config.finetune.init_from)
        # Fine-tuning's frozen encoder part: no gradients, and kept in eval mode (BatchNorm).
        self.frozen = freeze(self.model, config.finetune)
        if self.model.config.channels_last:
            self.model.to(memory_format=torch.channels_last)

        self.loss = TaskLoss(self.registry, self.model.head_types, config.loss)
        # Also freezes what optim.train_decoder leaves untrained; before the DDP wrap below.
        optimizer = build_optimizer(self.model, config.optim, config.finetune)
        balance_group = self.loss.to(self.device).param_group(config.optim)
        if balance_group is not None:  # before the scheduler, which gives each group its rate curve
            optimizer.add_param_group(balance_group)
        self.averaged_parameters = list(self.loss.parameters())
        self.prepare(self.model, optimizer, config.schedule, len(self.data.sampler), ema_decay=tcfg.ema_decay,
                     find_unused_parameters=True, compile=bool(tcfg.compile))

        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.chance_scores = None  # the balanced rule's chance scores, from the first validation
        if resume:
            self._restore()
        self.open_run(config, {"data_root": os.path.abspath(data_root),
                               "val_root": os.path.abspath(val_root) if val_root else None}, tcfg.log_dir)

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

    # -- the loop's hooks ----------------------------------------------------------------
    def _set_epoch(self, epoch: int) -> None:
        self.data.sampler.set_epoch(epoch)
        self.data.generator.manual_seed(epoch_seed(self.seed, epoch, 0))

    def _loader(self):
        return self.data.train_loader

    def _batch_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, Mapping[str, torch.Tensor], str]:
        images = batch["image"].to(self.device, non_blocking=True)
        task_ids = batch["task_id"]
        groups = group_indices(task_ids)
        targets = {t: torch.stack([batch["target"][i] for i in rows]).to(self.device, non_blocking=True)
                   for t, rows in groups.items()}
        with self.autocast():
            outputs = self.forward_model(images, task_ids)
        loss, per_task = self.loss(outputs, targets)
        return loss, per_task, ",".join(groups)

    def _culprits(self, parts: Mapping[str, float]) -> str:
        return ", ".join(f"{t} ({self.registry[t].kind.value}) = {v}" for t, v in parts.items())

    def _validate(self) -> Validation | None:
        if self.data.val_loader is None or not self.dist.is_main:
            return None
        from tqdm import tqdm

        show = bool(self.config.train.progress)
        progress = (lambda it: tqdm(it, desc="validation", leave=False, dynamic_ncols=True)) if show else None
        loader = self._batches(self.data.val_loader, f"validation after epoch {self.epoch}")
        val = run_validation(self.eval_model(), loader, self.registry, self.device, self.autocast, progress,
                             select=self.config.train.select, chance=self.chance_scores)
        self.chance_scores = val.chance
        return val

    def _epoch_row(self, train_loss: float | None, val: Validation | None, seconds: float) -> dict[str, Any]:
        row = super()._epoch_row(train_loss, val, seconds)
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
            **self._loop_state(),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "select": self.config.train.select,  # the rule best_score was chosen by
            "sampler": self.data.sampler.state_dict(),
        }
        if self.loss.balance is not None:  # learned loss weights: not model weights, but needed to resume
            state["loss_balance"] = self.loss.balance.state()
        return state

    def _restore(self) -> None:
        files = open_checkpoint(self.last_dir, training_state=True)  # refuses a mixed or edited checkpoint
        state, meta = read_state(files), files.meta
        if int(meta.get("extra", {}).get("epoch", -1)) != int(state["epoch"]):
            raise CheckpointError(f"{self.last_dir}: weights (epoch {meta.get('extra', {}).get('epoch')}) and training "
                                  f"state (epoch {state['epoch']}) disagree; the run was interrupted while saving")
        self._restore_weights(load_safetensors(files.weights), state)
        if (self.loss.balance is None) != ("loss_balance" not in state):
            raise CheckpointError(f"{self.last_dir}: the run was trained with a different loss.balance than {self.config.loss.balance}")
        if self.loss.balance is not None:
            self.loss.balance.load(state["loss_balance"], self.last_dir)
        self.data.sampler.load_state_dict(state["sampler"])
        self._restore_loop_state(state)
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        if state.get("select", "challenge") != self.config.train.select:
            raise ConfigError(f"train.select: the run picked its best checkpoint by the {state.get('select', 'challenge')} "
                              f"score; resume it with that rule, not {self.config.train.select!r}")

    def _result(self, history: list[dict[str, Any]]) -> RunResult:
        best = self.dist.broadcast_object((self.best_score, self.best_epoch))
        return RunResult(
            run_dir=self.run_dir, best_score=best[0], best_epoch=best[1], epochs=self.epoch, steps=self.step,
            last_checkpoint=self.last_dir,
            best_checkpoint=self.best_dir if os.path.isdir(self.best_dir) else None,
            history=history, validation=self.last_validation, select=self.config.train.select,
        )


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
