"""A submission made from the ground truth itself, exact or perturbed.

Scoring the exact one must give perfect scores (Dice 1, HD 0, IoU 1, MRE 0,
accuracy 1), which checks the scorer and the submission layout end to end; the
perturbed one (shifted and eroded masks, jittered boxes and points, noisy
probabilities, some predictions dropped) gives realistic imperfect scores for
timing the scorer and for trying the report.
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np

from fmuia.io.images import image_size, read_mask
from fmuia.data.layout import read_layout
from fmuia.io.atomic import write_text
from fmuia.evaluate.predictions import PREDICTION_FILES, submission_mask_path
from fmuia.tasks import Kind

__all__ = ["write_truth_submission"]


def _perturb_mask(mask: np.ndarray, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    limit = int(round(noise * 12))
    if limit:
        dy, dx = rng.integers(-limit, limit + 1, size=2)
        mask = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
    size = int(rng.integers(0, limit + 1)) * 2 + 1
    if size > 1:
        op = cv2.erode if rng.random() < 0.5 else cv2.dilate
        mask = op(mask, np.ones((size, size), np.uint8))
    if n > 2 and rng.random() < noise * 0.3:  # lose one foreground class entirely
        mask = np.where(mask == rng.integers(1, n), 0, mask).astype(np.uint8)
    return mask


def _probs(label: int, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    logits = np.zeros(n)
    logits[label] = 4.0
    logits += rng.normal(0.0, 6.0 * noise, size=n)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def write_truth_submission(data_root: str, out_dir: str, noise: float = 0.0, drop: float = 0.0, seed: int = 0) -> int:
    """Write a submission for every labelled row of ``data_root`` into ``out_dir``.

    ``noise`` in [0, 1] scales every perturbation (0: the truth exactly); ``drop`` is
    the fraction of rows left without a prediction. Returns the predictions written.
    """
    layout = read_layout(data_root)
    rng = np.random.default_rng(seed)
    lists: dict[Kind, list] = {kind: [] for kind in PREDICTION_FILES}
    written = 0
    for e in layout.entries:
        if not e.labelled or rng.random() < drop:
            continue
        n = layout.registry[e.task_id].n
        base = {"image_path": e.image_path, "task_id": e.task_id}
        if e.kind is Kind.SEGMENTATION:
            mask = read_mask(e.mask_file)
            if noise:
                mask = _perturb_mask(mask, n, noise, rng)
            path = os.path.join(out_dir, submission_mask_path(e.mask_path))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not cv2.imwrite(path, mask):
                raise OSError(f"{path}: could not write the mask")
        elif e.kind is Kind.CLASSIFICATION:
            probs = _probs(int(e.label), n, noise, rng)
            lists[e.kind].append({**base, "predicted_class": int(probs.argmax()), "predicted_probs": probs.tolist()})
        else:
            h, w = image_size(e.image_file)
            scale = np.array([w, h], dtype=np.float64)
            if e.kind is Kind.DETECTION:
                box = e.label + rng.normal(0.0, noise * 0.1, size=4) * np.tile(e.label[2:] - e.label[:2], 2)
                lists[e.kind].append({**base, "bbox_normalized": (box / np.tile(scale, 2)).tolist(), "bbox_pixels": box.tolist()})
            else:
                pts = e.label + rng.normal(0.0, noise * 20.0, size=e.label.shape)
                lists[e.kind].append({
                    **base,
                    "predicted_points_normalized": (pts / scale).ravel().tolist(),
                    "predicted_points_pixels": pts.ravel().tolist(),
                })
        written += 1
    os.makedirs(out_dir, exist_ok=True)
    for kind, items in lists.items():
        if items:
            write_text(os.path.join(out_dir, PREDICTION_FILES[kind]), json.dumps(items, indent=1))
    return written
