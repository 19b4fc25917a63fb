"""Training curves as a PNG: ``curves.png`` of a run folder and the report's panel.

One figure from a run's metric rows (those of ``metrics.csv``): against step (or epoch,
or the row number), one panel per unit: losses; scores (metrics in [0, 1], the
challenge, selection and skill scores); distances in pixels (the metrics each kind
declares in ``TaskKind.pixel_metrics``: HD, MRE). A column is put on a panel by its
name, never by its values: a skill score below 0 is still a score. Per-task score
columns, per-task learned loss weights, the learning rate and timings are left out
(the report's per-task table has the scores).
"""
from __future__ import annotations

import csv
import io
import logging
import math
from typing import Any, Mapping, Sequence

from fmuia import kinds

log = logging.getLogger(__name__)

__all__ = ["curve_panels", "curves_png", "read_metrics_csv"]

_NOT_PLOTTED = {"step", "epoch", "lr", "time_s"}


def read_metrics_csv(path: str) -> list[dict[str, str]] | None:
    """The rows of a run's metrics.csv; None (with a warning) when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        log.warning("warning: %s: cannot read training curves (%s)", path, exc)
        return None


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)  # ValueError: not a number
    return None if math.isnan(number) else number


def _numeric_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[float | None]]:
    """Column -> its values, for the columns whose every filled cell is a number and that
    have at least one; in first-seen order."""
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    columns = {}
    for name in names:
        try:
            values = [_number(row.get(name)) for row in rows]
        except (TypeError, ValueError):
            continue
        if any(v is not None for v in values):
            columns[name] = values
    return columns


def _pixel_columns() -> set[str]:
    """The ``<kind>_<metric>`` columns measured in pixels, over every registered kind."""
    return {f"{kind.name}_{metric}" for kind in kinds.all_kinds() for metric in kind.pixel_metrics}


def curve_panels(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """(title, unit, columns) of each panel the figure draws, empty panels left out."""
    columns = _numeric_columns(rows)
    plotted = [c for c in columns if c not in _NOT_PLOTTED and not c.startswith(("score_", "balance_"))]
    pixel_names = _pixel_columns()
    losses = [c for c in plotted if "loss" in c.lower()]
    pixels = [c for c in plotted if c in pixel_names]
    scores = [c for c in plotted if c not in losses and c not in pixels]
    panels = (("losses", "loss", losses), ("scores", "score", scores), ("distances", "px", pixels))
    return [panel for panel in panels if panel[2]]


def curves_png(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """The figure as PNG bytes; None when no column is plottable."""
    panels = curve_panels(rows)
    if not panels:
        return None
    columns = _numeric_columns(rows)
    x_name = next((c for c in ("step", "epoch") if c in columns and None not in columns[c]), None)
    x = columns[x_name] if x_name else list(range(len(rows)))

    # matplotlib is slow to import and only the plot needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), squeeze=False)
    try:
        for ax, (title, unit, group) in zip(axes[0], panels):
            for col in group:
                points = [(xi, v) for xi, v in zip(x, columns[col]) if v is not None]
                ax.plot(*zip(*points), marker="o" if len(points) < 30 else None, markersize=3, label=col)
            ax.set_xlabel(x_name or "row")
            ax.set_ylabel(unit)
            ax.set_title(f"{title} ({unit})" if unit == "px" else title)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2 if len(group) > 8 else 1)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)
