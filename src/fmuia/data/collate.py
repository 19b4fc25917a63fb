"""Torch datasets over ``FMUIADataset`` entries for training and validation, an optional
on-disk cache of resized samples, and the batch collation.

Decoding and resizing full-size images every epoch is what usually starves a model of
data. ``SampleCache`` stores each sample once at the model's input size (uint8 image,
label in resized pixels, original size) as one uncompressed ``.npz`` (plain ``.npy``
members, loaded with ``allow_pickle=False``) and reads that on later epochs; it is filled
lazily by whichever loader worker first needs a sample, never held in memory.
"""
from __future__ import annotations

import hashlib
import os
import random
import tempfile
from typing import Any, Mapping, Sequence

import albumentations as A
import numpy as np
import torch

from fmuia.data.dataset import FMUIADataset, load_sample
from fmuia.data.io import read_mask
from fmuia.data.records import Entry, Sample
from fmuia.data.transforms import encode_sample, resize_sample
from fmuia.tasks import Kind

__all__ = ["EvalSet", "SampleCache", "TrainSet", "collate", "seed_worker"]


class SampleCache:
    """Resized samples on disk, keyed by file identity, label and size."""

    def __init__(self, root: str, image_size: int) -> None:
        self.root = os.path.join(root, f"{image_size}px")
        self.image_size = image_size

    def _key(self, entry: Entry) -> str:
        parts = [os.path.abspath(entry.image_file), str(self.image_size)]
        for path in (entry.image_file, entry.mask_file if entry.has_mask_label else None):
            if path:
                st = os.stat(path)
                parts += [path, str(st.st_mtime_ns), str(st.st_size)]
        if entry.label is not None:
            parts.append(repr(np.asarray(entry.label).tolist()))
        return hashlib.sha1("\x00".join(parts).encode()).hexdigest()

    def path(self, entry: Entry) -> str:
        key = self._key(entry)
        return os.path.join(self.root, key[:2], key + ".npz")

    def load(self, entry: Entry) -> tuple[Sample, tuple[int, int]]:
        """The resized sample and the original (h, w), from the cache or built and stored."""
        path = self.path(entry)
        try:
            with np.load(path, allow_pickle=False) as z:
                label = _label_from_array(entry, z["label"]) if bool(z["labelled"]) else None
                return Sample(entry, z["image"], label), (int(z["size"][0]), int(z["size"][1]))
        except (OSError, KeyError, ValueError):
            pass  # not there yet (or a torn write from a killed run): rebuild
        sample = load_sample(entry)
        size = sample.size
        small = resize_sample(sample, self.image_size)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".npz.tmp", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    image=small.image,
                    label=np.asarray(small.label if small.label is not None else 0),
                    labelled=np.asarray(small.label is not None),
                    size=np.asarray(size, dtype=np.int64),
                )
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return small, size


def _label_from_array(entry: Entry, value: np.ndarray):
    if entry.kind is Kind.CLASSIFICATION:
        return int(value)
    return value


class TrainSet(torch.utils.data.Dataset):
    """Augmented training samples. Items are asked for as ``(index, augmentation seed)``
    (see ``fmuia.data.samplers``) and returned as dicts of image, target, task id, index."""

    def __init__(self, dataset: FMUIADataset, transforms: Mapping[str, A.Compose], cache: SampleCache | None = None) -> None:
        self.entries = dataset.entries
        self.transforms = dict(transforms)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        index, seed = item
        entry = self.entries[index]
        sample = self.cache.load(entry)[0] if self.cache else load_sample(entry)
        image, target = encode_sample(sample, self.transforms[entry.task_id], seed=seed)
        return {"image": image, "target": target, "task_id": entry.task_id, "index": index}


class EvalSet(torch.utils.data.Dataset):
    """Validation samples: the model input (plain resize) plus the label at the original
    size, for scoring as the challenge does."""

    def __init__(self, dataset: FMUIADataset, transform: A.Compose, cache: SampleCache | None = None) -> None:
        self.entries = dataset.entries
        self.transform = transform
        self.cache = cache

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        if self.cache:
            sample, size = self.cache.load(entry)
            label = read_mask(entry.mask_file) if entry.kind is Kind.SEGMENTATION and entry.has_mask_label else entry.label
        else:
            sample = load_sample(entry)
            size, label = sample.size, sample.label
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
