"""The second half of prediction's preprocessing: ImageNet normalisation of a uint8 batch.

The first half, the resize, runs where images are read (``fmuia.data.resize``); this
half runs where the network does (see ``fmuia.predict.backends``). The same numbers as
albumentations' ``Normalize(max_pixel_value=255)`` of the training pipeline."""
from __future__ import annotations

import torch

from fmuia.imagenet import IMAGENET_MEAN, IMAGENET_STD

# The mean and standard deviation in uint8 pixel units, per RGB channel.
PIXEL_MEAN = tuple(255.0 * m for m in IMAGENET_MEAN)
PIXEL_STD = tuple(255.0 * s for s in IMAGENET_STD)


def normalise(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, S, S, 3) -> float32 (B, 3, S, S) normalised with ImageNet mean/std,
    computed on ``device``."""
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
    inv_std = 1.0 / (torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0)
    return ((x - mean) * inv_std).contiguous()
