"""Predicting a whole data root into a challenge submission (``fmuia predict``).

Order of work: read the CSVs; refuse tasks the model lacks, malformed rows, an unsafe
output folder, every unsafe mask path and every image whose header cannot be read
before anything is written; then stream the
images through ``fmuia.predict.reader`` (reading and resizing in worker processes), run the model
on batches that may mix tasks, write masks on a thread pool as they come, and write
the three JSON files atomically at the end. The output folder's rules (never among
the inputs, new or empty unless ``overwrite``) are ``fmuia.predict.output_folder``.
"""
from __future__ import annotations

import logging
import time
from contextlib import closing
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np
from tqdm import tqdm

from fmuia.data.dataset import load_sample
from fmuia.data.layout import Layout, read_layout
from fmuia.data.records import Entry
from fmuia.data.resize import resize_image
from fmuia.data.validate import image_header_problems
from fmuia.errors import DataError
from fmuia import kinds
from fmuia.io.lock import claim_output
from fmuia.predict.output_folder import check_output_folder, refuse_overwriting_inputs, refuse_unwritable_names
from fmuia.predict.paths import plan_mask_files
from fmuia.predict.reader import prediction_workers as default_workers, read_batches
from fmuia.predict.writer import SubmissionWriter
from fmuia.tasks import Kind

if TYPE_CHECKING:
    from fmuia.predict.predictor import Predictor

log = logging.getLogger(__name__)


# How far the readers may run ahead of the network, in bytes of resized images (at least
# 4 batches per reader): they keep reading while an OpenVINO model compiles (one core
# for a second or more), so that the network later shares the cores with fewer reads.
# About 430 images at Lite0's largest side (160 px), 170 at B4's 256 px.
READ_AHEAD_BYTES = 32 * 2**20


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


class _Images:
    """Row i -> (uint8 (S, S, 3) image, i, original h, w, error message or None), S the
    row's task's input side (``sizes``: task id -> side, or one side for all).

    A read error travels as a value so the main process can raise it as a
    ``DataError`` naming the CSV row (not wrapped in a worker traceback)."""

    def __init__(self, entries: list[Entry], sizes: "int | Mapping[str, int]") -> None:
        self.entries = entries
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        try:
            sample = load_sample(self.entries[i], with_label=False)
            h, w = sample.size
            side = self.sizes if isinstance(self.sizes, int) else self.sizes[self.entries[i].task_id]
            return resize_image(sample.image, side), i, h, w, None
        except DataError as exc:
            return None, i, 0, 0, str(exc)


def size_runs(entries: list[Entry], sizes: Mapping[str, int], batch_size: int) -> list[list[int]]:
    """Row batches in file order, of at most ``batch_size`` rows of one input size: a
    batch ends where the next row's task has another size."""
    batches: list[list[int]] = []
    for i, entry in enumerate(entries):
        side = sizes[entry.task_id]
        if not batches or len(batches[-1]) == batch_size or sizes[entries[batches[-1][0]].task_id] != side:
            batches.append([])
        batches[-1].append(i)
    return batches


def _collate(items):
    errors = [msg for *_, msg in items if msg is not None]
    if errors:
        return None, [], [], errors
    images = np.stack([it[0] for it in items])
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


def check_images(entries: list[Entry], out_dir: str, limit: int = 20) -> None:
    """Every input image's header, read before anything is written (``data.check:
    header`` for the images; the labels are not read): a missing, empty or unreadable
    file late in the CSV order would otherwise stop the run half-written. Corrupt pixel
    data behind a valid header is still found only when the image is read."""
    problems = image_header_problems(entries)
    if problems:
        more = [f"... and {len(problems) - limit} more"] if len(problems) > limit else []
        raise DataError("\n  ".join([*problems[:limit], *more, f"(the header check of the {len(entries)} input image(s) "
                                      f"found {len(problems)} problem(s); nothing was written to {out_dir})"]))


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
    """Write the submission of ``data_root`` into ``out_dir`` (docs/format.md, "Submission files").

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
    # The folder checks run under the lock: a second run cannot fill it between them and the writes.
    with claim_output(out_dir, "predict"):
        check_output_folder(layout, out_dir, overwrite)
        planned = plan_mask_files(layout.entries, out_dir)
        refuse_unwritable_names(layout.entries, planned, out_dir)
        refuse_overwriting_inputs(layout.entries, planned)
        check_images(layout.entries, out_dir)
        return _write_predictions(predictor, layout, out_dir, planned, batch_size, workers, progress)


def _write_predictions(predictor: "Predictor", layout: Layout, out_dir: str, planned: dict[int, str], batch_size: int,
                       workers: int | None, progress: bool) -> PredictionSummary:
    entries = layout.entries
    workers = default_workers() if workers is None else max(0, int(workers))
    counts: Counter[str] = Counter()
    writer = SubmissionWriter(out_dir)
    start = time.perf_counter()
    try:
        writer.start()  # before the readers: a folder that cannot be written fails without forking readers
        side = max(predictor.input_sizes.values())
        ahead = max(4, READ_AHEAD_BYTES // (batch_size * side * side * 3 * max(1, workers)))
        batches = read_batches(_Images(entries, predictor.input_sizes).__getitem__,
                               size_runs(entries, predictor.input_sizes, batch_size), workers, ahead)
        # closing: an error in the loop stops the reading processes at once.
        with closing(batches), tqdm(total=len(entries), unit="img", desc="predict", disable=not progress, leave=False) as bar, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="fmuia-results") as results_thread:
            def write(decoded, indices: list[int], sizes, task_ids: list[str]) -> None:
                for i, result in zip(indices, predictor.results_of(decoded, task_ids, sizes)):
                    entry = entries[i]
                    owner = kinds.kind_of(entry.kind)
                    if owner.prediction_file is None:
                        writer.add_mask(planned[i], result.mask)
                    else:
                        writer.add_record(entry.kind, owner.record(entry, result))
                    counts[entry.task_id] += 1
                bar.update(len(indices))

            # A batch's results (resizing to the original pixels, class maps, records) are
            # made on a thread of their own while the next batch runs through the network:
            # the network's kernels and OpenCV release the GIL, so the two overlap. One
            # batch at a time in each, in order.
            pending = None
            for images, indices, sizes, errors in map(_collate, batches):
                if errors:
                    raise DataError("\n".join(errors))
                task_ids = [entries[i].task_id for i in indices]
                decoded = predictor.decoded(images, task_ids)
                if pending is not None:
                    pending.result()
                pending = results_thread.submit(write, decoded, indices, sizes, task_ids)
            if pending is not None:
                pending.result()
        json_files = writer.finish()
    except BaseException:
        writer.close()
        raise
    ordered = {t: counts[t] for t in layout.registry.task_ids}
    return PredictionSummary(
        out_dir=out_dir, counts=ordered, kinds={t.task_id: t.kind for t in layout.registry},
        json_files=json_files, masks=len(planned), seconds=time.perf_counter() - start,
    )
