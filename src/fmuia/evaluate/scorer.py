"""Scoring a prediction folder against a data root, as the challenge does (docs/format.md, "Metrics").

Every labelled ground-truth row is either scored or listed as missing; every
prediction that matches no row is listed as extra. Segmentation samples are scored
in a process pool over chunks, each mask read once.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from fmuia.io.images import image_size, read_mask
from fmuia.data.layout import read_layout
from fmuia.data.records import Entry
from fmuia.errors import DataError
from fmuia.evaluate.aggregate import (
    SAMPLE_SCORE,
    Summary,
    TaskResult,
    classification_result,
    detection_result,
    keypoint_result,
    segmentation_result,
    summarise,
)
from fmuia.evaluate.metrics import box_iou, image_diagonal, radial_errors, segmentation_scores
from fmuia.evaluate.predictions import (
    PREDICTION_FILES,
    Extra,
    extra_masks,
    read_prediction_file,
    read_prediction_mask,
    submission_mask_path,
)
from fmuia.tasks import Kind, Task, TaskRegistry

__all__ = ["Evaluation", "Missing", "evaluate"]

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

    def task(self, task_id: str) -> TaskResult:
        for r in self.tasks:
            if r.task_id == task_id:
                return r
        raise KeyError(task_id)


def _score_mask_chunk(jobs: list[tuple[int, str, str, int]]) -> list[tuple[int, np.ndarray, np.ndarray, float, bool]]:
    """Pool job: (position, truth file, prediction file, n) -> per-class scores."""
    out = []
    for position, gt_file, pred_file, n in jobs:
        gt = read_mask(gt_file)
        pred, resized = read_prediction_mask(pred_file, gt.shape)
        s = segmentation_scores(pred, gt, n)
        out.append((position, s.dice, s.hd, s.diagonal, resized))
    return out


def _score_masks(jobs: list[tuple[int, str, str, int]], workers: int) -> list:
    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    if workers <= 1 or len(chunks) < 2:
        return [r for chunk in chunks for r in _score_mask_chunk(chunk)]
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
        return [r for part in pool.map(_score_mask_chunk, chunks) for r in part]


class _TaskScorer:
    """Collects one task's matched samples, then turns them into a TaskResult."""

    def __init__(self, task: Task):
        self.task = task
        self.entries: list[Entry] = []
        self.values: list = []

    def add(self, entry: Entry, value) -> None:
        self.entries.append(entry)
        self.values.append(value)


def _segmentation(scorer: _TaskScorer, outcomes: dict[int, tuple], samples: list[dict]) -> TaskResult:
    task = scorer.task
    rows = [outcomes[position] for position in scorer.values]
    dice = np.array([r[1] for r in rows]).reshape(-1, task.n)
    hd = np.array([r[2] for r in rows]).reshape(-1, task.n)
    diag = np.array([r[3] for r in rows])
    for e, d, h, g in zip(scorer.entries, dice, hd, diag):
        samples.append({
            "task_id": task.task_id, "kind": task.kind.value, "image_path": e.image_path,
            "score": SAMPLE_SCORE[task.kind](d, h, g), "DSC": float(d[1:].mean()), "HD": float(h[1:].mean()),
        })
    return segmentation_result(task, dice, hd, diag)


def _classification(scorer: _TaskScorer, samples: list[dict]) -> TaskResult:
    task = scorer.task
    y_true = np.array([e.label for e in scorer.entries], dtype=np.int64)
    y_pred = np.array([v.predicted_class for v in scorer.values], dtype=np.int64)
    probs = np.array([v.probs for v in scorer.values], dtype=np.float64).reshape(-1, task.n)
    for e, v in zip(scorer.entries, scorer.values):
        samples.append({
            "task_id": task.task_id, "kind": task.kind.value, "image_path": e.image_path,
            "score": SAMPLE_SCORE[task.kind](v.probs, e.label), "true": int(e.label), "pred": v.predicted_class,
            "probs": [round(float(p), 6) for p in v.probs],
        })
    return classification_result(task, y_true, y_pred, probs)


def _detection(scorer: _TaskScorer, samples: list[dict]) -> TaskResult:
    task = scorer.task
    if not scorer.entries:
        return detection_result(task, [])
    ious = box_iou(np.array(scorer.values), np.array([e.label for e in scorer.entries]))
    for e, v, iou in zip(scorer.entries, scorer.values, ious):
        samples.append({
            "task_id": task.task_id, "kind": task.kind.value, "image_path": e.image_path,
            "score": SAMPLE_SCORE[task.kind](iou), "IoU": float(iou), "box": [float(x) for x in v],
        })
    return detection_result(task, ious)


def _keypoints(scorer: _TaskScorer, samples: list[dict]) -> TaskResult:
    task = scorer.task
    if not scorer.entries:
        return keypoint_result(task, [], [])
    errors = radial_errors(np.array(scorer.values), np.array([e.label for e in scorer.entries]))
    # The diagonal normalises the challenge score; read from the header only.
    diagonals = np.array([image_diagonal(image_size(e.image_file)) for e in scorer.entries])
    for e, v, err, g in zip(scorer.entries, scorer.values, errors, diagonals):
        samples.append({
            "task_id": task.task_id, "kind": task.kind.value, "image_path": e.image_path,
            "score": SAMPLE_SCORE[task.kind](err, g), "MRE": float(err), "points": v.tolist(),
        })
    return keypoint_result(task, errors, diagonals)


_RESULT_OF_KIND = {Kind.CLASSIFICATION: _classification, Kind.DETECTION: _detection, Kind.KEYPOINTS: _keypoints}


def evaluate(data_root: str, pred_dir: str, workers: int = 2, registry: TaskRegistry | None = None) -> Evaluation:
    """Score ``pred_dir`` (a submission folder, docs/format.md "Submission files") against ``data_root``.

    ``workers`` processes score the segmentation masks (1: in this process).
    ``registry`` is the base task registry passed to ``read_layout``.
    """
    if not os.path.isdir(pred_dir):
        raise DataError(f"{pred_dir}: prediction folder not found")
    layout = read_layout(data_root, registry)
    warnings = [f"ground truth: {p}" for p in layout.problems]
    reg = layout.registry
    labelled = [e for e in layout.entries if e.labelled]
    counts = {t.task_id: {"rows": 0, "labelled": 0, "scored": 0, "missing": 0, "extra": 0} for t in reg}
    for e in layout.entries:
        counts[e.task_id]["rows"] += 1
    for e in labelled:
        counts[e.task_id]["labelled"] += 1

    scorers = {t.task_id: _TaskScorer(t) for t in reg}
    missing: list[Missing] = []
    extra: list[Extra] = []
    keys = {(e.task_id, e.image_path) for e in labelled}

    # JSON kinds: one file each, matched by (task_id, image_path).
    files = {}
    for kind in PREDICTION_FILES:
        pf = read_prediction_file(pred_dir, kind, reg, keys)
        files[kind] = pf
        if pf is None and reg.of_kind(kind):
            warnings.append(f"{PREDICTION_FILES[kind]} not found: every {kind.value} sample is missing")
        if pf is not None:
            extra.extend(pf.extras)

    mask_jobs = []
    expected_masks = set()
    for position, e in enumerate(labelled):
        if e.kind is Kind.SEGMENTATION:
            rel = submission_mask_path(e.mask_path)
            expected_masks.add(rel)
            pred_file = os.path.join(pred_dir, rel)
            if os.path.isfile(pred_file):
                mask_jobs.append((position, e.mask_file, pred_file, reg[e.task_id].n))
                scorers[e.task_id].add(e, position)
            else:
                missing.append(Missing(e.task_id, e.kind, e.image_path, rel))
            continue
        pf = files[e.kind]
        value = None if pf is None else pf.get(e.task_id, e.image_path)
        if value is None:
            missing.append(Missing(e.task_id, e.kind, e.image_path, PREDICTION_FILES[e.kind]))
        else:
            scorers[e.task_id].add(e, value)
    extra.extend(extra_masks(pred_dir, expected_masks))

    outcomes = {r[0]: r for r in _score_masks(mask_jobs, workers)}
    resized = sum(1 for r in outcomes.values() if r[4])
    if resized:
        warnings.append(f"{resized} predicted mask(s) differ in size from the ground truth and were nearest-resized")

    samples: list[dict] = []
    results = []
    for t in reg:
        s = scorers[t.task_id]
        if t.kind is Kind.SEGMENTATION:
            result = _segmentation(s, outcomes, samples)
        else:
            result = _RESULT_OF_KIND[t.kind](s, samples)
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
        counts=counts, samples=samples, missing=missing, extra=extra, warnings=warnings,
    )
