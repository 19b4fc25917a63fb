"""Typed records: an ``Entry`` is one CSV row, parsed but not loaded; a ``Sample`` is
an entry with its image (and mask) read from disk."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from fmuia import kinds
from fmuia.tasks import Kind

# Native label forms, in pixels of the original image:
#   segmentation   np.ndarray (H, W) uint8 of class ids (loaded lazily from mask_path)
#   classification int
#   detection      np.ndarray (4,) float64  [x_min, y_min, x_max, y_max]
#   keypoints      np.ndarray (K, 2) float64 [[x, y], ...]
Label = Union[np.ndarray, int, None]


@dataclass(frozen=True)
class Entry:
    """One CSV row of a dataset.

    ``image_path`` and ``mask_path`` are kept verbatim (they are the scorer's join
    key and the submission's output path); ``image_file``/``mask_file`` are the
    resolved paths on disk. ``label`` holds the parsed classification, box or
    point label (None when the row is unlabelled); segmentation labels live in
    ``mask_file`` and are read with the image.
    """

    task_id: str
    kind: Kind
    image_path: str
    image_file: str
    csv_file: str
    line: int
    mask_path: str | None = None
    mask_file: str | None = None
    label: Label = None

    @property
    def where(self) -> str:
        return f"{self.csv_file} line {self.line}"

    @property
    def labelled(self) -> bool:
        return kinds.kind_of(self.kind).labelled(self)

    # Set by the reader: whether the mask file exists (test data may name a mask
    # path that is only an output location).
    has_mask_label: bool = False


@dataclass
class Sample:
    """An entry with its pixels: ``image`` is RGB uint8 (H, W, 3) at original size."""

    entry: Entry
    image: np.ndarray
    label: Label

    @property
    def task_id(self) -> str:
        return self.entry.task_id

    @property
    def kind(self) -> Kind:
        return self.entry.kind

    @property
    def size(self) -> tuple[int, int]:
        """Original (height, width)."""
        return int(self.image.shape[0]), int(self.image.shape[1])
