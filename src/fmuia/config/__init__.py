"""The training configuration: one dataclass per section, ``Config`` holding them all.

``load_config(path_or_mapping, overrides)`` reads a YAML recipe over the defaults and
applies ``dotted.key=value`` overrides, once; the builders of a run then each receive
their own section (``config.model``, ``config.data``, ``config.optim``, ...). A config
naming a key that is not in the schema, or a value of another type than the key's
default, is a ``ConfigError`` naming the dotted key. A few sections are open mappings
whose keys are task ids, kinds or head types (``OPEN_SECTIONS``).
"""
from fmuia.config.loading import defaults, dump_config, load_config, parse_override, read_yaml, save_config
from fmuia.config.model import ModelConfig
from fmuia.config.sections import (
    OPEN_SECTIONS, AugmentConfig, Config, DataConfig, FinetuneConfig, LossConfig, LrMultipliers, OptimConfig, SamplerConfig,
    ScheduleConfig, TrainConfig, merge,
)

__all__ = [
    "AugmentConfig", "Config", "DataConfig", "FinetuneConfig", "LossConfig", "LrMultipliers", "ModelConfig", "OPEN_SECTIONS",
    "OptimConfig", "SamplerConfig", "ScheduleConfig", "TrainConfig", "defaults", "dump_config", "load_config",
    "merge", "parse_override", "read_yaml", "save_config",
]
