"""Classification: one class per image (CSV column ``mask``, the challenge's name).

Label: ``int`` class id 0..n-1. Target: ``LongTensor ()``.
Heads: ``linear`` (default): global average pool, dropout (``model.dropout``), linear;
``position_pooled``: the same over the mean and the x/y first moments of each channel (where
a feature lies, not only whether); loss: cross-entropy.
Submission: ``classification_predictions.json`` entries with ``predicted_class`` and
``predicted_probs`` (n probabilities summing to 1).
Score: accuracy, macro/weighted F1, MCC and ROC AUC over the task
(``fmuia.metrics.scores.classification_metrics``); the task score is the AUC (accuracy
where it is undefined).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fmuia.metrics.results import TaskResult, empty_result
from fmuia.metrics.scores import classification_metrics
from fmuia.kinds.base import TOP, LabelCells, LabelError, SampleScore, TaskKind, as_numpy, blank, floats, number_list, parse_int
from fmuia.kinds.drawing import thumbnail
from fmuia.tasks import Task

__all__ = ["ClassPrediction", "ClassificationKind", "ClassificationResult", "classification_result"]

# predicted_probs must sum to 1 within this (float32 softmax rounding is far smaller).
PROBABILITY_SUM_TOLERANCE = 1e-3


@dataclass
class ClassificationResult:
    """``label``: the predicted class; ``probabilities``: (n,) float64 summing to 1."""

    task_id: str
    label: int
    probabilities: np.ndarray
    class_name: str


@dataclass(frozen=True)
class ClassPrediction:
    """A submission's classification entry: the class as written and the probabilities."""

    predicted_class: int
    probs: np.ndarray  # (n,)


def classification_result(task: Task, y_true, y_pred, probs) -> TaskResult:
    """Labels (N,), predicted classes as written (N,), probabilities (N, n)."""
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        return empty_result(task, ClassificationKind.metric_names)
    m = classification_metrics(y_true, y_pred, probs, task.num_classes)
    per_class = {str(c): {"F1": f} for c, f in enumerate(m.f1_per_class)}
    score = m.auc if m.auc is not None else m.accuracy
    return TaskResult(task.task_id, task.kind, task.n, int(y_true.size), m.as_dict(), score, per_class, list(m.notes))


class ClassificationKind(TaskKind):
    name = "classification"
    csv_name = "classification"
    min_n = 2
    metric_names = ("Accuracy", "AUC", "F1_macro", "F1_weighted", "MCC")
    headline_metrics = ("AUC",)
    prediction_file = "classification_predictions.json"
    default_route = TOP
    label_columns = ("mask",)
    report_panel_height = 4.4  # room for the probability bars
    official_selection_metrics = ("Accuracy", "F1_macro")
    scoring_imports = ("sklearn.metrics",)  # about 1.5 s of CPU: the largest single cost of scoring a test split
    default_head = "linear"

    def register_heads(self) -> None:
        from fmuia.kinds.classification_heads import ClassificationHead, PositionPooledClassificationHead, classification_ce

        self.add_head("linear", ClassificationHead, classification_ce, default=True)
        self.add_head("position_pooled", PositionPooledClassificationHead, classification_ce)

    # -- CSV -------------------------------------------------------------------
    def parse_label(self, row, task, header, folder):
        text = row.get("mask")
        if blank(text):
            return LabelCells()
        try:
            label = parse_int(text)
        except ValueError:
            raise LabelError(f"classification label (column 'mask') {text!r} is not an integer") from None
        if not 0 <= label < task.num_classes:
            raise LabelError(f"classification label {label} outside 0..{task.num_classes - 1}")
        return LabelCells(label=label)

    def label_to_columns(self, task, label):
        return {"mask": str(int(label))}

    # -- checks ----------------------------------------------------------------
    def label_from_array(self, value):
        return int(value)

    def counts(self, entry):
        return [int(entry.label)]

    def class_range(self, task):
        return range(0, task.num_classes)

    # -- targets ---------------------------------------------------------------
    def encode_target(self, out, label, size):
        import torch

        return torch.tensor(int(label), dtype=torch.long)

    # -- prediction ------------------------------------------------------------
    def results(self, task, decoded, sizes, probabilities=False):
        probs = as_numpy(decoded)
        out = []
        for row in probs:
            row = np.clip(row, 0.0, None)
            row = row / row.sum()  # float64: the written list sums to 1 to ~1e-16
            label = int(np.argmax(row))
            out.append(ClassificationResult(task.task_id, label, row, task.class_name(label)))
        return out

    # -- submission ------------------------------------------------------------
    def record_fields(self, result):
        return {"predicted_class": int(result.label), "predicted_probs": floats(result.probabilities)}

    def truth_result(self, task, entry, noise, rng):
        label = int(entry.label)
        logits = np.zeros(task.num_classes)
        logits[label] = 4.0
        logits += rng.normal(0.0, 6.0 * noise, size=task.num_classes)
        p = np.exp(logits - logits.max())
        probs = p / p.sum()
        predicted = int(probs.argmax())
        return ClassificationResult(task.task_id, predicted, probs, task.class_name(predicted))

    def parse_record(self, item, task):
        cls = item.get("predicted_class")
        if isinstance(cls, bool) or not isinstance(cls, (int, float)) or not math.isfinite(cls) or cls != int(cls):
            raise LabelError(f"'predicted_class' = {cls!r} is not an integer")
        cls = int(cls)
        probs = number_list(item, "predicted_probs", task.num_classes if task else None)
        if task is not None and not 0 <= cls < task.num_classes:
            raise LabelError(f"'predicted_class' = {cls} outside 0..{task.num_classes - 1}")
        if np.any(probs < 0) or abs(float(probs.sum()) - 1.0) > PROBABILITY_SUM_TOLERANCE:
            raise LabelError(f"'predicted_probs' must be non-negative and sum to 1, got sum {float(probs.sum()):.6g}")
        return ClassPrediction(cls, probs)

    # -- scoring ---------------------------------------------------------------
    def score_sample(self, task, value, truth, size):
        label = int(truth)
        details = {"true": label, "pred": value.predicted_class, "probs": [round(float(p), 6) for p in value.probs]}
        return SampleScore(float(value.probs[label]), details, (label, value.predicted_class, value.probs))

    def task_result(self, task, scores):
        if not scores:
            return classification_result(task, [], [], np.zeros((0, task.num_classes)))
        y_true = np.array([s.data[0] for s in scores], dtype=np.int64)
        y_pred = np.array([s.data[1] for s in scores], dtype=np.int64)
        probs = np.array([s.data[2] for s in scores], dtype=np.float64).reshape(-1, task.num_classes)
        return classification_result(task, y_true, y_pred, probs)

    def chance_results(self, task, labels, sizes):
        """The labels' class frequencies as probabilities (every sample the same, so AUC
        0.5) and the most frequent class (the lowest id on a tie) as the prediction."""
        if not labels:
            return []
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=task.num_classes).astype(np.float64)
        frequencies = counts / counts.sum()
        label = int(np.argmax(counts))
        return [ClassificationResult(task.task_id, label, frequencies.copy(), task.class_name(label)) for _ in labels]

    # -- drawing ---------------------------------------------------------------
    def caption(self, task, label, note=""):
        name = task.class_name(int(label))
        extra = f" ({note})" if note and note != name else ""
        return f"class {int(label)}: {name}{extra}" if name != str(label) else f"class {int(label)}{extra}"

    def draw_prediction(self, ax, image, truth, value, record):
        canvas, _ = thumbnail(image)
        ax.imshow(canvas)
        ax.set_title(f"true {truth}  predicted {value.predicted_class}", fontsize=9)
        bars = ax.inset_axes([0.0, -0.42, 1.0, 0.32])
        n = len(value.probs)
        colours = ["#28c850" if c == truth else "#bbbbbb" for c in range(n)]
        bars.bar(range(n), value.probs, color=colours,
                 edgecolor=["#e628c8" if c == value.predicted_class else "none" for c in range(n)], linewidth=2)
        bars.set_ylim(0, 1)
        bars.set_xticks(range(n))
        bars.tick_params(labelsize=7)
