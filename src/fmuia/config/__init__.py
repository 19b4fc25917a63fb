"""The training configuration: one dataclass per section, ``Config`` holding them all.

``load_config(path_or_mapping, overrides)`` reads a YAML recipe over the defaults and
applies ``dotted.key=value`` overrides, once; the builders of a run then each receive
their own section (``config.model``, ``config.data``, ``config.optim``, ...). Every key
has a help line and rules (``fmuia.config.schema``), checked when a config is loaded,
open mappings (keyed by task ids, kinds or head types) included; a failure is a
``ConfigError`` naming the file or override and the dotted key. Importing this package
needs neither torch nor OpenCV.
"""
from fmuia.config.loading import defaults, dump_config, load_config, parse_override, read_yaml, save_config
from fmuia.config.model import ModelConfig
from fmuia.config.predict import PredictConfig
from fmuia.config.schema import merge
from fmuia.config.sections import (
    AugmentConfig, Config, DataConfig, FinetuneConfig, LossConfig, LrMultipliers, OptimConfig, SamplerConfig, ScheduleConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig", "Config", "DataConfig", "FinetuneConfig", "LossConfig", "LrMultipliers", "ModelConfig", "OptimConfig",
    "PredictConfig", "SamplerConfig", "ScheduleConfig", "TrainConfig", "defaults", "dump_config", "load_config", "merge",
    "parse_override", "read_yaml", "save_config",
]
