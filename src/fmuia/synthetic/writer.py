"""Writing synthetic data roots in the challenge layout.

``generate`` writes one complete data root per split (``OUT/train``, ``OUT/val``,
``OUT/test``): ``csv_files/<task_id>.csv`` plus the image (and mask) files the rows
name, with paths relative to ``csv_files/``. Samples are drawn by a small process
pool; each sample depends only on its own seed, so the bytes written do not depend
on the number of workers.
"""
from __future__ import annotations

import csv
import io
import multiprocessing
import os
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from fmuia import kinds
from fmuia.data.layout import CSV_DIR, REQUIRED_COLUMNS
from fmuia.io.atomic import write_bytes
from fmuia.io.lock import claim_output
from fmuia.synthetic.profiles import PROFILES
from fmuia.synthetic.sampler import SyntheticSample, synthesize
from fmuia.errors import DataError
from fmuia.tasks import Task, TaskRegistry, fmuia2026

CLASS_COUNT_FOLDERS = {2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six", 7: "Seven", 8: "Eight"}
LABELLED_COPY = "test_labelled"  # with unlabelled test data, where its ground truth goes


@dataclass
class GenerationSummary:
    out_dir: str
    seed: int
    roots: dict[str, str]  # split -> data root written
    counts: dict[str, dict[str, int]]  # split -> task -> samples
    seconds: float
    workers: int
    files: int = 0
    unlabelled_test: bool = False
    tasks: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def to_dict(self) -> dict:
        return {
            "out_dir": self.out_dir, "seed": self.seed, "roots": self.roots, "counts": self.counts,
            "images": self.images, "files": self.files, "seconds": round(self.seconds, 3),
            "workers": self.workers, "unlabelled_test": self.unlabelled_test, "tasks": self.tasks,
        }


def sample_paths(task: Task, index: int, ext: str, digits: int = 4) -> tuple[str, str | None]:
    """(image path, mask path or None), relative to the data root."""
    name = f"{index + 1:0{digits}d}"
    top = kind_folder(task)
    if kinds.kind_of(task).label_is_file:
        folder = f"{top}/{CLASS_COUNT_FOLDERS.get(task.n, str(task.n))}/{task.task_id}"
        return f"{folder}/IMAGES/{name}.{ext}", f"{folder}/MASKS/{name}.png"
    return f"{top}/{task.task_id}/IMAGES/{name}.{ext}", None


def kind_folder(task: Task) -> str:
    """The top folder of a kind's files: its CSV spelling, capitalised (``Regression``)."""
    name = task.kind.csv_name
    return name[:1].upper() + name[1:]


def csv_columns(registry: TaskRegistry) -> list[str]:
    """The header of the generated CSVs: the required columns, then every kind's label
    columns (sized for the largest ``n`` of the kind's tasks in ``registry``)."""
    columns = list(REQUIRED_COLUMNS)
    for kind in kinds.all_kinds():
        n = max((t.n for t in registry.of_kind(kind.kind)), default=0)
        columns += [c for c in kind.csv_columns(n) if c not in columns]
    return columns


def label_columns(sample: SyntheticSample, mask_rel: str | None) -> dict[str, str]:
    """The CSV cells that carry the sample's label (a label file: its path)."""
    kind = kinds.kind_of(sample.task)
    label = f"../{mask_rel}" if kind.label_is_file else sample.label
    return kind.label_to_columns(sample.task, label)


def encode(image: np.ndarray, ext: str) -> bytes:
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(f".{ext}", bgr, params)
    if not ok:
        raise RuntimeError(f"could not encode a .{ext} image")
    return buf.tobytes()


def write_atomic(path: str, data: bytes) -> None:
    write_bytes(path, data)


@dataclass(frozen=True)
class _Job:
    task: Task
    split: str
    index: int
    seed: int
    digits: int
    roots: tuple[str, ...]  # roots receiving the image (test: also the labelled copy)
    label_roots: tuple[str, ...]  # roots receiving the mask (not an unlabelled test root)


def _run_job(job: _Job) -> tuple[dict[str, str], int]:
    """Draw one sample, write its files under each root; return its labelled CSV row."""
    cv2.setNumThreads(1)
    sample = synthesize(job.task, job.seed, job.split, job.index)
    image_rel, mask_rel = sample_paths(job.task, job.index, sample.ext, job.digits)
    image_bytes = encode(sample.image, sample.ext)
    mask_bytes = encode(sample.label, "png") if mask_rel else None
    files = 0
    for root in job.roots:
        write_atomic(os.path.join(root, image_rel), image_bytes)
        files += 1
        if mask_bytes is not None and root in job.label_roots:
            write_atomic(os.path.join(root, mask_rel), mask_bytes)
            files += 1
    row = {
        "task_id": job.task.task_id,
        "task_name": job.task.kind.csv_name,
        "num_classes": str(job.task.n),
        "image_path": f"../{image_rel}",
        **label_columns(sample, mask_rel),
    }
    return row, files


def _write_csv(path: str, rows: list[dict[str, str]], columns: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    write_atomic(path, buf.getvalue().encode("utf-8"))


def _unlabelled(row: dict[str, str], task: Task) -> dict[str, str]:
    """A test row without its label (segmentation keeps mask_path: it is where the
    prediction goes, but no file is there)."""
    keep = ("task_id", "task_name", "num_classes", "image_path", "mask_path")
    return {k: v for k, v in row.items() if k in keep}


def resolve_tasks(tasks, registry: TaskRegistry | None = None) -> TaskRegistry:
    """The registry (default FM_UIA 2026) restricted to ``tasks``, checked to be generatable."""
    registry = registry or fmuia2026()
    if tasks:
        unknown = [t for t in tasks if t not in registry]
        if unknown:
            raise DataError(f"unknown task id(s): {', '.join(unknown)}; known: {', '.join(registry.task_ids)}")
        registry = registry.subset(tasks)
    missing = [t.task_id for t in registry if t.task_id not in PROFILES]
    if missing:
        raise DataError(f"no synthetic generator for task(s) {', '.join(missing)}")
    return registry


def default_splits(per_task: int, val: int | None = None, test: int | None = None) -> dict[str, int]:
    """Train ``per_task``; val and test default to a quarter of it (at least 1)."""
    quarter = max(1, per_task // 4)
    return {"train": per_task, "val": quarter if val is None else val, "test": quarter if test is None else test}


def generate(
    out_dir: str,
    per_task: int = 20,
    seed: int = 0,
    splits: dict[str, int] | None = None,
    tasks: list[str] | None = None,
    workers: int | None = None,
    unlabelled_test: bool = False,
    overwrite: bool = False,
    registry: TaskRegistry | None = None,
) -> GenerationSummary:
    """Write a synthetic dataset: one data root per split under ``out_dir``.

    ``splits`` maps split name to samples per task (default: ``default_splits(per_task)``;
    a split of 0 is not written). With ``unlabelled_test`` the ``test`` root has its
    label columns empty and no masks, and ``test_labelled`` holds the same samples
    with labels. ``workers`` processes draw samples (default: up to 2)."""
    start = time.perf_counter()
    registry = resolve_tasks(tasks, registry)
    splits = {k: int(v) for k, v in (splits or default_splits(per_task)).items() if int(v) > 0}
    for name, n in splits.items():
        if n < 0 or not name or os.sep in name or name in (".", "..") or name == LABELLED_COPY:
            raise DataError(f"bad split {name!r}: {n}")
    if not splits:
        raise DataError("nothing to generate: every split has 0 samples")
    out_dir = os.path.abspath(out_dir)
    roots = {name: os.path.join(out_dir, name) for name in splits}
    labelled_copy = os.path.join(out_dir, LABELLED_COPY) if unlabelled_test and "test" in splits else None
    with claim_output(out_dir, "synth", "the dataset folder"):  # a second generator into it is refused
        for root in [*roots.values(), *([labelled_copy] if labelled_copy else [])]:
            folder = os.path.join(root, CSV_DIR)
            if not overwrite and os.path.isdir(folder) and any(f.endswith(".csv") for f in os.listdir(folder)):
                raise DataError(f"{folder} already holds a dataset; choose another folder or pass overwrite (--overwrite)")

        jobs = []
        for split, n in splits.items():
            digits = max(4, len(str(n)))
            if split == "test" and labelled_copy:
                targets, labelled = (roots[split], labelled_copy), (labelled_copy,)
            else:
                targets = labelled = (roots[split],)
            jobs += [_Job(task, split, i, int(seed), digits, targets, labelled) for task in registry for i in range(n)]

        workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(jobs)))
        if workers == 1:
            results = [_run_job(job) for job in jobs]
        else:
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            with ctx.Pool(workers) as pool:
                results = pool.map(_run_job, jobs, chunksize=max(1, len(jobs) // (workers * 8)))

        columns = csv_columns(registry)
        counts: dict[str, dict[str, int]] = {}
        files = sum(f for _, f in results)
        for split in splits:
            counts[split] = {}
            for task in registry:
                rows = [row for job, (row, _) in zip(jobs, results) if job.split == split and job.task is task]
                counts[split][task.task_id] = len(rows)
                name = f"{task.task_id}.csv"
                if split == "test" and labelled_copy:
                    _write_csv(os.path.join(labelled_copy, CSV_DIR, name), rows, columns)
                    rows = [_unlabelled(r, task) for r in rows]
                _write_csv(os.path.join(roots[split], CSV_DIR, name), rows, columns)
                files += 2 if split == "test" and labelled_copy else 1
        if labelled_copy:
            roots[LABELLED_COPY] = labelled_copy
        return GenerationSummary(
            out_dir=out_dir, seed=int(seed), roots=roots, counts=counts, seconds=time.perf_counter() - start,
            workers=workers, files=files, unlabelled_test=bool(labelled_copy), tasks=registry.task_ids,
        )
