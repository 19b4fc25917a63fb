"""Two random views of each unlabelled image, and the batches of an epoch.

A view is a random resized crop (``views.crop_scale``, ``views.crop_ratio``) to the
encoder's input side, an optional horizontal flip, the ultrasound photometric
augmentations of ``fmuia.data.transforms.photometric_steps`` (brightness/contrast,
gamma, blur, noise, gain, speckle) and the ImageNet normalisation every fmuia model
expects. The images are grey ultrasound, so there is no colour jitter or greyscale step.

Reproducibility, as in training: the images of each batch and the random draws of each
view are functions of (seed, epoch, image index) only, whatever the number of loader
workers, so a run resumed at an epoch boundary continues exactly as an uninterrupted one.
"""
from __future__ import annotations

import random
from typing import Iterator, Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from fmuia.config.pretrain import ViewsSection
from fmuia.data.transforms import normalize_step, photometric_steps
from fmuia.pretrain.images import read_pixels

__all__ = ["EpochBatches", "TwoViews", "build_view_transform"]


def build_view_transform(views: ViewsSection, image_size: int) -> A.Compose:
    """The pipeline drawing one view (see the module notes)."""
    steps: list[A.BasicTransform] = [
        A.RandomResizedCrop(size=(image_size, image_size), scale=tuple(views.crop_scale), ratio=tuple(views.crop_ratio),
                            interpolation=cv2.INTER_LINEAR, p=1.0),
    ]
    if views.hflip > 0:
        steps.append(A.HorizontalFlip(p=views.hflip))
    steps += photometric_steps(views.photometric_policy())
    steps.append(normalize_step())
    return A.Compose(steps, seed=0)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


class TwoViews(torch.utils.data.Dataset):
    """Items are asked for as ``(index, seed)`` and returned as two views of image
    ``index``, both drawn from one generator seeded with ``seed``."""

    def __init__(self, files: Sequence[str], transform: A.Compose) -> None:
        self.files = list(files)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = item
        image = read_pixels(self.files[index])
        # One shared generator for both views (as training does per sample), so the two
        # views differ and depend on the seed alone.
        self.transform.set_random_state(np.random.default_rng(int(seed)), random.Random(int(seed)))
        first = self.transform(image=image)["image"]
        second = self.transform(image=image)["image"]
        return {"view1": _to_tensor(first), "view2": _to_tensor(second), "index": index}


class EpochBatches(torch.utils.data.Sampler):
    """The batches of one epoch: the images shuffled by (seed, epoch), cut into full
    batches (a short last batch would weaken the contrast, so it is dropped; so is one
    that not every process would get), dealt to the processes in turn. Each item is ``(index, view seed)``. ``set_epoch`` before
    iterating; the state to resume is the epoch alone."""

    def __init__(self, count: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.count, self.batch_size, self.seed = int(count), int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.count).tolist()
        # Every process gets the same number of batches (DDP steps together).
        per_step = self.batch_size * self.world_size
        full = len(order) // per_step * per_step
        return [order[i:i + self.batch_size] for i in range(0, full, self.batch_size)]

    def __len__(self) -> int:
        return self.count // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self._all_batches()[self.rank::self.world_size]:
            yield [(index, _view_seed(self.seed, self.epoch, index)) for index in batch]


def _view_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.default_rng([seed, epoch, index, 7]).integers(2**31))
