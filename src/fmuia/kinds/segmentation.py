"""Segmentation: a class-id mask per image (CSV ``mask_path``), predicted as a PNG per row.

Label: ``np.ndarray (H, W) uint8`` of class ids 0..n-1, read from ``mask_path``.
Target: ``LongTensor (S, S)`` (the mask nearest-resized with the image).
Head ``conv``: 1x1 conv to ``n`` logits upsampled to the input size; loss: multiclass Dice
(segmentation-models-pytorch's ``DiceLoss``: per class over the batch, classes absent
from the targets contribute nothing) plus ``ce_weight`` (default 0) times cross-entropy.
Submission: ``Segmentation/...`` PNGs at the CSV ``mask_path`` without leading ``../``.
Score: per class Dice and Hausdorff distance (``fmuia.metrics.scores.segmentation_scores``);
the task's DSC and HD are the class means over the samples, background excluded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np

from fmuia.io.images import read_mask, read_predicted_mask
from fmuia.io.paths import submission_mask_path
from fmuia.errors import DataError
from fmuia.metrics.results import TaskResult, empty_result
from fmuia.metrics.scores import segmentation_scores
from fmuia.kinds.base import FPN, LabelCells, LabelError, SampleScore, TaskKind, as_numpy
from fmuia.kinds.drawing import PALETTE, PREDICTED, TRUTH, contours, thumbnail
from fmuia.tasks import Task

if TYPE_CHECKING:
    import torch

__all__ = ["SegmentationKind", "SegmentationResult", "read_prediction_mask", "segmentation_result"]

SEGMENTATION_DIR = "Segmentation"


@dataclass
class SegmentationResult:
    """``mask``: (H, W) uint8 class ids at the original size. ``probabilities``:
    (n, H, W) float32 class probabilities at the original size, when asked for."""

    task_id: str
    mask: np.ndarray
    probabilities: Optional[np.ndarray] = None


# The commonest mask mistake: a two-class mask saved black/white (0/255) instead of as
# class ids 0/1; its 255s are no class at all, so the foreground silently vanishes.
FIX_0_255 = "divide it by 255 (save class ids 0/1, not black/white)"


def saved_as_0_255(mask: np.ndarray, num_classes: int) -> bool:
    """Whether a two-class mask holds exactly the values 0 and 255."""
    if num_classes != 2 or not mask.size or int(mask.max()) != 255:
        return False
    return np.unique(mask).tolist() == [0, 255]


def files_saved_as_0_255(what: str, files: list[str], shown: int = 3) -> str:
    """The warning for ``files`` (masks of two-class tasks) saved as 0/255."""
    more = f" and {len(files) - shown} more" if len(files) > shown else ""
    return (f"{len(files)} {what} of two-class task(s) hold exactly the values 0 and 255 (scored as background "
            f"and no class): {', '.join(files[:shown])}{more}; {FIX_0_255}")


def read_prediction_mask(path: str, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """A predicted class-id mask at ``shape`` (h, w): nearest-resized when it has
    another size. Returns the mask and whether it was resized. The file must be what
    the submission format asks for (8-bit, one channel): anything else is refused."""
    mask = read_predicted_mask(path)
    if mask.shape == tuple(shape):
        return mask, False
    return cv2.resize(mask, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST), True


def _perturb_mask(mask: np.ndarray, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Shifted, eroded or dilated, sometimes a class lost: a realistic imperfect mask."""
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


def segmentation_result(task: Task, dice: np.ndarray, hd: np.ndarray, diagonals: np.ndarray) -> TaskResult:
    """``dice`` and ``hd`` are (N, n) per-sample, per-class scores; ``diagonals`` (N,).

    Each class's scores are averaged over the samples; DSC and HD are the means over
    classes 1..n-1 (background excluded, as the challenge does). The task score is
    ``(DSC + 1 - nHD) / 2`` with nHD each distance divided by its image diagonal."""
    dice = np.asarray(dice, dtype=np.float64).reshape(-1, task.num_classes)
    hd = np.asarray(hd, dtype=np.float64).reshape(-1, task.num_classes)
    if len(dice) == 0:
        return empty_result(task, SegmentationKind.metric_names + ("HD_norm",))
    diagonals = np.asarray(diagonals, dtype=np.float64).reshape(-1, 1)
    nhd = np.minimum(hd / diagonals, 1.0)
    dice_c, hd_c, nhd_c = dice.mean(axis=0), hd.mean(axis=0), nhd.mean(axis=0)
    dsc, mean_hd, mean_nhd = float(dice_c[1:].mean()), float(hd_c[1:].mean()), float(nhd_c[1:].mean())
    per_class = {
        str(c): {"DSC": float(dice_c[c]), "HD": float(hd_c[c]), "HD_norm": float(nhd_c[c])} for c in range(task.num_classes)
    }
    return TaskResult(
        task.task_id, task.kind, task.n, len(dice),
        {"DSC": dsc, "HD": mean_hd, "HD_norm": mean_nhd},
        score=(dsc + 1.0 - mean_nhd) / 2.0,
        per_class=per_class,
    )


def class_map(decoded: "np.ndarray | torch.Tensor") -> np.ndarray:
    """uint8 ``(B, H, W)`` class ids: the argmax over the class axis of ``(B, C, H, W)``
    scores (the first class among equal scores). A tensor on a GPU is reduced there and
    only the class maps move; on the CPU NumPy's argmax, several times faster than
    torch's over a middle axis of a few classes (the same ids: both keep the first maximum)."""
    if hasattr(decoded, "detach") and decoded.device.type != "cpu":  # a torch tensor on a GPU
        return decoded.argmax(dim=1).byte().cpu().numpy()
    return np.argmax(as_numpy(decoded, None), axis=1).astype(np.uint8)


class SegmentationKind(TaskKind):
    name = "segmentation"
    csv_name = "segmentation"
    min_n = 2
    metric_names = ("DSC", "HD")
    lower_is_better = frozenset({"HD", "HD_norm"})
    pixel_metrics = frozenset({"HD"})
    prediction_file = None  # one PNG per row
    prediction_dir = SEGMENTATION_DIR
    default_route = FPN
    label_columns = ("mask_path",)
    label_is_file = True
    official_selection_metrics = ("DSC",)
    default_head = "conv"

    def register_heads(self) -> None:
        from fmuia.kinds.segmentation_heads import SegmentationHead, SegmentationTowerHead, segmentation_dice

        self.add_head("conv", SegmentationHead, segmentation_dice, default=True)
        self.add_head("tower", SegmentationTowerHead, segmentation_dice)

    # -- CSV -------------------------------------------------------------------
    def parse_label(self, row, task, header, folder):
        mask_path = (row.get("mask_path") or "").strip()
        if not mask_path:
            raise LabelError("segmentation row has no mask_path")
        mask_file = os.path.normpath(os.path.join(folder, mask_path))
        return LabelCells(mask_path=mask_path, mask_file=mask_file, has_mask_label=os.path.isfile(mask_file))

    def label_to_columns(self, task, label):
        """``label`` is the mask's path relative to ``csv_files/``."""
        return {"mask_path": str(label)}

    def labelled(self, entry):
        return entry.mask_file is not None and entry.has_mask_label

    # -- checks ----------------------------------------------------------------
    def load_label(self, entry, size=None):
        if not entry.has_mask_label:
            return None
        mask = read_mask(entry.mask_file)
        if size is not None and mask.shape != tuple(size):
            raise DataError(f"mask {entry.mask_path!r} is {mask.shape} but its image is {tuple(size)}")
        return mask

    def check_label(self, entry, task, size, require_labels):
        reasons: list[str] = []
        if not entry.has_mask_label:
            if require_labels:
                reasons.append(f"mask {entry.mask_path!r}: file not found")
            return reasons, []
        try:
            mask = read_mask(entry.mask_file)
        except DataError as exc:
            text = str(exc)
            short = text[len(entry.mask_file) + 2:] if text.startswith(entry.mask_file + ": ") else text
            return [f"mask {entry.mask_path!r}: {short}"], []
        h, w = size
        if mask.shape != (h, w):
            reasons.append(f"mask {entry.mask_path!r} is {mask.shape[0]}x{mask.shape[1]} but its image is {h}x{w} (h x w)")
        values = np.unique(mask)
        bad = values[values >= task.num_classes]
        if bad.size:
            fix = f"; {FIX_0_255}" if saved_as_0_255(mask, task.num_classes) else ""
            reasons.append(f"mask {entry.mask_path!r} has value(s) {bad.tolist()} >= num_classes {task.num_classes}{fix}")
        return reasons, [int(v) for v in values if v < task.num_classes]

    def class_range(self, task):
        return range(1, task.num_classes)

    # -- targets ---------------------------------------------------------------
    def transform_inputs(self, label):
        return {"mask": np.asarray(label)}

    def encode_target(self, out, label, size):
        import torch

        return torch.from_numpy(np.asarray(out["mask"], dtype=np.int64))

    def resized_label(self, out, label):
        return np.asarray(out["mask"], dtype=np.uint8)

    # -- prediction ------------------------------------------------------------
    def flip_back(self, decoded):
        return decoded[..., ::-1]

    def results(self, task, decoded, sizes, probabilities=False):
        class_maps = class_map(decoded)
        probs = as_numpy(decoded, np.float32) if probabilities else None
        out = []
        for i, (h, w) in enumerate(sizes):
            # Nearest-neighbour back to the original size (the submission contract).
            mask = cv2.resize(class_maps[i], (w, h), interpolation=cv2.INTER_NEAREST)
            prob = None
            if probs is not None:
                prob = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs[i]])
            out.append(SegmentationResult(task.task_id, np.ascontiguousarray(mask, dtype=np.uint8), prob))
        return out

    # -- submission ------------------------------------------------------------
    def prediction_path(self, entry):
        return submission_mask_path(entry.mask_path)

    def read_prediction(self, path, truth):
        return read_prediction_mask(path, truth.shape)

    def prediction_bytes(self, result):
        ok, buf = cv2.imencode(".png", result.mask)
        if not ok:  # pragma: no cover - OpenCV fails only on invalid input
            raise RuntimeError("PNG encoding failed")
        return buf.tobytes()

    def truth_result(self, task, entry, noise, rng):
        mask = read_mask(entry.mask_file)
        if noise:
            mask = _perturb_mask(mask, task.num_classes, noise, rng)
        return SegmentationResult(task.task_id, mask)

    def prediction_value(self, task, result):
        # A PNG holds the uint8 mask exactly: the value is the result's mask itself.
        return result.mask

    # -- scoring ---------------------------------------------------------------
    def score_sample(self, task, value, truth, size):
        s = segmentation_scores(np.asarray(value), np.asarray(truth), task.num_classes)
        dice, hd = s.dice, s.hd
        score = float((dice[1:].mean() + 1.0 - min(hd[1:].mean() / s.diagonal, 1.0)) / 2.0)
        return SampleScore(score, {"DSC": float(dice[1:].mean()), "HD": float(hd[1:].mean())}, (dice, hd, s.diagonal))

    def task_result(self, task, scores):
        if not scores:
            return segmentation_result(task, np.zeros((0, task.num_classes)), np.zeros((0, task.num_classes)), np.zeros(0))
        dice, hd, diag = zip(*(s.data for s in scores))
        return segmentation_result(task, np.stack(dice), np.stack(hd), np.array(diag))

    chance_per_sample = True

    def chance_results(self, task, labels, sizes):
        """An all-background mask of each image's size."""
        return [SegmentationResult(task.task_id, np.zeros(tuple(size), dtype=np.uint8)) for size in sizes]

    # -- drawing ---------------------------------------------------------------
    def draw_label(self, image, task, label, thickness):
        for c in range(1, task.num_classes):
            region = label == c
            if not region.any():
                continue
            colour = PALETTE[(c - 1) % len(PALETTE)]
            image[region] = (0.6 * image[region] + 0.4 * colour).astype(np.uint8)
            found, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(image, found, -1, tuple(int(v) for v in colour), thickness)

    def caption(self, task, label, note=""):
        present = sorted(int(c) for c in np.unique(label) if c)
        return f"mask classes {present}"

    def draw_prediction(self, ax, image, truth, value, record):
        canvas, _ = thumbnail(image)
        contours(canvas, truth, TRUTH)
        contours(canvas, value, PREDICTED)
        ax.imshow(canvas)
        ax.set_title(f"DSC {float(record['DSC']):.3f}  HD {float(record['HD']):.1f}", fontsize=9)
