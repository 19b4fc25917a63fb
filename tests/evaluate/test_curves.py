"""One training-curves figure serves the run folder's curves.png and the report."""
import os

from fmuia.evaluate.curves import curves_png
from fmuia.evaluate.report import plot_training_curves
from fmuia.train.history import MetricsLog, plot_curves

ROWS = [{"epoch": 1, "step": 5, "lr": 0.1, "train_loss": 1.2, "segmentation_HD": 30.0, "val_score": 0.4},
        {"epoch": 2, "step": 10, "lr": 0.1, "train_loss": 0.9, "segmentation_HD": 22.0, "val_score": 0.5}]


def test_curves_png_and_the_report_plot_the_same_figure(tmp_path):
    log = MetricsLog(str(tmp_path), ())
    for row in ROWS:
        log.add(row)
    log.close()
    from_rows = curves_png(ROWS)
    assert from_rows[:4] == b"\x89PNG"
    assert plot_training_curves(str(tmp_path / "metrics.csv")) == from_rows
    assert plot_curves(ROWS, str(tmp_path / "curves.png")) == str(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes() == from_rows


def test_nothing_plottable_writes_nothing(tmp_path):
    assert curves_png([{"epoch": 1, "note": "a"}]) is None
    assert plot_curves([], str(tmp_path / "curves.png")) is None
    assert not os.path.exists(tmp_path / "curves.png")
