"""Scoring a prediction folder against a data root, as the challenge does (docs/format.md, "Metrics").

Every labelled ground-truth row is either scored or listed as missing; every
prediction that matches no row is listed as extra. Each sample is scored by its kind
(``TaskKind.score_sample``, the same function training validation calls) and each task
aggregated by it (``TaskKind.task_result``). Samples whose prediction is a file (masks)
are scored in a process pool over chunks, each file read once.
"""
from __future__ import annotations

import importlib
import logging
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from fmuia import kinds
from fmuia.data.layout import read_layout
from fmuia.data.records import Entry
from fmuia.errors import DataError
from fmuia.evaluate.aggregate import Summary, TaskResult, summarise
from fmuia.evaluate.predictions import Extra, extra_masks, json_kinds, read_prediction_file
from fmuia.kinds.base import SampleScore
from fmuia.kinds.segmentation import files_saved_as_0_255, saved_as_0_255
from fmuia.tasks import Kind, Task, TaskRegistry, fmuia2026

__all__ = ["Evaluation", "Missing", "evaluate", "score_samples"]

log = logging.getLogger(__name__)

# Segmentation samples per pool job: large enough to amortise the transfer.
CHUNK = 16


@dataclass(frozen=True)
class Missing:
    """A labelled ground-truth row without a prediction."""

    task_id: str
    kind: Kind
    image_path: str
    expected_in: str  # the JSON file, or the mask file relative to the prediction folder

    def to_dict(self) -> dict:
        return {"task_id": self.task_id, "kind": self.kind.value, "image_path": self.image_path, "expected_in": self.expected_in}


@dataclass
class Evaluation:
    """Everything ``fmuia evaluate`` writes. ``samples`` holds one record per scored
    sample (task_id, image_path, score in [0, 1], and the kind's own details)."""

    data_root: str
    pred_dir: str
    registry: TaskRegistry
    tasks: list[TaskResult]
    summary: Summary
    counts: dict[str, dict[str, int]]
    samples: list[dict]
    missing: list[Missing] = field(default_factory=list)
    extra: list[Extra] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tasks_total: int = 0  # the tasks the score should cover: the registry's and the ground truth's

    def task(self, task_id: str) -> TaskResult:
        for r in self.tasks:
            if r.task_id == task_id:
                return r
        raise KeyError(task_id)


def _score_file_chunk(jobs: list[tuple[int, Task, Entry, str]]) -> list[tuple[int, SampleScore, tuple[str, ...]]]:
    """Pool job: (position, task, truth row, prediction file) -> the sample's score, and
    which of its two files ("truth", "prediction") look saved as 0/255."""
    out = []
    for position, task, entry, pred_file in jobs:
        owner = kinds.kind_of(task)
        try:
            truth = owner.truth(entry)
        except DataError as exc:  # the file alone does not say which row of the ground truth
            raise DataError(f"ground truth {entry.where} (task {entry.task_id}): {exc}") from None
        value, resized = owner.read_prediction(pred_file, truth)
        score = owner.score_sample(task, value, truth, owner.truth_size(entry, truth))
        score.resized = resized
        black_white = tuple(name for name, mask in (("truth", truth), ("prediction", value))
                            if saved_as_0_255(np.asarray(mask), task.num_classes))
        out.append((position, score, black_white))
    return out


class _FileScoring:
    """The per-file samples (masks), scored in ``workers`` processes from construction on,
    while this process scores the rest; ``results()`` waits for them. With one worker (or
    one chunk) they are scored in this process, when ``results()`` is called."""

    def __init__(self, jobs: list[tuple[int, Task, Entry, str]], workers: int) -> None:
        self.chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
        self.pool = None
        self.futures = []
        if workers > 1 and len(self.chunks) >= 2:
            self.pool = ProcessPoolExecutor(max_workers=min(workers, len(self.chunks)))
            self.futures = [self.pool.submit(_score_file_chunk, chunk) for chunk in self.chunks]

    def results(self) -> list[tuple[int, SampleScore, tuple[str, ...]]]:
        if self.pool is None:
            return [r for chunk in self.chunks for r in _score_file_chunk(chunk)]
        try:
            return [r for future in self.futures for r in future.result()]
        finally:
            self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def _import_in_background(modules: set[str]) -> threading.Thread | None:
    """Import ``modules`` in a daemon thread, so that a slow import (scikit-learn's, for
    the classification metrics) overlaps the mask scoring instead of following it.
    Started after the pool's processes are forked: a fork copies no thread, but it could
    copy an import lock that the thread holds."""
    if not modules:
        return None

    def run() -> None:
        for name in sorted(modules):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the use imports it again and reports the failure there
                pass

    thread = threading.Thread(target=run, name="fmuia-scoring-imports", daemon=True)
    thread.start()
    return thread


def score_samples(task: Task, rows: list[tuple[Entry, SampleScore]], samples: list[dict]) -> TaskResult:
    """A task's result from its scored samples; appends their ``samples.json`` records."""
    for entry, score in rows:
        samples.append({
            "task_id": task.task_id, "kind": task.kind.value, "image_path": entry.image_path,
            "score": score.score, **score.details,
        })
    return kinds.kind_of(task).task_result(task, [score for _, score in rows])


def _score_json_kinds(pred_dir: str, reg: TaskRegistry, labelled: list[Entry], keys: set, placed: dict,
                      missing: list, extra: list[Extra], warnings: list[str]) -> dict[int, SampleScore]:
    """Score the kinds whose predictions are one JSON file each, matched by (task_id,
    image_path); appends to ``placed``, ``missing``, ``extra`` and ``warnings``."""
    files = {}
    for owner in json_kinds():
        pf = read_prediction_file(pred_dir, owner.kind, reg, keys)
        files[owner.name] = pf
        if pf is None and reg.of_kind(owner.kind):
            warnings.append(f"{owner.prediction_file} not found: every {owner.name} sample is missing")
        if pf is not None:
            extra.extend(pf.extras)
    scored: dict[int, SampleScore] = {}
    for position, e in enumerate(labelled):
        owner, task = kinds.kind_of(e.kind), reg[e.task_id]
        if owner.prediction_file is None:
            continue
        pf = files[owner.name]
        value = None if pf is None else pf.get(e.task_id, e.image_path)
        if value is None:
            missing.append((position, Missing(e.task_id, e.kind, e.image_path, owner.prediction_file)))
            continue
        truth = owner.truth(e)
        scored[position] = owner.score_sample(task, value, truth, owner.truth_size(e, truth))
        placed[e.task_id].append((position, e))
    return scored


def evaluate(data_root: str, pred_dir: str, workers: int = 2, registry: TaskRegistry | None = None,
             partial: bool = False) -> Evaluation:
    """Score ``pred_dir`` (a submission folder, docs/format.md "Submission files") against ``data_root``.

    ``workers`` processes score the segmentation masks (1: in this process).
    ``registry`` is the base task registry passed to ``read_layout``. A ground truth
    with problems (a CSV that cannot be parsed, rows that cannot be read) is a
    ``DataError`` before anything is scored: a score over what is left would look
    complete. ``partial`` scores the readable rows instead, each problem a warning.
    """
    if not os.path.isdir(pred_dir):
        raise DataError(f"{pred_dir}: prediction folder not found")
    layout = read_layout(data_root, registry)
    if layout.problems and not partial:
        shown = "\n  ".join(str(p) for p in layout.problems[:20])
        more = f"\n  ... and {len(layout.problems) - 20} more" if len(layout.problems) > 20 else ""
        raise DataError(f"ground truth {data_root}: {len(layout.problems)} problem(s) in the CSVs, nothing was scored "
                        f"(fix them, or pass --partial to score the readable rows and list these as warnings):"
                        f"\n  {shown}{more}")
    warnings = [f"ground truth: {p}" for p in layout.problems]
    reg = layout.registry
    known = registry if registry is not None else fmuia2026()
    tasks_total = len(set(known.task_ids) | set(reg.task_ids))
    labelled = [e for e in layout.entries if e.labelled]
    counts = {t.task_id: {"rows": 0, "labelled": 0, "scored": 0, "missing": 0, "extra": 0} for t in reg}
    for e in layout.entries:
        counts[e.task_id]["rows"] += 1
    for e in labelled:
        counts[e.task_id]["labelled"] += 1

    missing: list[tuple[int, Missing]] = []  # (row position, what is missing): listed in row order
    extra: list[Extra] = []
    keys = {(e.task_id, e.image_path) for e in labelled}

    # Kinds with a file per sample (masks) are scored in the pool, started first; this
    # process meanwhile scores the others and imports what their task results need.
    placed: dict[str, list[tuple[int, Entry]]] = {t.task_id: [] for t in reg}
    file_jobs = []
    expected_files = set()
    for position, e in enumerate(labelled):
        owner = kinds.kind_of(e.kind)
        if owner.prediction_file is None:
            rel = owner.prediction_path(e)
            expected_files.add(rel)
            pred_file = os.path.join(pred_dir, rel)
            if os.path.isfile(pred_file):
                file_jobs.append((position, reg[e.task_id], e, pred_file))
                placed[e.task_id].append((position, e))
            else:
                missing.append((position, Missing(e.task_id, e.kind, e.image_path, rel)))
    file_scoring = _FileScoring(file_jobs, workers)
    try:
        preload = _import_in_background({m for t in reg for m in kinds.kind_of(t).scoring_imports})
        scored = _score_json_kinds(pred_dir, reg, labelled, keys, placed, missing, extra, warnings)
        extra.extend(extra_masks(pred_dir, expected_files))
        black_white: dict[str, list[int]] = {"truth": [], "prediction": []}
        for position, score, flags in file_scoring.results():
            scored[position] = score
            for name in flags:
                black_white[name].append(position)
    finally:
        file_scoring.close()
    if preload is not None:
        preload.join()
    missing = [m for _, m in sorted(missing, key=lambda item: item[0])]
    resized = sum(1 for position, *_ in file_jobs if scored[position].resized)
    if resized:
        warnings.append(f"{resized} predicted mask(s) differ in size from the ground truth and were nearest-resized")
    by_position = {position: (e, pred_file) for position, _t, e, pred_file in file_jobs}
    if black_white["truth"]:
        files = [by_position[p][0].mask_file for p in sorted(black_white["truth"])]
        warnings.append("ground truth: " + files_saved_as_0_255("mask(s)", files))
    if black_white["prediction"]:
        files = [by_position[p][1] for p in sorted(black_white["prediction"])]
        warnings.append(files_saved_as_0_255("predicted mask(s)", files))

    samples: list[dict] = []
    results = []
    for t in reg:
        result = score_samples(t, [(e, scored[position]) for position, e in placed[t.task_id]], samples)
        counts[t.task_id]["scored"] = result.num_samples
        results.append(result)
        warnings.extend(f"{t.task_id}: {note}" for note in result.notes if note != "no scored samples")
    for m in missing:
        counts[m.task_id]["missing"] += 1
    for x in extra:
        if x.task_id in counts:
            counts[x.task_id]["extra"] += 1
    for task_id, c in counts.items():
        if c["missing"]:
            warnings.append(f"{task_id}: {c['missing']} of {c['labelled']} labelled samples have no prediction (listed in missing.csv)")
        if c["labelled"] == 0:
            warnings.append(f"{task_id}: no labelled samples in the ground truth")
    if extra:
        warnings.append(f"{len(extra)} prediction(s) match no labelled ground-truth row (listed in extra.csv)")
    for w in warnings:
        log.warning("warning: %s", w)
    return Evaluation(
        data_root=data_root, pred_dir=pred_dir, registry=reg, tasks=results, summary=summarise(results),
        counts=counts, samples=samples, missing=missing, extra=extra, warnings=warnings, tasks_total=tasks_total,
    )
