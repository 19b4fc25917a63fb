"""Torch datasets over ``FMUIADataset`` entries for training and validation, and the
batch collation. Samples come from the files or, when configured, from
``fmuia.data.cache.SampleCache``.
"""
from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

import albumentations as A
import numpy as np
import torch

from fmuia.data.cache import SampleCache
from fmuia.data.dataset import FMUIADataset, check_label_values, load_sample
from fmuia.data.records import Sample
from fmuia.data.transforms import encode_sample
from fmuia import kinds

__all__ = ["EvalSet", "TrainSet", "collate", "seed_worker"]


class TrainSet(torch.utils.data.Dataset):
    """Augmented training samples. Items are asked for as ``(index, augmentation seed)``
    (see ``fmuia.data.samplers``) and returned as dicts of image, target, task id, index."""

    def __init__(self, dataset: FMUIADataset, transforms: Mapping[str, A.Compose], cache: SampleCache | None = None) -> None:
        self.entries = dataset.entries
        self.transforms = dict(transforms)
        self.cache = cache
        self.num_classes = {t.task_id: t.n for t in dataset.registry}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        index, seed = item
        entry = self.entries[index]
        sample = self.cache.load(entry)[0] if self.cache else load_sample(entry)
        check_label_values(entry, sample.label, self.num_classes[entry.task_id])
        image, target = encode_sample(sample, self.transforms[entry.task_id], seed=seed)
        return {"image": image, "target": target, "task_id": entry.task_id, "index": index}


class EvalSet(torch.utils.data.Dataset):
    """Validation samples: the model input (plain resize) plus the label at the original
    size, for scoring as the challenge does."""

    def __init__(self, dataset: FMUIADataset, transform: A.Compose, cache: SampleCache | None = None) -> None:
        self.entries = dataset.entries
        self.transform = transform
        self.cache = cache
        self.num_classes = {t.task_id: t.n for t in dataset.registry}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        if self.cache:
            sample, size = self.cache.load(entry)
            label = kinds.kind_of(entry.kind).load_label(entry)
        else:
            sample = load_sample(entry)
            size, label = sample.size, sample.label
        check_label_values(entry, label, self.num_classes[entry.task_id])
        image, _ = encode_sample(Sample(entry, sample.image, None), self.transform)
        return {"image": image, "task_id": entry.task_id, "index": index, "size": size, "label": label}


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack images; keep targets, labels and ids as per-sample lists (their shapes
    differ between tasks)."""
    out: dict[str, Any] = {"image": torch.stack([it["image"] for it in items])}
    for key in items[0]:
        if key != "image":
            out[key] = [it[key] for it in items]
    return out


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one torch thread per worker, and numpy/random seeded
    from the worker's torch seed (itself from the loader's generator)."""
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
