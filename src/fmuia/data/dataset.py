"""A lazy dataset over one FM_UIA data root: rows are parsed at construction, pixels
are read only when a sample is asked for."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from fmuia.io.images import read_image
from fmuia.data.layout import Layout, read_layout
from fmuia.data.records import Entry, Sample
from fmuia.errors import DataError
from fmuia import kinds
from fmuia.kinds.segmentation import FIX_0_255, saved_as_0_255
from fmuia.tasks import TaskRegistry


class FMUIADataset:
    """Samples of one data root, in CSV order.

    Construction reads only the CSVs (a 40k-row dataset opens in about a second).
    ``dataset[i]`` reads the image (and mask) of row ``i`` and returns a ``Sample``;
    a file that cannot be read raises ``DataError`` naming the CSV row. A broken
    sample is never replaced by another one.

    Rows with problems visible in the CSV alone make construction fail, unless
    ``strict=False``; run ``fmuia.data.validate`` for the checks that need pixels.
    """

    def __init__(
        self,
        root: str,
        registry: TaskRegistry | None = None,
        tasks: Iterable[str] | None = None,
        strict: bool = True,
        layout: Layout | None = None,
    ) -> None:
        layout = layout or read_layout(root, registry)
        if strict and layout.problems:
            shown = "\n  ".join(str(p) for p in layout.problems[:20])
            raise DataError(f"{root}: {len(layout.problems)} problem(s) in the CSVs:\n  {shown}")
        self.root = root
        self.registry = layout.registry
        entries = layout.entries
        if tasks is not None:
            wanted = set(tasks)
            unknown = wanted - set(self.registry.task_ids)
            if unknown:
                raise DataError(f"{root}: no rows for task(s) {', '.join(sorted(unknown))}")
            entries = [e for e in entries if e.task_id in wanted]
            self.registry = self.registry.subset(wanted)
        self.entries: list[Entry] = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        return load_sample(self.entries[index])

    def indices_by_task(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {t: [] for t in self.registry.task_ids}
        for i, e in enumerate(self.entries):
            out[e.task_id].append(i)
        return out

    def subset(self, indices: Sequence[int]) -> "FMUIADataset":
        view = object.__new__(FMUIADataset)
        view.root, view.registry = self.root, self.registry
        view.entries = [self.entries[i] for i in indices]
        return view


def load_sample(entry: Entry, with_label: bool = True, num_classes: int | None = None) -> Sample:
    """Read an entry's pixels. Errors name the CSV file and line of the row.

    ``num_classes``, when given, is checked against a label read from a file (a mask):
    a value >= it would otherwise fail deep in the loss, far from the file."""
    try:
        image = read_image(entry.image_file)
        label = kinds.kind_of(entry.kind).load_label(entry, image.shape[:2]) if with_label else None
    except DataError as exc:
        raise DataError(f"{entry.where} (task {entry.task_id}): {exc}") from None
    if with_label and num_classes is not None:
        check_label_values(entry, label, num_classes)
    return Sample(entry=entry, image=image, label=label if with_label else None)


def check_label_values(entry: Entry, label, num_classes: int) -> None:
    """A mask label's values must be class ids below ``num_classes``; ``DataError`` names
    the row and the mask file otherwise."""
    if not kinds.kind_of(entry.kind).label_is_file or not isinstance(label, np.ndarray) or not label.size:
        return
    if int(label.max()) >= num_classes:
        values = np.unique(label)
        bad = values[values >= num_classes].tolist()
        fix = f"; {FIX_0_255}" if saved_as_0_255(label, num_classes) else ""
        raise DataError(f"{entry.where} (task {entry.task_id}): {entry.mask_file}: mask value(s) {bad} "
                        f">= num_classes {num_classes}{fix}")
