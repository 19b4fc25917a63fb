"""The training config as dataclasses: one per section, ``Config`` holding them all.

The dataclasses are the schema: every key a config may set is a field, and the field's
default is the key's default. A field typed ``X | None`` may be null; a field marked
open (``OPEN`` metadata) is a mapping whose keys are task ids, kinds or head types and
is not checked key by key. ``merge`` applies a plain mapping (a YAML file, overrides)
onto the defaults with these rules, naming the dotted key of any unknown key or wrong
type; ``Config.from_dict`` builds the sections from the result, whose own checks
(choices, ranges) run when each section is made.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from fmuia import kinds
from fmuia.io.images import EXIF_ORIENTATIONS
from fmuia.config.checks import (PRECISIONS, check_choice, check_positive_or_null, check_value, check_weights)
from fmuia.config.model import OPEN, ModelConfig
from fmuia.errors import ConfigError

__all__ = [
    "AugmentConfig", "Config", "DataConfig", "FinetuneConfig", "LossConfig", "LrMultipliers", "OptimConfig", "SamplerConfig",
    "ScheduleConfig", "TrainConfig", "OPEN_SECTIONS", "merge",
]


class Section:
    """Checks shared by the sections: each plain field against the type of its default,
    each open field is a mapping, then the section's own ``validate``."""

    path: ClassVar[str]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            where = _join(self.path, f.name)
            value = getattr(self, f.name)
            sub = _section_type(type(self), f.name)
            if sub is not None:
                if not isinstance(value, sub):
                    raise ConfigError(f"{where}: expected a {sub.__name__}, got {value!r}")
            elif f.metadata.get("open"):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{where}: expected a mapping, got {value!r}")
                setattr(self, f.name, dict(value))
            else:
                setattr(self, f.name, check_value(where, _default(f), value, _nullable(type(self), f.name)))
        self.validate()

    def validate(self) -> None:
        """Checks beyond types: choices and ranges."""

    def to_dict(self) -> dict[str, Any]:
        """The section as plain nested mappings, keys in schema order (what the YAML shows)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None):
        """The section from a mapping of some of its keys over the defaults."""
        return _build(cls, merge(cls().to_dict(), data or {}, _join(cls.path, "")))


@dataclass
class DataConfig(Section):
    path: ClassVar[str] = "data"

    val_fraction: float = 0.2  # stratified per task; ignored when a validation root is given
    num_workers: int | None = None  # None: fmuia.runtime.training_workers
    cache_dir: str | None = None  # resized uint8 images + labels as .npy per sample, built on first use
    tasks: list[str] | None = None  # train on these task ids only
    val_batch_size: int | None = None  # None: the training batch size
    # What training checks before its first step: header (sizes, modes and every row,
    # no pixel decoding), full (fmuia validate's pixel pass, mask values included) or
    # none (no check; a bad file then stops the run when it is read).
    check: str = "header"
    # How val_fraction is drawn: per_task (that fraction of each task, stratified) or
    # random (that fraction of all rows at once, the official code's split: a small task
    # may then get no validation sample, or few).
    val_split: str = "per_task"
    # A task id outside the task registry: warn (a warning naming the closest known id;
    # its rows form a new task, as fine-tuning on new tasks needs) or error (refused by
    # the data check, for data that should hold known tasks only).
    unknown_tasks: str = "warn"
    # An image's EXIF orientation tag (JPEG, PNG): apply (turn it upright, as the official
    # reader cv2.imread does; boxes and points are in pixels of the upright image) or
    # ignore (the stored pixels as they are). Predict with the same choice.
    exif_orientation: str = "apply"

    CHECKS: ClassVar[tuple[str, ...]] = ("header", "full", "none")
    VAL_SPLITS: ClassVar[tuple[str, ...]] = ("per_task", "random")
    UNKNOWN_TASKS: ClassVar[tuple[str, ...]] = ("warn", "error")

    def validate(self) -> None:
        check_positive_or_null("data.val_batch_size", self.val_batch_size)
        check_choice("data.check", self.check, self.CHECKS)
        check_choice("data.val_split", self.val_split, self.VAL_SPLITS)
        check_choice("data.unknown_tasks", self.unknown_tasks, self.UNKNOWN_TASKS)
        check_choice("data.exif_orientation", self.exif_orientation, EXIF_ORIENTATIONS)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction: expected a number in [0, 1), got {self.val_fraction}")


@dataclass
class AugmentConfig(Section):
    """Augmentation policies: ``default``, then per kind, then per task id, key by key."""

    path: ClassVar[str] = "augment"

    default: dict[str, float] = field(default_factory=lambda: {"brightness_contrast": 0.5}, metadata=OPEN)
    kinds: dict[str, dict[str, float]] = field(default_factory=dict, metadata=OPEN)
    tasks: dict[str, dict[str, float]] = field(default_factory=dict, metadata=OPEN)
    # true: each sample's augmentation is a function of (seed, epoch, sample), so runs
    # repeat exactly; false: albumentations draws from its own unseeded state, as the
    # official code does (two runs with one seed then differ).
    seeded: bool = True


@dataclass
class SamplerConfig(Section):
    path: ClassVar[str] = "sampler"
    MODES: ClassVar[tuple[str, ...]] = ("round_robin", "task_uniform", "mixed")
    WEIGHTINGS: ClassVar[tuple[str, ...]] = ("uniform", "proportional", "temperature")

    # round_robin: one task per batch, every task once per cycle (shuffled order);
    # task_uniform: one task per batch, task drawn i.i.d. (the reference recipe);
    # mixed: samples of any tasks in one batch.
    mode: str = "round_robin"
    # How often each task is drawn: uniform, proportional (to its size) or temperature.
    weighting: str = "uniform"
    temperature: float = 2.0
    batches_per_epoch: int | None = None  # None: training samples / batch size

    def validate(self) -> None:
        check_choice("sampler.mode", self.mode, self.MODES)
        check_choice("sampler.weighting", self.weighting, self.WEIGHTINGS)
        check_positive_or_null("sampler.batches_per_epoch", self.batches_per_epoch)
        if self.temperature <= 0:
            raise ConfigError("sampler.temperature: must be > 0")


def _unit_kind_weights() -> dict[str, float]:
    """Weight 1 for every registered kind, in registration order (the saved config lists them)."""
    return {kind.name: 1.0 for kind in kinds.all_kinds()}


@dataclass
class LossConfig(Section):
    path: ClassVar[str] = "loss"
    BALANCES: ClassVar[tuple[str, ...]] = ("fixed", "uncertainty")

    # fixed: each task's loss times its kind and task weights; uncertainty: times a
    # learned per-task weight exp(-s) plus s (homoscedastic uncertainty weighting), on
    # top of the fixed weights.
    balance: str = "fixed"
    kind_weights: dict[str, float] = field(default_factory=_unit_kind_weights, metadata=OPEN)
    task_weights: dict[str, float] = field(default_factory=dict, metadata=OPEN)
    params: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=OPEN)  # {"detection.grid": {"box_weight": 8.0}}

    def validate(self) -> None:
        check_choice("loss.balance", self.balance, self.BALANCES)
        check_weights("loss.kind_weights", self.kind_weights)
        check_weights("loss.task_weights", self.task_weights)
        for name, value in self.params.items():
            if not isinstance(value, Mapping):
                raise ConfigError(f"loss.params.{name}: expected a mapping of loss parameters, got {value!r}")


@dataclass
class LrMultipliers(Section):
    """A head's rate: ``tasks[task]``, else ``kinds[kind]``, else ``heads``; times ``optim.lr``."""

    path: ClassVar[str] = "optim.lr_multipliers"

    encoder: float = 1.0
    decoder: float = 10.0
    heads: float = 10.0
    kinds: dict[str, float] = field(default_factory=dict, metadata=OPEN)
    tasks: dict[str, float] = field(default_factory=dict, metadata=OPEN)

    def validate(self) -> None:
        check_weights("optim.lr_multipliers.kinds", self.kinds)
        check_weights("optim.lr_multipliers.tasks", self.tasks)
        for name in ("encoder", "decoder", "heads"):
            value = getattr(self, name)
            if value < 0:
                raise ConfigError(f"optim.lr_multipliers.{name}: must be >= 0, got {value}")


@dataclass
class OptimConfig(Section):
    path: ClassVar[str] = "optim"
    NAMES: ClassVar[tuple[str, ...]] = ("adamw", "adam", "sgd")

    name: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_multipliers: LrMultipliers = field(default_factory=LrMultipliers)
    # false: the decoder (FPN) is left out of the optimiser and keeps its random
    # initialisation, as in the official code, whose optimiser holds encoder and heads only.
    train_decoder: bool = True

    def validate(self) -> None:
        check_choice("optim.name", self.name, self.NAMES)
        if self.lr <= 0:
            raise ConfigError(f"optim.lr: must be > 0, got {self.lr}")
        betas = self.betas
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ConfigError(f"optim.betas: expected two numbers in [0, 1), got {betas!r}")


@dataclass
class ScheduleConfig(Section):
    path: ClassVar[str] = "schedule"
    NAMES: ClassVar[tuple[str, ...]] = ("cosine", "constant")
    INTERVALS: ClassVar[tuple[str, ...]] = ("step", "epoch")

    name: str = "cosine"  # cosine annealing, or constant
    min_lr: float = 1e-6
    warmup_steps: int = 0
    # step: the rate changes every optimiser step and reaches min_lr at the last one;
    # epoch: it changes once per epoch, T_max = the run's epochs (the official code's
    # CosineAnnealingLR stepped after each epoch: the last epoch stays above min_lr).
    interval: str = "step"

    def validate(self) -> None:
        check_choice("schedule.name", self.name, self.NAMES)
        check_choice("schedule.interval", self.interval, self.INTERVALS)
        if self.warmup_steps < 0:
            raise ConfigError(f"schedule.warmup_steps: must be >= 0, got {self.warmup_steps}")


@dataclass
class TrainConfig(Section):
    path: ClassVar[str] = "train"

    epochs: int = 50
    batch_size: int = 8
    max_steps: int | None = None  # stop early after this many optimiser steps (smoke runs)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (fp16: CUDA with a GradScaler)
    compile: bool = False
    grad_clip: float | None = 1.0
    ema_decay: float | None = None  # e.g. 0.999: validate and save an exponential moving average
    val_every: int = 1
    # The validation score that picks the best checkpoint: challenge (the challenge
    # score), balanced (each task's score rescaled so that a chance prediction scores 0
    # and a perfect one 1, then averaged over kinds) or official (the official code's
    # rule: the mean of the non-MAE metric columns; keypoints are ignored and
    # classification counts twice).
    select: str = "challenge"
    progress: bool = True
    log_dir: str | None = None  # TensorBoard folder (default RUN_DIR/tb when TensorBoard is installed)
    plot: bool = True

    SELECTIONS: ClassVar[tuple[str, ...]] = ("challenge", "balanced", "official")

    def validate(self) -> None:
        check_choice("train.precision", self.precision, PRECISIONS)
        check_choice("train.select", self.select, self.SELECTIONS)
        for name in ("batch_size", "val_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: must be at least 1, got {getattr(self, name)}")
        if self.epochs < 0:
            raise ConfigError(f"train.epochs: must be >= 0, got {self.epochs}")
        check_positive_or_null("train.max_steps", self.max_steps)
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay: expected a number in (0, 1) or null, got {self.ema_decay}")


@dataclass
class FinetuneConfig(Section):
    """Starting from trained weights (``fmuia finetune``), and what of them keeps learning."""

    path: ClassVar[str] = "finetune"

    # An fmuia checkpoint (a folder, or a .safetensors file with its .json sidecar) whose
    # encoder and FPN weights (and the heads of tasks it shares with the data) start the
    # run; the other heads start fresh. An encoder file goes to model.pretrained instead.
    init_from: str | None = None
    # none: everything learns; encoder: the encoder is frozen (weights and BatchNorm
    # statistics: linear probing when the heads are all that is left); stages:N: its
    # first N feature stages are (timm's feature levels, shallow first).
    freeze: str = "none"
    # Layer-wise learning-rate decay: encoder stage k of L learns at its rate times
    # layer_decay ** (L - 1 - k), so the shallow, generic stages move least. null: off.
    layer_decay: float | None = None

    def validate(self) -> None:
        freeze_stages(self.freeze)
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"finetune.layer_decay: expected a number in (0, 1] or null, got {self.layer_decay}")
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
class Config(Section):
    """The resolved training config. Build it with ``fmuia.config.load_config`` (a YAML
    file or mapping over the defaults, then overrides) or ``Config.from_dict``;
    ``to_dict()`` is the mapping saved as ``RUN_DIR/config.yaml``, and loading that gives
    an equal ``Config``."""

    path: ClassVar[str] = ""

    seed: int = 42
    device: str = "auto"  # auto: cuda when available, else cpu
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


# -- the schema, read from the dataclasses --------------------------------------------------

def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _hint(cls: type, name: str) -> Any:
    return _hints(cls)[name]


def _section_type(cls: type, name: str) -> type | None:
    hint = _hint(cls, name)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _nullable(cls: type, name: str) -> tuple[type, ...] | None:
    """The types an ``X | None`` field takes besides None (ints count as floats); None
    for a field that may not be null."""
    hint = _hint(cls, name)
    if not isinstance(hint, types.UnionType) or type(None) not in hint.__args__:
        return None
    (kind,) = [a for a in hint.__args__ if a is not type(None)]
    kind = typing.get_origin(kind) or kind
    return (int, float) if kind is float else (kind,)


def _schema(cls: type, prefix: str = "") -> tuple[list[str], dict[str, tuple[type, ...]]]:
    """(open paths, nullable paths with their types) of a section and those inside it."""
    open_paths: list[str] = []
    nullable: dict[str, tuple[type, ...]] = {}
    for f in dataclasses.fields(cls):
        path = _join(prefix, f.name)
        sub = _section_type(cls, f.name)
        if sub is not None:
            more_open, more_nullable = _schema(sub, path)
            open_paths += more_open
            nullable.update(more_nullable)
        elif f.metadata.get("open"):
            open_paths.append(path)
        elif (types_ := _nullable(cls, f.name)) is not None:
            nullable[path] = types_
    return open_paths, nullable


_OPEN, NULLABLE = _schema(Config)
# Open mappings: any key below these paths is accepted (task ids, kinds, head types).
OPEN_SECTIONS = tuple(_OPEN)


def _is_open(path: str) -> bool:
    return any(path == s or path.startswith(s + ".") for s in OPEN_SECTIONS)


def _build(cls: type, tree: Mapping[str, Any]) -> Any:
    """The dataclass ``cls`` from a complete, merged mapping of its keys."""
    values = {}
    for f in dataclasses.fields(cls):
        sub = _section_type(cls, f.name)
        values[f.name] = _build(sub, tree[f.name]) if sub is not None else tree[f.name]
    return cls(**values)


def build_section(cls: type, tree: Mapping[str, Any]) -> Any:
    """The section dataclass ``cls`` (``Config`` or another schema of ``Section``s, such as
    ``fmuia.config.pretrain.PretrainConfig``) from a complete, merged mapping."""
    return _build(cls, tree)


def build_config(tree: Mapping[str, Any]) -> Config:
    """The ``Config`` of a complete mapping (the defaults with ``merge`` applied)."""
    return _build(Config, tree)


def merge(base: "Mapping[str, Any] | Config", update: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``update`` merged into a copy of ``base`` (a mapping, or a ``Config`` taken as its
    ``to_dict()``) key by key; unknown keys and wrong types are ``ConfigError``s naming the
    dotted key."""
    if isinstance(base, Config):
        base = base.to_dict()
    if not isinstance(update, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {update!r}")
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        path = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(f"{path}: keys must be strings")
        if _is_open(path):
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = _merge_open(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
            continue
        if key not in out:
            known = ", ".join(sorted(out))
            raise ConfigError(f"unknown config key {path!r} (known at this level: {known})")
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected a mapping, got {value!r}")
            out[key] = merge(out[key], value, path + ".")
        else:
            out[key] = check_value(path, out[key], value, NULLABLE.get(path))
    return out


def _merge_open(base: dict, update: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge_open(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
