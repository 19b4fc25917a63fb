"""What a run writes about itself: metrics.csv, TensorBoard scalars, curves.png."""
from __future__ import annotations

import csv
import io
import logging
import os
from typing import Any, Mapping, Sequence

from fmuia.evaluate.curves import curves_png
from fmuia.io.atomic import write_bytes, write_text

log = logging.getLogger(__name__)

__all__ = ["MetricsLog", "plot_curves"]

_FIRST = ["epoch", "step", "lr", "train_loss"]


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Fixed leading columns, then per-kind metrics, val_score, per-task scores, per-task
    learned loss weights (first-seen order)."""
    seen: list[str] = []
    for row in rows:
        for key in row:
            if key not in seen:
                seen.append(key)
    kinds = [k for k in seen if k not in _FIRST and k != "val_score" and not k.startswith(("score_", "balance_"))]
    tasks = [k for k in seen if k.startswith("score_")]
    balance = [k for k in seen if k.startswith("balance_")]
    return _FIRST + kinds + (["val_score"] if "val_score" in seen else []) + tasks + balance


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
    """The run's training curves (``fmuia.evaluate.curves``) written as a PNG to ``path``;
    None, and no file, when nothing is plottable."""
    png = curves_png(rows)
    if png is None:
        return None
    write_bytes(path, png)
    return path
