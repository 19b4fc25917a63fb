"""Tiny pretraining runs: resnet18 without weights at 64 px, a few 40x48 grey PNGs."""
from __future__ import annotations

import os

import cv2
import numpy as np

TINY_PRETRAIN = [
    "model.encoder=resnet18", "model.image_size=64", "method.hidden_dim=32", "method.projection_dim=16",
    "train.batch_size=3", "train.epochs=2", "train.progress=false", "train.plot=false", "data.num_workers=0",
    "device=cpu", "seed=5",
]


def write_grey_images(folder: str, count: int = 6) -> str:
    """``count`` random grey PNGs, every other one in a sub-folder; returns ``folder``."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
    for i in range(count):
        where = os.path.join(folder, "sub" if i % 2 else "", f"frame{i}.png")
        cv2.imwrite(where, rng.integers(0, 255, (40, 48), dtype=np.uint8))
    return folder
