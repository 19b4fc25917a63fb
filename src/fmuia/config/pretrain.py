"""The pretraining config (``fmuia pretrain``): self-supervised training of the shared
encoder alone, on unlabelled images.

Same rules and the same names as the training ``Config``: the network is ``model:``
(``model.encoder``, ``model.pretrained``, ``model.image_size``, ``model.channels_last``,
each with training's help and rules), the schedule has training's keys (its cosine moving
every step); a
YAML file and ``dotted.key=value`` overrides are merged over the defaults
(``load_pretrain_config``). Files written before the ``model:`` section named it
``encoder:`` (``encoder.name`` for ``model.encoder``); they still load, with a note."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from fmuia.config.loading import ConfigSource, merge_layers
from fmuia.config.model import ENCODER_KEYS
from fmuia.config.schema import PRECISIONS, Section, key, spec_of
from fmuia.config.sections import RunConfig, ScheduleConfig
from fmuia.errors import ConfigError

__all__ = ["PretrainConfig", "load_pretrain_config"]

log = logging.getLogger(__name__)

# The encoder: section of older pretraining configs -> the model: keys of today.
OLD_ENCODER_KEYS = {"name": "encoder", "pretrained": "pretrained", "image_size": "image_size", "channels_last": "channels_last"}


@dataclass
class PretrainModelSection(Section):
    """The encoder to pretrain, named as training names it; ``fmuia train`` then uses the same ``model.encoder``."""

    path: ClassVar[str] = "model"

    encoder: str = key("tf_efficientnet_lite0", **ENCODER_KEYS["encoder"])
    pretrained: str = key("none", **ENCODER_KEYS["pretrained"])
    image_size: int = key(224, **{**ENCODER_KEYS["image_size"], "help": "side of each view, pixels"})
    channels_last: bool = key(False, **ENCODER_KEYS["channels_last"])


@dataclass
class MethodSection(Section):
    """The self-supervised objective. SimCLR: two views of each image, a projection MLP,
    the NT-Xent (normalised temperature-scaled cross-entropy) loss."""

    path: ClassVar[str] = "method"

    name: str = key("simclr", "the method: simclr", choices=("simclr",))
    projection_dim: int = key(128, "width of the projection's output", ge=1)
    hidden_dim: int = key(512, "width of the projection MLP's hidden layer", ge=1)
    temperature: float = key(0.2, "NT-Xent temperature", gt=0)


PROBABILITY = dict(what="a probability", ge=0, le=1)


@dataclass
class ViewsSection(Section):
    """How each view of an image is drawn: a random resized crop, then the ultrasound
    photometric augmentations of ``fmuia.data`` (probabilities; 0 leaves one out). No
    colour jitter: the images are grey. No flip unless ``hflip`` allows it (probe
    orientation carries meaning in many ultrasound views)."""

    path: ClassVar[str] = "views"

    crop_scale: list[float] = key([0.3, 1.0], "area fraction of the crop, [low, high]")
    crop_ratio: list[float] = key([0.75, 1.333], "aspect ratio of the crop, [low, high]")
    hflip: float = key(0.0, "probability of a horizontal flip", **PROBABILITY)
    brightness_contrast: float = key(0.8, "probability of RandomBrightnessContrast", **PROBABILITY)
    gamma: float = key(0.5, "probability of RandomGamma (the log-compression curve)", **PROBABILITY)
    blur: float = key(0.3, "probability of GaussianBlur (lateral/axial resolution)", **PROBABILITY)
    noise: float = key(0.0, "probability of GaussNoise (additive grain)", **PROBABILITY)
    speckle: float = key(0.5, "probability of multiplicative per-pixel noise", **PROBABILITY)
    gain: float = key(0.5, "probability of a global multiplicative gain", **PROBABILITY)

    PHOTOMETRIC: ClassVar[tuple[str, ...]] = ("brightness_contrast", "gamma", "blur", "noise", "speckle", "gain")

    def validate(self) -> None:
        for name in ("crop_scale", "crop_ratio"):
            value = getattr(self, name)
            if len(value) != 2 or not all(v > 0 for v in value) or value[0] > value[1]:
                raise ConfigError(f"views.{name}: expected two positive numbers [low, high], got {value!r}")
        if self.crop_scale[1] > 1:
            raise ConfigError(f"views.crop_scale: the area fraction cannot exceed 1, got {self.crop_scale!r}")

    def photometric_policy(self) -> dict[str, float]:
        """The photometric entries as an augmentation policy of ``fmuia.data.transforms``."""
        return {name: float(getattr(self, name)) for name in self.PHOTOMETRIC}


@dataclass
class PretrainDataSection(Section):
    """How the images are read."""

    path: ClassVar[str] = "data"

    num_workers: int | None = key(None, "data-loading processes; null: fmuia.runtime.training_workers", ge=0)
    min_images: int = key(2, "fewer images than this is an error (a contrastive batch needs two)", ge=2)
    dicom_range: str = key("declared", "a grayscale DICOM frame without a window: declared (its declared value range "
                                       "onto 0..255, docs/format.md 'DICOM') or windowed from its data: minmax or "
                                       "percentile (0.5th..99.5th), for files whose data fills a small part of the "
                                       "declared range", choices=("declared", "minmax", "percentile"))


@dataclass
class PretrainOptimSection(Section):
    """The optimiser."""

    path: ClassVar[str] = "optim"

    name: str = key("adamw", "adamw or sgd", choices=("adamw", "sgd"))
    lr: float = key(1e-3, "learning rate", gt=0)
    weight_decay: float = key(1e-4, "weight decay", ge=0)


@dataclass
class PretrainTrainSection(Section):
    """The pretraining run: length, batch, precision."""

    path: ClassVar[str] = "train"

    epochs: int = key(100, "passes over the images", ge=1)
    batch_size: int = key(64, "images per step (each gives two views)", ge=2,
                          why="the other images of a batch are the negatives")
    max_steps: int | None = key(None, "stop after this many optimiser steps (smoke runs); null: no limit", ge=1)
    precision: str = key("auto", "auto (bf16 on GPUs, fp32 on CPUs), fp32, bf16 or fp16", choices=PRECISIONS)
    grad_clip: float | None = key(None, "clip the gradients' global norm to this; null: no clipping", gt=0)
    progress: bool = key(True, "show a progress bar")
    plot: bool = key(True, "write RUN/curves.png after each epoch")


@dataclass
class PretrainScheduleSection(ScheduleConfig):
    """The learning-rate schedule: training's keys, the cosine moving every step."""

    # training's default, epoch, is the official recipe's; pretraining has no such recipe to follow
    interval: str = key("step", spec_of(ScheduleConfig.__dataclass_fields__["interval"]).help,
                        choices=ScheduleConfig.choices("interval"))


@dataclass
class PretrainConfig(RunConfig):
    """The resolved pretraining config, saved as ``RUN/config.yaml``."""

    model: PretrainModelSection = key(PretrainModelSection, "the encoder")
    method: MethodSection = key(MethodSection, "the objective")
    views: ViewsSection = key(ViewsSection, "the views")
    data: PretrainDataSection = key(PretrainDataSection, "the images")
    optim: PretrainOptimSection = key(PretrainOptimSection, "optimiser")
    schedule: PretrainScheduleSection = key(PretrainScheduleSection, "schedule")
    train: PretrainTrainSection = key(PretrainTrainSection, "the run")

    @staticmethod
    def migrate(data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        """An ``encoder:`` section of older pretraining configs moved to ``model:`` with training's names."""
        old = data.get("encoder")
        if not isinstance(old, Mapping):
            return data
        unknown = [k for k in old if k not in OLD_ENCODER_KEYS]
        if unknown:
            raise ConfigError(f"unknown config key 'encoder.{unknown[0]}' (the encoder: section is now model:, "
                              f"with keys {', '.join(OLD_ENCODER_KEYS.values())})")
        model = data.get("model", {})
        moved = {OLD_ENCODER_KEYS[k]: v for k, v in old.items()}
        log.warning("%s: the encoder: section is now model: with training's names (%s); read as such "
                    "(rename it to silence this note)", where,
                    ", ".join(f"encoder.{k} -> model.{v}" for k, v in OLD_ENCODER_KEYS.items() if k in old))
        return {**{k: v for k, v in data.items() if k != "encoder"},
                "model": {**moved, **(model if isinstance(model, Mapping) else {})}}


def load_pretrain_config(
    source: "ConfigSource | Sequence[ConfigSource] | None" = None,
    overrides: "Iterable[str] | Mapping[str, Any] | None" = None,
) -> PretrainConfig:
    """Defaults <- ``source`` (YAML files or mappings, in order) <- ``overrides``, as
    ``fmuia.config.load_config`` does for training."""
    return merge_layers(PretrainConfig, source, overrides)
