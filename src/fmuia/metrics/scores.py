"""Metric functions of the challenge scoring contract: numpy in, floats out.

These are pure functions with no file access, so the trainer can validate on
in-memory predictions with exactly the numbers ``fmuia evaluate`` writes. The task
kinds import them too, which puts this module on the prediction path: it must stay
free of training and reporting dependencies (scikit-learn is imported only by the
classification metrics, which prediction never calls).

Conventions (the challenge's, see docs/format.md, section "Metrics"):

* segmentation masks are 2-D integer arrays of class ids at the ground truth's size;
  Dice is 1 when prediction and truth are both empty; the Hausdorff distance is 0
  when both are empty and the image diagonal ``sqrt(h^2 + w^2)`` when exactly one is;
* boxes are ``[x_min, y_min, x_max, y_max]`` in pixels, taken as given (an inverted
  predicted box is neither clipped nor reordered), IoU 0 when the union is 0;
* points are ``(K, 2)`` arrays of ``[x, y]`` pixels.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = [
    "ClassificationMetrics",
    "SegmentationScores",
    "box_iou",
    "classification_metrics",
    "dice",
    "dice_per_class",
    "directed_hausdorff",
    "hausdorff",
    "hausdorff_per_class",
    "image_diagonal",
    "radial_errors",
    "segmentation_scores",
]


def image_diagonal(shape: tuple[int, ...]) -> float:
    """``sqrt(h^2 + w^2)`` of a (h, w, ...) shape: the Hausdorff distance charged for a
    class present in only one of prediction and truth."""
    return math.hypot(int(shape[0]), int(shape[1]))


# -- segmentation ---------------------------------------------------------------

def _check_masks(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.ndim != 2 or gt.ndim != 2:
        raise ValueError(f"masks must be 2-D, got {pred.shape} and {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size; resize the prediction first")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice ``2|A & B| / (|A| + |B|)`` of two boolean masks; 1.0 when both are empty."""
    sizes = np.count_nonzero(a) + np.count_nonzero(b)
    if sizes == 0:
        return 1.0
    return 2.0 * np.count_nonzero(a & b) / sizes


def dice_per_class(pred: np.ndarray, gt: np.ndarray, n: int) -> np.ndarray:
    """Dice of every class 0..n-1 (shape (n,)); 1.0 for a class absent from both.
    Ids >= n belong to no class."""
    _check_masks(pred, gt)
    return np.array([dice(pred == c, gt == c) for c in range(n)], dtype=np.float64)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1), half-open, of the True pixels; None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _inner_boundary(b: np.ndarray) -> np.ndarray:
    """Pixels of ``b`` with a 4-neighbour inside the image that is not in ``b``.

    The pixel of ``b`` nearest to any pixel outside ``b`` is always one of these
    (from any other pixel of ``b`` a unit step towards the query stays in ``b`` and
    is strictly closer), so distances to ``b`` need only its inner boundary.
    """
    edge = np.zeros_like(b)
    edge[1:, :] |= ~b[:-1, :]
    edge[:-1, :] |= ~b[1:, :]
    edge[:, 1:] |= ~b[:, :-1]
    edge[:, :-1] |= ~b[:, 1:]
    return b & edge


def directed_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """``max over pixels p of a of min over pixels q of b of |p - q|`` (exact, Euclidean).

    Both masks must be non-empty boolean arrays of one shape. Only pixels of ``a``
    outside ``b`` contribute, and their nearest ``b`` pixel lies on ``b``'s inner
    boundary, so the distance transform runs on the window spanning just those
    pixels and that boundary, not on the whole image.
    """
    outside = a & ~b
    box_out = _bbox(outside)
    if box_out is None:  # a is inside b
        return 0.0
    # b's inner boundary lies within one pixel of b's complement, and every non-b
    # neighbour it needs lies inside that complement's box, so the window is exact.
    box_not_b = _bbox(~b)
    h, w = b.shape
    r0, r1 = max(box_not_b[0] - 1, 0), min(box_not_b[1] + 1, h)
    c0, c1 = max(box_not_b[2] - 1, 0), min(box_not_b[3] + 1, w)
    boundary = np.zeros_like(b)
    boundary[r0:r1, c0:c1] = _inner_boundary(b[r0:r1, c0:c1])
    box_bd = _bbox(boundary)
    top = min(box_out[0], box_bd[0])
    bottom = max(box_out[1], box_bd[1])
    left = min(box_out[2], box_bd[2])
    right = max(box_out[3], box_bd[3])
    window_b = boundary[top:bottom, left:right]
    window_out = outside[top:bottom, left:right]
    # OpenCV's exact (Felzenszwalb) Euclidean transform is several times faster than
    # SciPy's but returns float32: it only picks the candidates for the maximum,
    # whose distances are then recomputed exactly in float64 from b's boundary.
    approx = cv2.distanceTransform((~window_b).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    approx[~window_out] = -1.0
    top_value = float(approx.max())
    candidates = np.argwhere(approx >= top_value * (1.0 - 1e-4) - 1e-3).astype(np.float64)
    targets = np.argwhere(window_b).astype(np.float64)
    best = 0.0
    step = max(1, _PAIR_BUDGET // len(targets))
    for start in range(0, len(candidates), step):
        chunk = candidates[start : start + step]
        sq = ((chunk[:, None, :] - targets[None, :, :]) ** 2).sum(axis=2)
        best = max(best, float(sq.min(axis=1).max()))
    return math.sqrt(best)


# Candidate-to-boundary pairs per block of the exact recomputation (bounds memory).
_PAIR_BUDGET = 1 << 20


def hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Hausdorff distance in pixels between two boolean masks of one shape,
    over all their pixels: 0 when both are empty, the image diagonal when exactly one is."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} and {b.shape}")
    has_a, has_b = bool(a.any()), bool(b.any())
    if not has_a and not has_b:
        return 0.0
    if has_a != has_b:
        return image_diagonal(a.shape)
    return max(directed_hausdorff(a, b), directed_hausdorff(b, a))


def hausdorff_per_class(pred: np.ndarray, gt: np.ndarray, n: int) -> np.ndarray:
    """Hausdorff distance of every class 0..n-1 (shape (n,)), see ``hausdorff``."""
    _check_masks(pred, gt)
    return np.array([hausdorff(pred == c, gt == c) for c in range(n)], dtype=np.float64)


@dataclass(frozen=True)
class SegmentationScores:
    """One sample's per-class scores: ``dice`` and ``hd`` have shape (n,)."""

    dice: np.ndarray
    hd: np.ndarray
    diagonal: float


def segmentation_scores(pred: np.ndarray, gt: np.ndarray, n: int) -> SegmentationScores:
    """Dice and Hausdorff distance of every class 0..n-1 for one sample.

    ``pred`` must already be at the ground truth's size (the scorer nearest-resizes
    a prediction of another size first). Same numbers as ``dice_per_class`` and
    ``hausdorff_per_class``, faster: everything is computed on the window around
    the non-background pixels of either mask, padded by one pixel. Outside it both
    masks are background, which only adds agreeing pixels to class 0 and holds
    neither a pixel of a class mismatch nor a boundary pixel any distance needs.
    """
    _check_masks(pred, gt)
    diagonal = image_diagonal(gt.shape)
    box = _bbox((pred != 0) | (gt != 0))
    if box is None:  # background only, in both
        return SegmentationScores(dice=np.ones(n), hd=np.zeros(n), diagonal=diagonal)
    h, w = gt.shape
    r0, r1, c0, c1 = max(box[0] - 1, 0), min(box[1] + 1, h), max(box[2] - 1, 0), min(box[3] + 1, w)
    pred, gt = pred[r0:r1, c0:c1], gt[r0:r1, c0:c1]
    # Background pixels outside the window; when there are any, the window's padding
    # holds some too, so class 0's presence can be read inside the window.
    beyond = h * w - pred.size
    dices = np.empty(n, dtype=np.float64)
    hds = np.empty(n, dtype=np.float64)
    for c in range(n):
        p, g = pred == c, gt == c
        extra = beyond if c == 0 else 0
        size_p, size_g = np.count_nonzero(p) + extra, np.count_nonzero(g) + extra
        total = size_p + size_g
        dices[c] = 1.0 if total == 0 else 2.0 * (np.count_nonzero(p & g) + extra) / total
        if size_p == 0 and size_g == 0:
            hds[c] = 0.0
        elif size_p == 0 or size_g == 0:
            hds[c] = diagonal
        else:
            hds[c] = max(directed_hausdorff(p, g), directed_hausdorff(g, p))
    return SegmentationScores(dice=dices, hd=hds, diagonal=diagonal)


# -- classification -------------------------------------------------------------

@dataclass
class ClassificationMetrics:
    """Metrics of one classification task over its samples.

    ``auc`` is None where it is undefined (e.g. a single class present in the truth);
    ``notes`` then says why. ``f1_per_class`` has one entry per class 0..n-1.
    """

    accuracy: float
    f1_macro: float
    f1_weighted: float
    mcc: float
    auc: float | None
    f1_per_class: list[float]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, float | None]:
        return {
            "Accuracy": self.accuracy,
            "AUC": self.auc,
            "F1_macro": self.f1_macro,
            "F1_weighted": self.f1_weighted,
            "MCC": self.mcc,
        }


def _auc(y_true: np.ndarray, probs: np.ndarray, n: int) -> tuple[float | None, str | None]:
    from sklearn.metrics import roc_auc_score  # see classification_metrics: kept off the prediction path

    present = np.unique(y_true)
    if present.size < 2:
        return None, f"AUC undefined: only class {int(present[0])} is present in the ground truth"
    if n == 2:
        return float(roc_auc_score(y_true, probs[:, 1])), None
    if present.size < n:
        absent = sorted(set(range(n)) - {int(c) for c in present})
        return None, f"AUC undefined: one-vs-rest needs every class in the ground truth; class(es) {absent} absent"
    try:
        return float(roc_auc_score(y_true, probs, average="macro", multi_class="ovr", labels=list(range(n)))), None
    except ValueError as exc:  # e.g. rows that do not sum to 1 within scikit-learn's tolerance
        return None, f"AUC undefined: {exc}"


def classification_metrics(y_true, y_pred, probs, n: int) -> ClassificationMetrics:
    """Accuracy, macro and weighted F1, MCC and ROC AUC of one task.

    ``y_true`` and ``y_pred`` are (N,) integer labels (``y_pred`` is the predicted
    class as written, not the argmax of ``probs``); ``probs`` is (N, n). AUC is
    binary from the class-1 probability when n == 2, one-vs-rest macro otherwise.
    F1 macro/weighted average over the labels present in truth or prediction
    (scikit-learn's default, as the challenge computes them).
    """
    # Imported here, not at module level: the kinds import this module and prediction
    # imports the kinds, and a submission must run without scikit-learn installed.
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import f1_score, matthews_corrcoef

    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    if y_true.size == 0:
        raise ValueError("classification metrics need at least one sample")
    if y_pred.shape != y_true.shape or probs.shape != (y_true.size, n):
        raise ValueError(f"shapes disagree: y_true {y_true.shape}, y_pred {y_pred.shape}, probs {probs.shape}, n={n}")
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        f1_macro = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
        f1_weighted = float(f1_score(y_true, y_pred, average="weighted", zero_division=0))
        f1_each = f1_score(y_true, y_pred, labels=list(range(n)), average=None, zero_division=0)
        with warnings.catch_warnings():
            # One label in truth and prediction: sklearn warns and returns 0, as the reference scorer gets.
            warnings.simplefilter("ignore", UserWarning)
            mcc = float(matthews_corrcoef(y_true, y_pred))
        auc, note = _auc(y_true, probs, n)
    if note:
        notes.append(note)
    return ClassificationMetrics(
        accuracy=float(np.mean(y_true == y_pred)),
        f1_macro=f1_macro,
        f1_weighted=f1_weighted,
        mcc=mcc,
        auc=auc,
        f1_per_class=[float(v) for v in f1_each],
        notes=notes,
    )


# -- detection and keypoints ----------------------------------------------------

def box_iou(pred, gt) -> np.ndarray:
    """IoU of boxes ``[x_min, y_min, x_max, y_max]`` row by row: (N, 4), (N, 4) -> (N,).

    Areas are ``(x2 - x1)(y2 - y1)`` as given (no clipping or reordering of an
    inverted box); the intersection's sides are clamped at 0; IoU is 0 when the
    union is 0. A single pair of (4,) boxes gives a (1,) array.
    """
    p = np.atleast_2d(np.asarray(pred, dtype=np.float64))
    g = np.atleast_2d(np.asarray(gt, dtype=np.float64))
    if p.shape != g.shape or p.shape[-1] != 4:
        raise ValueError(f"boxes must both be (N, 4), got {p.shape} and {g.shape}")
    iw = np.maximum(0.0, np.minimum(p[:, 2], g[:, 2]) - np.maximum(p[:, 0], g[:, 0]))
    ih = np.maximum(0.0, np.minimum(p[:, 3], g[:, 3]) - np.maximum(p[:, 1], g[:, 1]))
    inter = iw * ih
    union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union == 0, 0.0, inter / np.where(union == 0, 1.0, union))


def radial_errors(pred, gt) -> np.ndarray:
    """Mean radial error per sample: (N, K, 2), (N, K, 2) -> (N,), in pixels.

    The mean over a sample's K points of the Euclidean distance between predicted
    and true point. A single (K, 2) pair gives a (1,) array.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.ndim == 2:
        p, g = p[None], g[None]
    if p.shape != g.shape or p.shape[-1] != 2:
        raise ValueError(f"points must both be (N, K, 2), got {p.shape} and {g.shape}")
    return np.sqrt(((p - g) ** 2).sum(axis=-1)).mean(axis=-1)
