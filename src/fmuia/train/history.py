"""What a run writes about itself: metrics.csv, TensorBoard scalars, curves.png."""
from __future__ import annotations

import csv
import io
import logging
import os
from typing import Any, Mapping, Sequence

from fmuia.io.atomic import write_text, write_with

log = logging.getLogger(__name__)

__all__ = ["MetricsLog", "plot_curves"]

_FIRST = ["epoch", "step", "lr", "train_loss"]


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Fixed leading columns, then per-kind metrics, val_score, per-task scores (first-seen order)."""
    seen: list[str] = []
    for row in rows:
        for key in row:
            if key not in seen:
                seen.append(key)
    kinds = [k for k in seen if k not in _FIRST and k != "val_score" and not k.startswith("score_")]
    tasks = [k for k in seen if k.startswith("score_")]
    return _FIRST + kinds + (["val_score"] if "val_score" in seen else []) + tasks


class MetricsLog:
    """One row per epoch, rewritten atomically as RUN_DIR/metrics.csv after each epoch;
    mirrored to TensorBoard when it is installed."""

    def __init__(self, run_dir: str, rows: Sequence[Mapping[str, Any]] = (), tensorboard_dir: str | None = None) -> None:
        self.path = os.path.join(run_dir, "metrics.csv")
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self.writer = SummaryWriter(tensorboard_dir or os.path.join(run_dir, "tb"))
        except Exception:  # not installed: the CSV is the record
            self.writer = None

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows.append(dict(row))
        self._write()
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)) and value is not None:
                    self.writer.add_scalar(key, value, int(row["step"]))
            self.writer.flush()

    def scalar(self, key: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(key, value, step)

    def _write(self) -> None:
        cols = _columns(self.rows)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for row in self.rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in cols})
        write_text(self.path, buf.getvalue())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plot_curves(rows: Sequence[Mapping[str, Any]], path: str) -> str | None:
    """Training loss and validation scores per epoch as a PNG (matplotlib, Agg)."""
    if not rows:
        return None
    # matplotlib is slow to import and only the plot needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(11, 4))
    losses = [(e, r.get("train_loss")) for e, r in zip(epochs, rows) if r.get("train_loss") is not None]
    if losses:
        ax_loss.plot(*zip(*losses), marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    main_metric = {"segmentation_DSC": "segmentation DSC", "classification_AUC": "classification AUC",
                   "detection_IoU": "detection IoU", "val_score": "challenge score"}
    for key, label in main_metric.items():
        points = [(e, r.get(key)) for e, r in zip(epochs, rows) if r.get(key) is not None]
        if points:
            ax_score.plot(*zip(*points), marker="o", label=label, linewidth=2.5 if key == "val_score" else 1.2)
    ax_score.set(xlabel="epoch", ylabel="score", title="validation", ylim=(0, 1))
    if ax_score.lines:
        ax_score.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    try:
        # the temporary name does not end in .png: say the format
        write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return path
