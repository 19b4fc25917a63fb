"""The pretraining config (``fmuia pretrain``): self-supervised training of the shared
encoder alone, on unlabelled images.

Same rules as the training ``Config``: the dataclasses are the schema, a YAML file and
``dotted.key=value`` overrides are merged over the defaults (``load_pretrain_config``),
and an unknown key or a value of the wrong type is a ``ConfigError`` naming the dotted key.
The learning-rate schedule is the training one (``ScheduleConfig``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from fmuia.config.checks import PRECISIONS, check_choice, check_positive_or_null
from fmuia.config.loading import ConfigSource, merge_layers
from fmuia.config.sections import ScheduleConfig, Section, build_section
from fmuia.errors import ConfigError
from fmuia.io.dicom import DICOM_RANGES

__all__ = ["PretrainConfig", "load_pretrain_config"]


@dataclass
class EncoderSection(Section):
    """The encoder to pretrain; ``fmuia train`` then uses the same ``model.encoder``."""

    path: ClassVar[str] = "encoder"

    name: str = "tf_efficientnet_lite0"  # a timm model name (model.encoder of the later training)
    # Where its weights start: none, imagenet, a -package source or a weights file
    # (model.pretrained's values); pretraining from ImageNet weights adapts them to ultrasound.
    pretrained: str = "none"
    image_size: int = 224  # the side of each view
    channels_last: bool = False

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("encoder.name: expected a timm model name")
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError(f"encoder.image_size: must be a positive multiple of 32, got {self.image_size}")


@dataclass
class MethodSection(Section):
    """The self-supervised objective. SimCLR: two views of each image, a projection MLP,
    the NT-Xent (normalised temperature-scaled cross-entropy) loss."""

    path: ClassVar[str] = "method"
    NAMES: ClassVar[tuple[str, ...]] = ("simclr",)

    name: str = "simclr"
    projection_dim: int = 128
    hidden_dim: int = 512
    temperature: float = 0.2

    def validate(self) -> None:
        check_choice("method.name", self.name, self.NAMES)
        for key in ("projection_dim", "hidden_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"method.{key}: must be at least 1, got {getattr(self, key)}")
        if self.temperature <= 0:
            raise ConfigError(f"method.temperature: must be > 0, got {self.temperature}")


@dataclass
class ViewsSection(Section):
    """How each view of an image is drawn: a random resized crop, then the ultrasound
    photometric augmentations of ``fmuia.data`` (probabilities; 0 leaves one out). No
    colour jitter: the images are grey. No flip unless ``hflip`` allows it (probe
    orientation carries meaning in many ultrasound views)."""

    path: ClassVar[str] = "views"

    crop_scale: list[float] = field(default_factory=lambda: [0.3, 1.0])  # area fraction of the crop
    crop_ratio: list[float] = field(default_factory=lambda: [0.75, 1.333])  # aspect ratio of the crop
    hflip: float = 0.0
    brightness_contrast: float = 0.8
    gamma: float = 0.5
    blur: float = 0.3
    noise: float = 0.0
    speckle: float = 0.5
    gain: float = 0.5

    PHOTOMETRIC: ClassVar[tuple[str, ...]] = ("brightness_contrast", "gamma", "blur", "noise", "speckle", "gain")

    def validate(self) -> None:
        for key in ("crop_scale", "crop_ratio"):
            value = getattr(self, key)
            if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value) \
                    or value[0] > value[1]:
                raise ConfigError(f"views.{key}: expected two positive numbers [low, high], got {value!r}")
        if self.crop_scale[1] > 1:
            raise ConfigError(f"views.crop_scale: the area fraction cannot exceed 1, got {self.crop_scale!r}")
        for key in ("hflip", *self.PHOTOMETRIC):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"views.{key}: expected a probability in [0, 1], got {getattr(self, key)}")

    def photometric_policy(self) -> dict[str, float]:
        """The photometric entries as an augmentation policy of ``fmuia.data.transforms``."""
        return {key: float(getattr(self, key)) for key in self.PHOTOMETRIC}


@dataclass
class PretrainDataSection(Section):
    path: ClassVar[str] = "data"

    num_workers: int | None = None  # None: fmuia.runtime.training_workers
    min_images: int = 2  # fewer images than this is an error (a contrastive batch needs two)
    # A grayscale DICOM frame without a window: declared (its declared value range onto
    # 0..255, docs/format.md "DICOM"), or windowed from its data: minmax or percentile
    # (0.5th..99.5th), for files whose data fills a small part of the declared range.
    dicom_range: str = "declared"

    def validate(self) -> None:
        check_choice("data.dicom_range", self.dicom_range, DICOM_RANGES)
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"data.num_workers: must be >= 0, got {self.num_workers}")
        if self.min_images < 2:
            raise ConfigError(f"data.min_images: must be at least 2, got {self.min_images}")


@dataclass
class PretrainOptimSection(Section):
    path: ClassVar[str] = "optim"
    NAMES: ClassVar[tuple[str, ...]] = ("adamw", "sgd")

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def validate(self) -> None:
        check_choice("optim.name", self.name, self.NAMES)
        if self.lr <= 0:
            raise ConfigError(f"optim.lr: must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay: must be >= 0, got {self.weight_decay}")


@dataclass
class PretrainTrainSection(Section):
    path: ClassVar[str] = "train"

    epochs: int = 100
    batch_size: int = 64  # images per step (each gives two views)
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    grad_clip: float | None = None
    progress: bool = True
    plot: bool = True

    def validate(self) -> None:
        check_choice("train.precision", self.precision, PRECISIONS)
        if self.batch_size < 2:
            raise ConfigError(f"train.batch_size: must be at least 2 (the other images of a batch are the negatives), "
                              f"got {self.batch_size}")
        if self.epochs < 1:
            raise ConfigError(f"train.epochs: must be at least 1, got {self.epochs}")
        check_positive_or_null("train.max_steps", self.max_steps)


@dataclass
class PretrainConfig(Section):
    """The resolved pretraining config, saved as ``RUN/config.yaml``."""

    path: ClassVar[str] = ""

    seed: int = 42
    device: str = "auto"
    encoder: EncoderSection = field(default_factory=EncoderSection)
    method: MethodSection = field(default_factory=MethodSection)
    views: ViewsSection = field(default_factory=ViewsSection)
    data: PretrainDataSection = field(default_factory=PretrainDataSection)
    optim: PretrainOptimSection = field(default_factory=PretrainOptimSection)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: PretrainTrainSection = field(default_factory=PretrainTrainSection)


def load_pretrain_config(
    source: "ConfigSource | Sequence[ConfigSource] | None" = None,
    overrides: "Iterable[str] | Mapping[str, Any] | None" = None,
) -> PretrainConfig:
    """Defaults <- ``source`` (YAML files or mappings, in order) <- ``overrides``, as
    ``fmuia.config.load_config`` does for training."""
    return build_section(PretrainConfig, merge_layers(PretrainConfig().to_dict(), source, overrides))
