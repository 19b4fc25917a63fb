"""An optional on-disk cache of resized samples.

Decoding and resizing full-size images every epoch is what usually starves a model of
data. ``SampleCache`` stores each sample once at the model's input size (uint8 image,
label in resized pixels, original size) as one uncompressed ``.npz`` (plain ``.npy``
members, loaded with ``allow_pickle=False``) and reads that on later epochs; it is filled
lazily by whichever loader worker first needs a sample, never held in memory.
"""
from __future__ import annotations

import hashlib
import os
from typing import Mapping

import numpy as np

from fmuia.data.dataset import load_sample
from fmuia.data.records import Entry, Sample
from fmuia.data.transforms import resize_sample
from fmuia import kinds
from fmuia.io.atomic import write_file
from fmuia.io.images import exif_orientation

__all__ = ["SampleCache"]


class SampleCache:
    """Resized samples on disk, keyed by file identity, label and size.

    ``task_sizes`` gives the tasks whose input side is not ``image_size`` theirs
    (``model.input_scale``); each size has its own folder."""

    def __init__(self, root: str, image_size: int, task_sizes: Mapping[str, int] | None = None) -> None:
        self.base = root
        self.image_size = image_size
        self.task_sizes = dict(task_sizes or {})

    @property
    def root(self) -> str:
        """The folder of the samples at ``image_size``."""
        return os.path.join(self.base, f"{self.image_size}px")

    def size_of(self, entry: Entry) -> int:
        return self.task_sizes.get(entry.task_id, self.image_size)

    def _key(self, entry: Entry) -> str:
        parts = [os.path.abspath(entry.image_file), str(self.size_of(entry))]
        for path in (entry.image_file, entry.mask_file if entry.has_mask_label else None):
            if path:
                st = os.stat(path)
                parts += [path, str(st.st_mtime_ns), str(st.st_size)]
        if entry.label is not None:
            parts.append(repr(np.asarray(entry.label).tolist()))
        if exif_orientation() != "apply":  # other pixels; the default's keys stay as they were
            parts.append(f"exif:{exif_orientation()}")
        return hashlib.sha1("\x00".join(parts).encode()).hexdigest()

    def path(self, entry: Entry) -> str:
        key = self._key(entry)
        return os.path.join(self.base, f"{self.size_of(entry)}px", key[:2], key + ".npz")

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
        small = resize_sample(sample, self.size_of(entry))
        write_file(path, lambda fh: np.savez(
            fh,
            image=small.image,
            label=np.asarray(small.label if small.label is not None else 0),
            labelled=np.asarray(small.label is not None),
            size=np.asarray(size, dtype=np.int64),
        ))
        return small, size


def _label_from_array(entry: Entry, value: np.ndarray):
    return kinds.kind_of(entry.kind).label_from_array(value)
