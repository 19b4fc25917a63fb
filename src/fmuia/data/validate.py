"""Checking a whole dataset before anything trains.

Every row is checked and every problem is reported, with its CSV file, line and
reason, in one report: a broken dataset is fixed once, not discovered broken
mid-run. The images are decoded once, in parallel; only per-task statistics are
kept, never the pixels.

Two levels: ``full`` decodes every image and mask (a truncated file, a mask value
>= num_classes); ``header`` reads only the file headers (size, mode) and checks every
row against them - missing, empty or unrecognised files, mask size against image
size, boxes and points inside the image - at a small fraction of the cost. The
header level does not see corrupt pixel data or mask values, and does not count
segmentation classes.
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fmuia import kinds
from fmuia.io.images import image_header, read_image
from fmuia.data.layout import Layout, Problem, read_layout
from fmuia.data.records import Entry
from fmuia.errors import DataError
from fmuia.tasks import Task, TaskRegistry


@dataclass
class TaskStats:
    """What ``fmuia validate`` tells about one task."""

    task: Task
    samples: int = 0
    labelled: int = 0
    min_hw: tuple[int, int] | None = None
    max_hw: tuple[int, int] | None = None
    # What each kind counts (TaskKind.counts): classification: samples per class;
    # segmentation: samples in which the class is present; detection: boxes; keypoints: points.
    counts: Counter = field(default_factory=Counter)

    def add_size(self, h: int, w: int) -> None:
        self.min_hw = (h, w) if self.min_hw is None else (min(self.min_hw[0], h), min(self.min_hw[1], w))
        self.max_hw = (h, w) if self.max_hw is None else (max(self.max_hw[0], h), max(self.max_hw[1], w))

    @property
    def class_balance(self) -> float | None:
        """Smallest over largest class count (1 = balanced), for kinds with classes."""
        classes = kinds.kind_of(self.task).class_range(self.task)
        if classes is None or not self.labelled:
            return None
        counts = [self.counts.get(c, 0) for c in classes]
        return (min(counts) / max(counts)) if max(counts) else None

    def to_dict(self) -> dict:
        return {
            "task_id": self.task.task_id,
            "kind": self.task.kind.value,
            "n": self.task.n,
            "samples": self.samples,
            "labelled": self.labelled,
            "min_size_hw": list(self.min_hw) if self.min_hw else None,
            "max_size_hw": list(self.max_hw) if self.max_hw else None,
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
            "class_balance": self.class_balance,
        }


@dataclass
class ValidationReport:
    root: str
    registry: TaskRegistry
    stats: dict[str, TaskStats]
    problems: list[Problem]
    entries: list[Entry]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "ok": self.ok,
            "tasks": [s.to_dict() for s in self.stats.values()],
            "problems": [p.to_dict() for p in self.problems],
        }

    def format_table(self) -> str:
        header = f"{'task':<24} {'kind':<14} {'n':>2} {'samples':>7} {'labelled':>8} {'size (h x w) min..max':<24} {'balance':>7}  counts"
        lines = [header, "-" * len(header)]
        for s in self.stats.values():
            size = "-" if s.min_hw is None else f"{s.min_hw[0]}x{s.min_hw[1]}..{s.max_hw[0]}x{s.max_hw[1]}"
            bal = "-" if s.class_balance is None else f"{s.class_balance:.2f}"
            counts = " ".join(f"{k}:{v}" for k, v in sorted(s.counts.items()))
            lines.append(
                f"{s.task.task_id:<24} {s.task.kind.value:<14} {s.task.n:>2} {s.samples:>7} {s.labelled:>8} {size:<24} {bal:>7}  {counts}"
            )
        total = sum(s.samples for s in self.stats.values())
        lines.append(f"{len(self.stats)} tasks, {total} samples")
        return "\n".join(lines)


LEVELS = ("full", "header")


def _check_entry(entry: Entry, task: Task, require_labels: bool) -> tuple[list[str], tuple[int, int] | None, list]:
    """Read one sample's files and return (problems, (h, w), class/point counts)."""
    try:
        image = read_image(entry.image_file)
    except DataError as exc:
        return [f"image {entry.image_path!r}: {_short(exc, entry.image_file)}"], None, []
    h, w = image.shape[:2]
    del image
    reasons, counted = kinds.kind_of(task).check_label(entry, task, (h, w), require_labels)
    return reasons, (h, w), counted


def _check_entry_header(entry: Entry, task: Task, require_labels: bool) -> tuple[list[str], tuple[int, int] | None, list]:
    """``_check_entry`` from the file headers only: a label that is a file (a mask) is
    checked for existence, readability and size; other labels by their kind."""
    try:
        header = image_header(entry.image_file)
    except DataError as exc:
        return [f"image {entry.image_path!r}: {_short(exc, entry.image_file)}"], None, []
    h, w = header.height, header.width
    kind = kinds.kind_of(task)
    if not kind.label_is_file:
        reasons, counted = kind.check_label(entry, task, (h, w), require_labels)
        return reasons, (h, w), counted
    if not entry.has_mask_label:
        return ([f"mask {entry.mask_path!r}: file not found"] if require_labels else []), (h, w), []
    try:
        mask = image_header(entry.mask_file)
    except DataError as exc:
        return [f"mask {entry.mask_path!r}: {_short(exc, entry.mask_file)}"], (h, w), []
    if (mask.height, mask.width) != (h, w):
        return [f"mask {entry.mask_path!r} is {mask.height}x{mask.width} but its image is {h}x{w} (h x w)"], (h, w), []
    if mask.channels not in (1, 3, 4):
        return [f"mask {entry.mask_path!r}: {mask.channels} channels (mode {mask.mode}); expected a single-channel class-id PNG"], (h, w), []
    return [], (h, w), []


def _short(exc: Exception, path: str) -> str:
    text = str(exc)
    return text[len(path) + 2 :] if text.startswith(path + ": ") else text


def validate(
    root: str,
    registry: TaskRegistry | None = None,
    require_labels: bool = False,
    workers: int | None = None,
    layout: Layout | None = None,
    level: str = "full",
) -> ValidationReport:
    """Check every CSV row and every file of a data root; see ``ValidationReport``.

    ``registry`` is the base registry of known tasks (default FM_UIA 2026);
    ``require_labels`` makes unlabelled rows an error (training data); ``level`` is
    ``full`` (decode every file) or ``header`` (file headers only, see above).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    check = _check_entry if level == "full" else _check_entry_header
    layout = layout or read_layout(root, registry)
    problems = list(layout.problems)
    stats = {t.task_id: TaskStats(t) for t in layout.registry}
    workers = workers or min(8, (os.cpu_count() or 1) + 1)

    def job(entry: Entry):
        return check(entry, layout.registry[entry.task_id], require_labels)

    # OpenCV and PNG decoding release the GIL, so threads use every core.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for entry, (reasons, hw, counted) in zip(layout.entries, pool.map(job, layout.entries, chunksize=16)):
            s = stats[entry.task_id]
            s.samples += 1
            problems.extend(Problem(entry.where, r, entry.task_id) for r in reasons)
            if hw is not None:
                s.add_size(*hw)
            if not reasons and entry.labelled:
                s.labelled += 1
                s.counts.update(counted)

    problems.sort(key=lambda p: _line_key(p.where))
    return ValidationReport(root=root, registry=layout.registry, stats=stats, problems=problems, entries=layout.entries)


def _line_key(where: str) -> tuple[str, int]:
    name, _, line = where.rpartition(" line ")
    return (name, int(line)) if line.isdigit() else (where, 0)
