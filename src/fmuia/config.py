"""Training configuration: YAML files over defaults, dotted command-line overrides, checks.

A config is a nested mapping. ``DEFAULTS`` below is the complete schema: every key a
config may set, with its default value. A config file or an override naming a key
that is not in the schema is a ``ConfigError`` naming the key; a value whose type
differs from the default's is one too. A few sections are open mappings whose keys
are task ids, kinds or head types (``OPEN_SECTIONS``); the ``model`` section is
checked by ``fmuia.model.ModelConfig``.

Overrides are ``dotted.key=value`` strings, the value parsed as a YAML scalar
(``train.epochs=2``, ``train.lr=3e-4``, ``model.pretrained=none``, ``data.cache_dir=null``).
"""
from __future__ import annotations

import copy
import os
import re
from typing import Any, Iterable, Mapping

import yaml

from fmuia.errors import ConfigError
from fmuia.io.atomic import write_text

# Keys whose default is None take any of these types (None included).
_NULLABLE: dict[str, tuple[type, ...]] = {
    "data.cache_dir": (str,),
    "data.tasks": (list,),
    "data.num_workers": (int,),
    "data.val_batch_size": (int,),
    "sampler.batches_per_epoch": (int,),
    "train.grad_clip": (int, float),
    "train.ema_decay": (int, float),
    "train.max_steps": (int,),
    "train.log_dir": (str,),
}

# Open mappings: any key below these paths is accepted (task ids, kinds, head types).
OPEN_SECTIONS = (
    "model.routing",
    "model.heads",
    "augment.default",
    "augment.kinds",
    "augment.tasks",
    "loss.kind_weights",
    "loss.task_weights",
    "loss.params",
    "optim.lr_multipliers.kinds",
    "optim.lr_multipliers.tasks",
)


def _model_defaults() -> dict[str, Any]:
    from fmuia.model.config import ModelConfig

    return ModelConfig().to_dict()


DEFAULTS: dict[str, Any] = {
    "seed": 42,
    "device": "auto",  # auto: cuda when available, else cpu
    "model": {},  # filled from ModelConfig at load time
    "data": {
        "val_fraction": 0.2,  # stratified per task; ignored when a validation root is given
        "num_workers": None,  # None: GPU min(cores per process - 1, 8), CPU 0 (see fmuia.train.data)
        "cache_dir": None,  # resized uint8 images + labels as .npy per sample, built on first use
        "tasks": None,  # train on these task ids only
        "val_batch_size": None,  # None: the training batch size
    },
    "augment": {
        "default": {"brightness_contrast": 0.5},
        "kinds": {},
        "tasks": {},
    },
    "sampler": {
        # round_robin: one task per batch, every task once per cycle (shuffled order);
        # task_uniform: one task per batch, task drawn i.i.d. (the reference recipe);
        # mixed: samples of any tasks in one batch.
        "mode": "round_robin",
        # How often each task is drawn: uniform, proportional (to its size) or temperature.
        "weighting": "uniform",
        "temperature": 2.0,
        "batches_per_epoch": None,  # None: training samples / batch size
    },
    "loss": {
        "kind_weights": {"segmentation": 1.0, "classification": 1.0, "detection": 1.0, "keypoints": 1.0},
        "task_weights": {},
        "params": {},  # per head type: {"detection.grid": {"box_weight": 8.0}}
    },
    "optim": {
        "name": "adamw",
        "lr": 1e-4,
        "weight_decay": 0.01,
        "betas": [0.9, 0.999],
        "lr_multipliers": {"encoder": 1.0, "decoder": 10.0, "heads": 10.0, "kinds": {}, "tasks": {}},
    },
    "schedule": {
        "name": "cosine",  # cosine annealing per step, or constant
        "min_lr": 1e-6,
        "warmup_steps": 0,
    },
    "train": {
        "epochs": 50,
        "batch_size": 8,
        "max_steps": None,  # stop early after this many optimiser steps (smoke runs)
        "precision": "auto",  # auto | fp32 | bf16 | fp16 (fp16: CUDA with a GradScaler)
        "compile": False,
        "grad_clip": 1.0,
        "ema_decay": None,  # e.g. 0.999: validate and save an exponential moving average
        "val_every": 1,
        "progress": True,
        "log_dir": None,  # TensorBoard folder (default RUN_DIR/tb when TensorBoard is installed)
        "plot": True,
    },
}

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list", dict: "a mapping"}


def _full_defaults() -> dict[str, Any]:
    d = copy.deepcopy(DEFAULTS)
    d["model"] = _model_defaults()
    return d


def _is_open(path: str) -> bool:
    return any(path == s or path.startswith(s + ".") for s in OPEN_SECTIONS)


def _check_value(path: str, default: Any, value: Any) -> Any:
    """Check ``value`` against the default's type; ints are accepted for floats."""
    if value is None and (default is None or path in _NULLABLE):
        return None
    if default is None:
        allowed = _NULLABLE.get(path)
        if allowed is None:
            return value
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if not ok:
            names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in allowed)
            raise ConfigError(f"{path}: expected {names} or null, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # a YAML file's 3e-4 (no dot) is a string to YAML 1.1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if isinstance(default, (str, list)) and not isinstance(value, type(default)):
        raise ConfigError(f"{path}: expected {_TYPE_NAMES[type(default)]}, got {value!r}")
    return value


def merge(base: dict[str, Any], update: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``update`` merged into a copy of ``base`` key by key; unknown keys and wrong types
    are ``ConfigError``s naming the dotted key."""
    if not isinstance(update, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {update!r}")
    out = copy.deepcopy(base)
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
            out[key] = _check_value(path, out[key], value)
    return out


def _merge_open(base: dict, update: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge_open(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)`` with the value parsed as a YAML scalar."""
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted key, e.g. train.epochs=2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from None
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 3e-4 (no dot) as a string
    return key, value


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _nest(key: str, value: Any) -> dict[str, Any]:
    parts = key.split(".")
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


def read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level")
    return data


def load_config(
    source: "str | os.PathLike[str] | Mapping[str, Any] | None" = None,
    overrides: "Iterable[str] | Mapping[str, Any] | None" = None,
) -> dict[str, Any]:
    """The resolved config: defaults <- ``source`` (YAML path or mapping) <- ``overrides``.

    ``overrides`` is a list of ``"dotted.key=value"`` strings or a mapping of dotted keys
    to values. The result is checked (``validate``) and is a plain nested dict that
    round-trips through YAML."""
    config = _full_defaults()
    if source is not None:
        data = read_yaml(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else source
        where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "config"
        try:
            config = merge(config, data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides or ())
    for key, value in items:
        try:
            config = merge(config, _nest(key, value))
        except ConfigError as exc:
            raise ConfigError(f"override {key}={value!r}: {exc}") from None
    validate(config)
    return config


_CHOICES = {
    "sampler.mode": ("round_robin", "task_uniform", "mixed"),
    "sampler.weighting": ("uniform", "proportional", "temperature"),
    "optim.name": ("adamw", "adam", "sgd"),
    "schedule.name": ("cosine", "constant"),
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
}


def get(config: Mapping[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = value[part]
    return value


def validate(config: Mapping[str, Any]) -> None:
    """Checks beyond types: choices, ranges, and the model section."""
    from fmuia.model.config import ModelConfig

    for key, choices in _CHOICES.items():
        if get(config, key) not in choices:
            raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {get(config, key)!r}")
    for key in ("train.batch_size", "train.val_every"):
        if get(config, key) < 1:
            raise ConfigError(f"{key}: must be at least 1, got {get(config, key)}")
    for key in ("train.epochs", "schedule.warmup_steps"):
        if get(config, key) < 0:
            raise ConfigError(f"{key}: must be >= 0, got {get(config, key)}")
    for key in ("train.max_steps", "sampler.batches_per_epoch", "data.val_batch_size"):
        value = get(config, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key}: expected a positive integer or null, got {value!r}")
    if not 0.0 <= config["data"]["val_fraction"] < 1.0:
        raise ConfigError(f"data.val_fraction: expected a number in [0, 1), got {config['data']['val_fraction']}")
    if config["sampler"]["temperature"] <= 0:
        raise ConfigError("sampler.temperature: must be > 0")
    decay = config["train"]["ema_decay"]
    if decay is not None and not 0.0 < decay < 1.0:
        raise ConfigError(f"train.ema_decay: expected a number in (0, 1) or null, got {decay}")
    if config["optim"]["lr"] <= 0:
        raise ConfigError(f"optim.lr: must be > 0, got {config['optim']['lr']}")
    betas = config["optim"]["betas"]
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"optim.betas: expected two numbers in [0, 1), got {betas!r}")
    for section in ("loss.kind_weights", "loss.task_weights", "optim.lr_multipliers.kinds", "optim.lr_multipliers.tasks"):
        for name, value in get(config, section).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{section}.{name}: expected a number >= 0, got {value!r}")
    for name in ("encoder", "decoder", "heads"):
        value = config["optim"]["lr_multipliers"][name]
        if value < 0:
            raise ConfigError(f"optim.lr_multipliers.{name}: must be >= 0, got {value}")
    for name, value in config["loss"]["params"].items():
        if not isinstance(value, Mapping):
            raise ConfigError(f"loss.params.{name}: expected a mapping of loss parameters, got {value!r}")
    ModelConfig.from_dict(config["model"])


def dump_config(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(_plain(config), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_config(config: Mapping[str, Any], path: str) -> None:
    """Write the config as YAML, atomically."""
    write_text(path, dump_config(config))
