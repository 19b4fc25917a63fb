"""The shared encoder: any timm model as a multi-scale feature extractor.

CNNs (EfficientNet, ResNet, ConvNeXt, ...) come from timm with ``features_only=True``.
A plain ViT (DeiT, DINOv2-style) yields single-scale tokens; a simple feature pyramid
(as in ViTDet) turns its last token map into strides 4, 8, 16 and 32 so that the FPN and
every head see the same interface whatever the encoder.
"""
from __future__ import annotations

import logging
from typing import Iterator

import timm
import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from fmuia.errors import ConfigError
from fmuia.imagenet import IMAGENET_MEAN, IMAGENET_STD
import fmuia.model.pretrained as weights
from fmuia.model.pretrained import LoadReport

log = logging.getLogger(__name__)

PYRAMID_REDUCTIONS = (4, 8, 16, 32)


class FeatureInfo:
    """Channels and reduction (stride) of each feature level, like timm's ``FeatureInfo``."""

    def __init__(self, channels: list[int], reductions: list[int]) -> None:
        self._levels = [{"num_chs": int(c), "reduction": int(r)} for c, r in zip(channels, reductions)]

    def channels(self) -> list[int]:
        return [lv["num_chs"] for lv in self._levels]

    def reduction(self) -> list[int]:
        return [lv["reduction"] for lv in self._levels]

    def __len__(self) -> int:
        return len(self._levels)

    def __getitem__(self, index: int) -> dict[str, int]:
        return dict(self._levels[index])

    def __iter__(self) -> Iterator[dict[str, int]]:
        return (dict(lv) for lv in self._levels)

    def __repr__(self) -> str:
        return f"FeatureInfo(channels={self.channels()}, reduction={self.reduction()})"


class SimpleFeaturePyramid(nn.Module):
    """ViTDet-style pyramid from one stride-16 map: two / one transposed convs up to
    strides 4 / 8, identity at 16, max-pool to 32."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half, quarter = max(dim // 2, 1), max(dim // 4, 1)
        self.to_s4 = nn.Sequential(
            nn.ConvTranspose2d(dim, half, 2, stride=2), LayerNorm2d(half), nn.GELU(),
            nn.ConvTranspose2d(half, quarter, 2, stride=2),
        )
        self.to_s8 = nn.ConvTranspose2d(dim, half, 2, stride=2)
        self.to_s32 = nn.MaxPool2d(2, stride=2)
        self.channels = [quarter, half, dim, dim]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.to_s4(x), self.to_s8(x), x, self.to_s32(x)]


class Encoder(nn.Module):
    """A timm backbone returning a list of feature maps (shallow to deep).

    Input: images normalised with ImageNet mean/std. When the backbone was trained with
    another normalisation (e.g. 0.5/0.5 for the TF EfficientNet-Lite weights), a fixed
    per-channel affine maps the input to it, so the input contract never changes.
    """

    def __init__(self, name: str, image_size: int, pretrained: str = weights.NONE) -> None:
        super().__init__()
        self.name = name
        self.model = _create(name, image_size, pretrained == weights.IMAGENET)
        self.load_report: LoadReport | None = None
        if pretrained not in (weights.IMAGENET, weights.NONE):
            self.load_report = self._load_local(pretrained)
        info = self.model.feature_info
        channels, reductions = list(info.channels()), list(info.reduction())
        self.pyramid: SimpleFeaturePyramid | None = None
        self.token_reduction = 0
        if len(set(reductions)) == 1:  # single-scale tokens: build the pyramid from the last map
            self.token_reduction = reductions[-1]
            self.pyramid = SimpleFeaturePyramid(channels[-1])
            channels, reductions = self.pyramid.channels, list(PYRAMID_REDUCTIONS)
        self.feature_info = FeatureInfo(channels, reductions)
        self._set_input_adapter()

    def _load_local(self, pretrained: str) -> LoadReport:
        package = weights.package_weights(pretrained)
        path = weights.package_file(package, self.name) if package else pretrained
        report = weights.load_into(self.model, weights.read_state_dict(path), str(path))
        if not report.loaded:
            raise ConfigError(f"model.pretrained: no tensor of {path} fits encoder {self.name}: {report.summary()}")
        log.info("encoder weights %s", report.summary())
        return report

    def _set_input_adapter(self) -> None:
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
        self.adapt_input = len(mean) == 3 and (mean != IMAGENET_MEAN or std != IMAGENET_STD)
        m_in, s_in = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        m_enc, s_enc = torch.tensor(mean if self.adapt_input else IMAGENET_MEAN), torch.tensor(std if self.adapt_input else IMAGENET_STD)
        # x_enc = (x * s_in + m_in - m_enc) / s_enc
        self.register_buffer("input_scale", (s_in / s_enc).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", ((m_in - m_enc) / s_enc).view(1, 3, 1, 1), persistent=False)

    @property
    def top_channels(self) -> int:
        return self.feature_info.channels()[-1]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images * self.input_scale + self.input_shift if self.adapt_input else images
        feats = list(self.model(x))
        if self.pyramid is None:
            return feats
        tokens = feats[-1]
        if self.token_reduction != 16:  # e.g. patch 14: resample the token grid to stride 16
            h, w = images.shape[-2] // 16, images.shape[-1] // 16
            tokens = F.interpolate(tokens, size=(h, w), mode="bilinear", align_corners=False)
        return self.pyramid(tokens)


def _create(name: str, image_size: int, hub_weights: bool) -> nn.Module:
    if not timm.is_model(name):
        raise ConfigError(f"model.encoder: {name!r} is not a timm model name (see timm.list_models())")

    def create(pretrained: bool = False) -> nn.Module:
        try:  # transformers need their input size up front; CNNs do not take it
            return timm.create_model(name, pretrained=pretrained, features_only=True, img_size=image_size)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
            return timm.create_model(name, pretrained=pretrained, features_only=True)

    try:
        return weights.create_with_hub_weights(create, name) if hub_weights else create()
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"model.encoder: cannot build {name!r} as a feature extractor: {exc}") from None
