"""Torch datasets over ``FMUIADataset`` entries for training and validation, and the
batch collation. Samples come from the files or, when configured, from
``fmuia.data.cache.SampleCache``.

Training augmentation is seeded by default: each item carries its own augmentation seed
and the pipeline is reseeded from it, so a sample's augmentation depends on (run seed,
epoch, sample) only. ``TrainSet(..., seeded=False)`` (``augment.seeded: false``, the
official code's behaviour) ignores that seed: albumentations then draws from its own
state, seeded from the operating system's entropy. That state is a plain copy in every
DataLoader worker (forked, or pickled when spawned), so each process seeds it afresh
from entropy the first time it augments; without that, all workers, and every epoch
of non-persistent workers, would draw the same sequence.
"""
from __future__ import annotations

import os
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
    (see ``fmuia.data.samplers``) and returned as dicts of image, target, task id, index.

    ``seeded`` False: the augmentation seed is ignored and the transforms draw from
    their own unseeded state (see the module docstring)."""

    def __init__(self, dataset: FMUIADataset, transforms: Mapping[str, A.Compose], cache: SampleCache | None = None,
                 seeded: bool = True) -> None:
        self.entries = dataset.entries
        self.transforms = dict(transforms)
        self.cache = cache
        self.num_classes = {t.task_id: t.n for t in dataset.registry}
        self.seeded = bool(seeded)
        self._entropy_pid: int | None = None  # the process whose transforms were seeded from entropy

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        index, seed = item
        entry = self.entries[index]
        sample = self.cache.load(entry)[0] if self.cache else load_sample(entry)
        check_label_values(entry, sample.label, self.num_classes[entry.task_id])
        if not self.seeded:
            self._seed_from_entropy()
        image, target = encode_sample(sample, self.transforms[entry.task_id], seed=seed if self.seeded else None)
        return {"image": image, "target": target, "task_id": entry.task_id, "index": index}

    def _seed_from_entropy(self) -> None:
        """Fresh operating-system entropy for every transform, once per process: a
        DataLoader worker holds a copy of its parent's state, the same in every worker."""
        pid = os.getpid()
        if self._entropy_pid != pid:
            for transform in self.transforms.values():
                transform.set_random_seed(None)
            self._entropy_pid = pid


class EvalSet(torch.utils.data.Dataset):
    """Validation samples: the model input (plain resize) plus the label at the original
    size, for scoring as the challenge does. ``transform``: one for every task, or a
    mapping of task ids to each task's (their input sizes may differ)."""

    def __init__(self, dataset: FMUIADataset, transform: "A.Compose | Mapping[str, A.Compose]",
                 cache: SampleCache | None = None) -> None:
        self.entries = dataset.entries
        self.transforms = (dict(transform) if isinstance(transform, Mapping)
                           else {t.task_id: transform for t in dataset.registry})
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
        image, _ = encode_sample(Sample(entry, sample.image, None), self.transforms[entry.task_id])
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
