"""The second half of prediction's preprocessing: ImageNet normalisation of a uint8 batch.

The first half, the resize, runs where images are read (``fmuia.data.resize``); this
half runs where the network does (see ``fmuia.predict.backends``). The same numbers as
albumentations' ``Normalize(max_pixel_value=255)`` of the training pipeline."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fmuia.imagenet import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    import torch

# The mean and standard deviation in uint8 pixel units, per RGB channel, in float32: the
# torch normalisation below and OpenVINO's preprocessing steps read these same values.
PIXEL_MEAN = np.asarray(IMAGENET_MEAN, np.float32) * np.float32(255.0)
PIXEL_STD = np.asarray(IMAGENET_STD, np.float32) * np.float32(255.0)


def normalise(batch: "torch.Tensor", device: "torch.device") -> "torch.Tensor":
    """uint8 (B, S, S, 3) -> float32 (B, 3, S, S) normalised with ImageNet mean/std,
    computed on ``device``."""
    import torch  # the OpenVINO backend reads only the constants above, without torch

    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    mean = torch.from_numpy(PIXEL_MEAN).to(device).view(1, 3, 1, 1)
    inv_std = 1.0 / torch.from_numpy(PIXEL_STD).to(device).view(1, 3, 1, 1)
    return ((x - mean) * inv_std).contiguous()
