"""The training config as dataclasses: one per section, ``Config`` holding them all.

The dataclasses are the schema (``fmuia.config.schema``): every key a config may set is a
field declared with its default, its help line and its rules, and the one validator
checks it, open mappings included, whenever a section is made.

The defaults are one shipped recipe, the baseline (configs/fmuia2026_baseline.yaml: the
official code with its defects fixed): a config that names no recipe trains it, and
configs/fmuia2026_official.yaml states each official value that differs (a test holds
the two equal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from fmuia.config.catalogue import augmentation_names, kind_names, loss_param_names, loss_params
from fmuia.config.model import ModelConfig
from fmuia.config.predict import PredictConfig, migrate_model_keys
from fmuia.config.schema import PRECISIONS, Names, Section, Spec, build, check, key, merge
from fmuia.errors import ConfigError

__all__ = [
    "AugmentConfig", "Config", "DataConfig", "FinetuneConfig", "LossConfig", "LrMultipliers", "OptimConfig", "SamplerConfig",
    "ScheduleConfig", "TrainConfig", "build_config", "freeze_stages", "merge",
]

KIND = Names("a kind", kind_names)
TASK = Names("a task id")
AUGMENTATION = Names("an augmentation", augmentation_names)


@dataclass
class DataConfig(Section):
    """How the data root is split and read."""

    path: ClassVar[str] = "data"

    val_fraction: float = key(0.2, "share of the rows held out for validation (ignored when a validation root is given)",
                              ge=0, lt=1)
    num_workers: int | None = key(None, "data-loading processes; null: fmuia.runtime.training_workers", ge=0)
    cache_dir: str | None = key(None, "folder of resized uint8 images + labels as .npy per sample, built on first use")
    tasks: list[str] | None = key(None, "train on these task ids only; null: every task of the data")
    val_batch_size: int | None = key(None, "validation batch size; null: the training batch size", ge=1)
    check: str = key("header", "what training checks before its first step: header (sizes, modes, every row), full "
                               "(fmuia validate's pixel pass) or none", choices=("header", "full", "none"))
    val_split: str = key("per_task", "how val_fraction is drawn: per_task (stratified within each task) or random (of all "
                                     "rows at once, the official code's split)", choices=("per_task", "random"))
    unknown_tasks: str = key("warn", "a task id outside the task registry: warn (naming the closest known id; its rows "
                                     "form a new task, as fine-tuning on new tasks needs) or error (refused by the data "
                                     "check)", choices=("warn", "error"))
    exif_orientation: str = key("apply", "an image's EXIF orientation tag (JPEG, PNG): apply (turn it upright, as the "
                                         "official reader cv2.imread does; boxes and points are in pixels of the upright "
                                         "image) or ignore (the stored pixels as they are); predict with the same choice",
                                choices=("apply", "ignore"))


@dataclass
class AugmentConfig(Section):
    """Augmentation policies: probabilities per augmentation, ``default`` then per kind then per task id, key by key."""

    path: ClassVar[str] = "augment"

    default: dict[str, float] = key({"brightness_contrast": 0.2, "noise": 0.1},
                                    "the policy of every task: augmentation -> probability",
                                    keys=(AUGMENTATION,), what="a probability", ge=0, le=1)
    kinds: dict[str, dict[str, float]] = key({}, "per kind, entries over the default policy", keys=(KIND, AUGMENTATION),
                                             what="a probability", ge=0, le=1)
    tasks: dict[str, dict[str, float]] = key({}, "per task id, entries over the kind's policy", keys=(TASK, AUGMENTATION),
                                             what="a probability", ge=0, le=1)
    seeded: bool = key(True, "each sample's augmentation follows from (seed, epoch, sample) so runs repeat; false: "
                             "albumentations' own unseeded state, as the official code")


@dataclass
class SamplerConfig(Section):
    """Which samples make up each training batch."""

    path: ClassVar[str] = "sampler"

    mode: str = key("round_robin", "round_robin (one task per batch, every task once per cycle), task_uniform (one task "
                                   "per batch, drawn i.i.d.) or mixed (any tasks in one batch)",
                    choices=("round_robin", "task_uniform", "mixed"))
    weighting: str = key("uniform", "how often each task is drawn: uniform, proportional (to its size) or temperature",
                         choices=("uniform", "proportional", "temperature"))
    temperature: float = key(2.0, "with weighting: temperature, draw tasks in proportion to size ** (1 / temperature)", gt=0)
    batches_per_epoch: int | None = key(None, "batches per epoch; null: training samples / batch size", ge=1)


def _check_loss_params(path: str, params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each head type's parameters: known names, each of the type and range of its default."""
    out = {}
    for name, values in params.items():
        known = loss_params(name) or {}
        out[name] = {}
        for p, value in values.items():
            where = f"{path}.{name}.{p}"
            if p not in known:
                raise ConfigError(f"{where}: unknown parameter (known: {', '.join(known) or 'none'})")
            param = known[p]
            rules = Spec(help=param.help, ge=param.ge, gt=param.gt, le=param.le, lt=param.lt)
            out[name][p] = check(where, type(param.default), rules, value)
    return out


@dataclass
class LossConfig(Section):
    """How the tasks' losses are weighted and parametrised."""

    path: ClassVar[str] = "loss"

    balance: str = key("fixed", "fixed (each task's loss times its kind and task weights) or uncertainty (also times a "
                                "learned per-task weight exp(-s), plus s)", choices=("fixed", "uncertainty"))
    kind_weights: dict[str, float] = key(lambda: {k: 1.0 for k in kind_names()}, "loss weight per kind", keys=(KIND,), ge=0)
    task_weights: dict[str, float] = key({}, "loss weight per task id (times its kind's)", keys=(TASK,), ge=0)
    params: dict[str, dict[str, Any]] = key({"detection.grid": {"box_weight": 8.0, "negatives": True, "positive_share": 0.5}},
                                            "loss parameters per '<kind>.<head type>', e.g. {detection.grid: "
                                                "{box_weight: 8.0}}; see the table of loss parameters",
                                            keys=(Names("a kind.head type", loss_param_names),), check=_check_loss_params)


@dataclass
class LrMultipliers(Section):
    """Learning-rate multipliers on optim.lr: a head's is tasks[task], else kinds[kind], else heads."""

    path: ClassVar[str] = "optim.lr_multipliers"

    encoder: float = key(1.0, "the encoder's multiplier", ge=0)
    decoder: float = key(10.0, "the FPN decoder's multiplier", ge=0)
    heads: float = key(10.0, "every head's multiplier unless kinds or tasks name it", ge=0)
    kinds: dict[str, float] = key({}, "multiplier of the heads of a kind", keys=(KIND,), ge=0)
    tasks: dict[str, float] = key({}, "multiplier of one task's head", keys=(TASK,), ge=0)


@dataclass
class OptimConfig(Section):
    """The optimiser."""

    path: ClassVar[str] = "optim"

    name: str = key("adamw", "adamw, adam or sgd", choices=("adamw", "adam", "sgd"))
    lr: float = key(1e-4, "base learning rate (the encoder's; see lr_multipliers)", gt=0)
    weight_decay: float = key(0.01, "weight decay", ge=0)
    betas: list[float] = key([0.9, 0.999], "Adam betas (sgd: betas[0] is the momentum)")
    lr_multipliers: LrMultipliers = key(LrMultipliers, "learning-rate multipliers per part")
    train_decoder: bool = key(True, "false: the FPN decoder is left out of the optimiser and keeps its random "
                                    "initialisation, as in the official code")

    def validate(self) -> None:
        betas = self.betas
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ConfigError(f"optim.betas: expected two numbers in [0, 1), got {betas!r}")


@dataclass
class ScheduleConfig(Section):
    """The learning-rate schedule."""

    path: ClassVar[str] = "schedule"

    name: str = key("cosine", "cosine annealing to min_lr, or constant", choices=("cosine", "constant"))
    min_lr: float = key(1e-6, "the rate cosine annealing ends at", ge=0)
    warmup_steps: int = key(0, "optimiser steps of linear warm-up from 0", ge=0)
    interval: str = key("epoch", "step (the rate changes every optimiser step) or epoch (once per epoch, as the official "
                                "code's CosineAnnealingLR)", choices=("step", "epoch"))


@dataclass
class TrainConfig(Section):
    """The training run: length, batch, precision, checkpoint selection, logging."""

    path: ClassVar[str] = "train"

    epochs: int = key(50, "passes over the training samples", ge=0)
    batch_size: int = key(8, "samples per optimiser step", ge=1)
    max_steps: int | None = key(None, "stop after this many optimiser steps (smoke runs); null: no limit", ge=1)
    precision: str = key("auto", "auto (bf16 on GPUs, fp32 on CPUs), fp32, bf16 or fp16 (CUDA, with a GradScaler)",
                         choices=PRECISIONS)
    compile: bool = key(False, "torch.compile the network")
    grad_clip: float | None = key(None, "clip the gradients' global norm to this; null: no clipping", gt=0)
    ema_decay: float | None = key(None, "e.g. 0.999: validate and save an exponential moving average of the weights",
                                  gt=0, lt=1)
    val_every: int = key(1, "validate every N epochs", ge=1)
    select: str = key("balanced", "the validation score that picks the best checkpoint: challenge, balanced (each task "
                                   "rescaled from chance 0 to perfect 1) or official (the official code's mean of the "
                                   "non-MAE metric columns)", choices=("challenge", "balanced", "official"))
    progress: bool = key(True, "show a progress bar")
    log_dir: str | None = key(None, "TensorBoard folder; null: RUN_DIR/tb when TensorBoard is installed")
    plot: bool = key(True, "write RUN_DIR/curves.png after each epoch")


def _check_freeze(path: str, spec: str) -> str:
    freeze_stages(spec)
    return spec


@dataclass
class FinetuneConfig(Section):
    """Starting from trained weights (``fmuia finetune``), and what of them keeps learning."""

    path: ClassVar[str] = "finetune"

    init_from: str | None = key(None, "an fmuia checkpoint whose encoder, FPN and shared heads start the run (an encoder "
                                      "file goes to model.pretrained instead)")
    freeze: str = key("none", "none, encoder (frozen weights and BatchNorm statistics) or stages:N (its first N feature "
                              "stages)", check=_check_freeze)
    layer_decay: float | None = key(None, "encoder stage k of L learns at its rate times layer_decay ** (L - 1 - k); "
                                          "null: off", gt=0, le=1)

    def validate(self) -> None:
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError("finetune.init_from: expected a checkpoint path or null, got an empty string")


def freeze_stages(spec: str) -> int | None:
    """The number of encoder stages ``finetune.freeze`` freezes: 0 for ``none``, None for
    the whole ``encoder``, N for ``stages:N``; ``ConfigError`` for anything else."""
    if spec == "none":
        return 0
    if spec == "encoder":
        return None
    head, _, count = spec.partition(":")
    if head == "stages" and count.isdigit() and int(count) >= 1:
        return int(count)
    raise ConfigError(f"finetune.freeze: expected none, encoder or stages:N (N >= 1), got {spec!r}")


@dataclass
class RunConfig(Section):
    """What every run's config starts with (training's and pretraining's)."""

    path: ClassVar[str] = ""

    seed: int = key(42, "the run's random seed (initialisation, validation split, sampling, augmentation)")
    device: str = key("auto", "auto (cuda when available, else cpu), or a torch device such as cpu or cuda")


@dataclass
class Config(RunConfig):
    """The resolved training config.

    Build it with ``fmuia.config.load_config`` (YAML files or mappings over the defaults,
    then overrides) or ``Config.from_dict``; ``to_dict()`` is the mapping saved as
    ``RUN_DIR/config.yaml``, and loading that gives an equal ``Config``."""

    model: ModelConfig = key(ModelConfig, "the network")
    data: DataConfig = key(DataConfig, "the data")
    augment: AugmentConfig = key(AugmentConfig, "augmentation")
    sampler: SamplerConfig = key(SamplerConfig, "batches")
    loss: LossConfig = key(LossConfig, "losses")
    optim: OptimConfig = key(OptimConfig, "optimiser")
    schedule: ScheduleConfig = key(ScheduleConfig, "schedule")
    train: TrainConfig = key(TrainConfig, "the run")
    finetune: FinetuneConfig = key(FinetuneConfig, "fine-tuning")
    predict: PredictConfig = key(PredictConfig, "prediction")

    @staticmethod
    def migrate(data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        """``model.tta``/``model.box_voting`` of older configs moved to ``predict:``; loss
        names split by a dotted override (``loss.params.detection.grid.box_weight=4``) joined."""
        return _join_loss_names(migrate_model_keys(data, where))


def _join_loss_names(data: Mapping[str, Any]) -> Mapping[str, Any]:
    loss = data.get("loss")
    params = loss.get("params") if isinstance(loss, Mapping) else None
    if not isinstance(params, Mapping):
        return data
    joined: dict[str, Any] = {}
    for name, value in params.items():
        if name in kind_names() and isinstance(value, Mapping):
            joined.update({f"{name}.{head}": part for head, part in value.items()})
        else:
            joined[name] = value
    return {**data, "loss": {**loss, "params": joined}}


def build_config(tree: Any) -> Config:
    """The ``Config`` of a complete mapping (the defaults with ``merge`` applied)."""
    return build(Config, tree)

