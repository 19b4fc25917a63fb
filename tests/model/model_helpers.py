"""Helpers shared by the model tests: a tiny config and deterministic images."""
import torch

from fmuia.model import ModelConfig

SIZE = 64


def tiny_config(**changes) -> ModelConfig:
    base = dict(encoder="resnet18", pretrained="none", image_size=SIZE, channels_last=False)
    base.update(changes)
    return ModelConfig(**base)


def images(batch: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
