"""``fmuia report``: the page, the per-task PNGs, and a clean render in headless Chromium."""
import os
import shutil
import subprocess

import pytest

from dataset_builders import cls_row, materialise, seg_row, valid_rows
from fmuia.cli.main import main
from fmuia.evaluate.curves import curve_panels
from fmuia.evaluate.report import plot_training_curves
from fmuia.evaluate.truth_submission import write_truth_submission


@pytest.fixture
def report_inputs(tmp_path):
    root = str(tmp_path / "data")
    materialise(root, valid_rows() + [seg_row(i, task="cardiac_multi", n=4, folder="Four") for i in range(2, 5)] + [cls_row(7, label=1)])
    pred = str(tmp_path / "pred")
    write_truth_submission(root, pred, noise=0.6, drop=0.1, seed=4)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(
        "epoch,step,train_loss,val_score,val/breast_lesion/DSC,note\n"
        "0,10,1.5,0.40,,start\n1,20,0.9,0.55,0.61,\n2,30,0.7,,0.70,x\n"
    )
    return root, pred, str(run)


def find_chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_page_and_task_pngs(report_inputs, tmp_path):
    root, pred, run = report_inputs
    out = tmp_path / "report"
    assert main(["report", "--data", root, "--pred", pred, "--run", run, "--out", str(out), "--workers", "1"]) == 0
    page = (out / "index.html").read_text()
    assert "Challenge score" in page and "Training curves" in page
    for task in ("breast_lesion", "cardiac_multi", "breast_2cls", "thyroid_nodule_det", "FUGC"):
        assert f"<h3>{task}</h3>" in page
    assert page.count("data:image/jpeg;base64,") >= 6  # five tasks and the curves, embedded
    assert "src='tasks/" not in page and "http" not in page.replace("http-equiv", "")  # self-contained
    pngs = sorted(os.listdir(out / "tasks"))
    assert "cardiac_multi.png" in pngs and "FUGC.png" in pngs
    assert (out / "tasks" / "breast_2cls.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_reuses_evaluation_output(report_inputs, tmp_path):
    root, pred, _ = report_inputs
    ev_dir = str(tmp_path / "eval")
    assert main(["evaluate", "--data", root, "--pred", pred, "--out", ev_dir, "--workers", "1"]) == 0
    out = tmp_path / "report"
    assert main(["report", "--data", root, "--pred", pred, "--eval", ev_dir, "--out", str(out), "--per-task", "2"]) == 0
    assert "<h3>FUGC</h3>" in (out / "index.html").read_text()


def test_training_curves_tolerate_odd_metrics_files(tmp_path):
    only_text = tmp_path / "a.csv"
    only_text.write_text("epoch,note\n0,a\n1,b\n")
    assert plot_training_curves(str(only_text)) is None
    no_step = tmp_path / "b.csv"
    no_step.write_text("val_score\n0.1\n0.2\n")
    assert plot_training_curves(str(no_step))[:4] == b"\x89PNG"
    empty = tmp_path / "c.csv"
    empty.write_text("")
    assert plot_training_curves(str(empty)) is None


# One row of a balanced-selection run's metrics.csv; the unit of every plotted column.
# The skill and selection scores below 0 and the distances under 1 px are there so that
# a panel chosen by value range would put them on the wrong axis.
CURVE_ROW_UNITS = {
    "train_loss": ("loss", 0.8), "segmentation_DSC": ("score", 0.7), "segmentation_HD": ("px", 0.6),
    "classification_Accuracy": ("score", 0.5), "classification_AUC": ("score", 0.9),
    "detection_IoU": ("score", 0.4), "keypoints_MRE": ("px", 12.5), "val_score": ("score", -0.1),
    "challenge_score": ("score", 0.6), "skill_segmentation": ("score", 0.3), "skill_keypoints": ("score", -0.2),
}


def test_each_training_curves_panel_has_one_unit(tmp_path):
    rows = [{"epoch": e, "step": 10 * e, "lr": 1e-4, "time_s": 3.0, "score_fetal_head": 0.5,
             **{column: value + e for column, (_, value) in CURVE_ROW_UNITS.items()}} for e in range(2)]
    panels = curve_panels(rows)
    assert [(title, unit) for title, unit, _ in panels] == [("losses", "loss"), ("scores", "score"), ("distances", "px")]
    for _, unit, columns in panels:
        assert {CURVE_ROW_UNITS[c][0] for c in columns} == {unit}
    assert sorted(c for _, _, columns in panels for c in columns) == sorted(CURVE_ROW_UNITS)


@pytest.mark.browser
def test_report_renders_in_headless_chromium_without_console_errors(report_inputs, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("FMUIA_REQUIRE_BROWSER") == "1":
            pytest.fail("FMUIA_REQUIRE_BROWSER=1 but no chromium executable was found")
        pytest.skip("chromium not installed")
    root, pred, run = report_inputs
    out = tmp_path / "report"
    assert main(["report", "--data", root, "--pred", pred, "--run", run, "--out", str(out), "--workers", "1"]) == 0
    # A broken page must be caught: prove the console check sees errors first.
    broken = out / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    shot = tmp_path / "shot.png"

    def render(page):
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--window-size=1280,1600", f"--screenshot={shot}", f"file://{page}"],
            capture_output=True, text=True, timeout=120,
        )
        console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
        return proc.returncode, console

    code, console = render(broken)
    assert any("undefinedFunction" in line for line in console), "the console check sees nothing"
    code, console = render(out / "index.html")
    assert code == 0 and console == []
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 10_000
