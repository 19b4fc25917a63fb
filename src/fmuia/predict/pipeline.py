"""Predicting a whole data root into a challenge submission (``fmuia predict``).

Order of work: read the CSVs; refuse tasks the model lacks, malformed rows, an unsafe
output folder and every unsafe mask path before anything is written; then stream the
images through a DataLoader (reading and resizing in worker processes), run the model
on batches that may mix tasks, write masks on a thread pool as they come, and write
the three JSON files atomically at the end.

The output folder never touches input: it may not be, contain or lie inside the data
root, its CSV folder or any folder holding the images or masks it reads. It must be
new or empty unless ``overwrite``, which first removes the prediction files an
earlier run left there (``fmuia.predict.writer.stale_prediction_files``: the three
JSON files and PNGs under ``Segmentation/``, nothing else) so that none of them is
mistaken for part of this run.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fmuia.data.dataset import load_sample
from fmuia.data.layout import Layout, csv_dir, read_layout
from fmuia.data.records import Entry
from fmuia.data.transforms import resize_sample
from fmuia.errors import DataError
from fmuia.predict.kinds import output_for
from fmuia.predict.paths import plan_mask_files
from fmuia.predict.writer import SubmissionWriter, os_error
from fmuia.tasks import Kind

if TYPE_CHECKING:
    from fmuia.predict.predictor import Predictor

log = logging.getLogger(__name__)


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass
class PredictionSummary:
    """What a run wrote: per-task counts, the JSON files, and throughput."""

    out_dir: str
    counts: dict[str, int]
    kinds: dict[str, Kind]
    json_files: dict[Kind, str] = field(default_factory=dict)
    masks: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def format_table(self) -> str:
        width = max([len("task")] + [len(t) for t in self.counts])
        lines = [f"{'task':<{width}}  {'kind':<14}  predictions"]
        for task_id, n in self.counts.items():
            lines.append(f"{task_id:<{width}}  {self.kinds[task_id].value:<14}  {n}")
        rate = self.total / self.seconds if self.seconds > 0 else 0.0
        lines.append(f"{'total':<{width}}  {'':<14}  {self.total}  ({self.seconds:.1f} s, {rate:.1f} images/s)")
        return "\n".join(lines)


class _Images(Dataset):
    """Row i -> (uint8 (S, S, 3) image, i, original h, w, error message or None).

    A read error travels as a value so the main process can raise it as a
    ``DataError`` naming the CSV row (not wrapped in a worker traceback)."""

    def __init__(self, entries: list[Entry], image_size: int) -> None:
        self.entries = entries
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        try:
            sample = load_sample(self.entries[i], with_label=False)
            h, w = sample.size
            image = resize_sample(sample, self.image_size).image
            return torch.from_numpy(np.ascontiguousarray(image)), i, h, w, None
        except DataError as exc:
            return None, i, 0, 0, str(exc)


def _collate(items):
    errors = [msg for *_, msg in items if msg is not None]
    if errors:
        return None, [], [], errors
    images = torch.stack([it[0] for it in items])
    return images, [it[1] for it in items], [(it[2], it[3]) for it in items], []


def check_layout(layout: Layout, predictor: "Predictor") -> None:
    """Refuse what cannot be predicted, before any prediction: malformed rows, and
    tasks the model does not have (all named)."""
    if layout.problems:
        shown = "\n  ".join(str(p) for p in layout.problems[:20])
        more = f"\n  ... and {len(layout.problems) - 20} more" if len(layout.problems) > 20 else ""
        raise DataError(f"{layout.root}: {len(layout.problems)} problem(s) in the CSVs:\n  {shown}{more}")
    unknown = [t for t in layout.registry.task_ids if t not in predictor.registry]
    if unknown:
        raise DataError(
            f"{layout.root}: the data has task(s) the model was not trained for: {', '.join(unknown)} "
            f"(the model's tasks: {', '.join(predictor.registry.task_ids)})"
        )


def _input_folders(layout: Layout) -> dict[str, str]:
    """Every folder the run reads from (real path -> what it is, for messages)."""
    folders = {os.path.realpath(layout.root): "the data root",
               os.path.realpath(csv_dir(layout.root)): "the CSV folder"}
    for e in layout.entries:
        folders.setdefault(os.path.realpath(os.path.dirname(e.image_file)), f"the image folder of {e.where}")
        if e.mask_file and e.has_mask_label:
            folders.setdefault(os.path.realpath(os.path.dirname(e.mask_file)), f"the mask folder of {e.where}")
    return folders


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def check_output_folder(layout: Layout, out_dir: str, overwrite: bool = False) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder, that
    is not a folder, or that is not empty (unless ``overwrite``)."""
    out = os.path.realpath(out_dir)
    inputs = _input_folders(layout)
    # The most telling relation first: being a folder, then lying in one, then holding one.
    for relation, applies in (("is", lambda f: out == f), ("is inside", lambda f: _inside(out, f)),
                              ("contains", lambda f: _inside(f, out))):
        for folder, what in inputs.items():
            if applies(folder):
                raise DataError(f"{out_dir}: the output folder {relation} {what} ({folder}); predictions must not "
                                "be written among the input files (choose an output folder outside the data)")
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise DataError(f"{out_dir}: the output path exists and is not a folder")
    if not os.path.isdir(out_dir) or overwrite:
        return
    try:
        present = sorted(os.listdir(out_dir))
    except OSError as exc:
        raise os_error(out_dir, "list the output folder", exc) from None
    if present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise DataError(f"{out_dir}: the output folder is not empty ({shown}); choose a new or empty folder, or pass "
                        "--overwrite (overwrite=True) to replace the prediction files in it (other files are kept)")


# The atomic writer writes "<name>" through ".<name>.<32 hex digits>.tmp".
_TEMPORARY_NAME_EXTRA = len("." + "." + "0" * 32 + ".tmp")


def _name_max(out_dir: str) -> int:
    """The longest file name the output folder's file system takes (255 where unknown)."""
    probe = os.path.abspath(out_dir)
    while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _refuse_unwritable_names(entries: list[Entry], planned: dict[int, str], out_dir: str) -> None:
    """A mask path with a file or folder name longer than the file system takes would
    fail halfway through the run: refuse it first, naming the row."""
    limit = _name_max(out_dir)
    base = os.path.realpath(out_dir)
    problems = []
    for i, target in planned.items():
        parts = os.path.relpath(target, base).split(os.sep)
        names = [(p, limit) for p in parts[:-1]] + [(parts[-1], limit - _TEMPORARY_NAME_EXTRA)]
        too_long = [(p, most) for p, most in names if len(os.fsencode(p)) > most]
        if too_long:
            name, most = too_long[0]
            e = entries[i]
            problems.append(f"{e.where}: mask_path {e.mask_path!r} has a name of {len(os.fsencode(name))} bytes "
                            f"(at most {most} can be written here)")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError(f"refusing to write predictions into {out_dir}: {len(problems)} mask path(s) with names "
                        f"too long (nothing was written):\n  {shown}{more}")


def _refuse_overwriting_inputs(entries: list[Entry], planned: dict[int, str]) -> None:
    """A mask target that is one of the data root's own files would destroy input
    data (a backstop behind ``check_output_folder``, for symlinked inputs)."""
    inputs = {os.path.realpath(p) for e in entries for p in (e.image_file, e.mask_file) if p}
    for i, target in planned.items():
        if os.path.realpath(target) in inputs:
            e = entries[i]
            raise DataError(f"{e.where}: mask_path {e.mask_path!r} would overwrite the input file {target} "
                            "(choose an output folder outside the data root)")


def predict_dataset(
    predictor: "Predictor",
    data_root: str,
    out_dir: str,
    *,
    batch_size: int = 8,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> PredictionSummary:
    """Write the submission of ``data_root`` into ``out_dir`` (SPEC section 3).

    All three JSON files are always written (``[]`` for a kind without rows), so a
    scorer that opens all of them works on a test folder holding only some kinds.
    ``out_dir`` must be outside every input folder and new or empty; ``overwrite``
    accepts a non-empty one and removes the prediction files of an earlier run from it
    (the three JSON files and PNGs under ``Segmentation/``; other files are kept).
    """
    if batch_size < 1:
        raise DataError(f"--batch-size must be at least 1, got {batch_size}")
    layout = read_layout(data_root, base=predictor.registry)
    check_layout(layout, predictor)
    entries = layout.entries
    check_output_folder(layout, out_dir, overwrite)
    planned = plan_mask_files(entries, out_dir)
    _refuse_unwritable_names(entries, planned, out_dir)
    _refuse_overwriting_inputs(entries, planned)

    workers = default_workers() if workers is None else max(0, int(workers))
    counts: Counter[str] = Counter()
    writer = SubmissionWriter(out_dir)
    start = time.perf_counter()
    try:
        writer.start()  # before the loader: a folder that cannot be written fails without forking readers
        loader = DataLoader(
            _Images(entries, predictor.image_size), batch_size=batch_size, shuffle=False, num_workers=workers,
            collate_fn=_collate, pin_memory=predictor.device.type == "cuda",
            prefetch_factor=4 if workers else None, persistent_workers=False,
        )
        with tqdm(total=len(entries), unit="img", desc="predict", disable=not progress, leave=False) as bar:
            for images, indices, sizes, errors in loader:
                if errors:
                    raise DataError("\n".join(errors))
                task_ids = [entries[i].task_id for i in indices]
                for i, result in zip(indices, predictor.results(images, task_ids, sizes)):
                    entry = entries[i]
                    if entry.kind is Kind.SEGMENTATION:
                        writer.add_mask(planned[i], result.mask)
                    else:
                        writer.add_record(entry.kind, output_for(entry.kind).record(entry, result))
                    counts[entry.task_id] += 1
                bar.update(len(indices))
        json_files = writer.finish()
    except BaseException:
        writer.close()
        raise
    ordered = {t: counts[t] for t in layout.registry.task_ids}
    return PredictionSummary(
        out_dir=out_dir, counts=ordered, kinds={t.task_id: t.kind for t in layout.registry},
        json_files=json_files, masks=len(planned), seconds=time.perf_counter() - start,
    )
