"""The mistakes users really make, as each command meets them: debris of the OS or an
editor in ``csv_files/``, an input that breaks late in the CSV order, a ground truth
that cannot be read, a mistyped task id, a header-only CSV, 0/255 masks. Each case
asserts the exit code, the one message naming the file and the fix, and that no input
file changed."""
from __future__ import annotations

import json
import logging
import os

import pytest
from catalogue_helpers import CSV, TINY_TRAIN, build_root, file_of, fingerprint, rewrite, run_cli
from tiny import tiny_checkpoint

from dataset_builders import materialise, valid_rows

DEBRIS = ["._data.csv", "~$data.csv", ".~lock.data.csv#", ".DS_Store"]


def _plant_debris(root, rows):
    # What the OS and editors really leave: binary resource forks and lock files.
    for name in DEBRIS:
        with open(os.path.join(root, "csv_files", name), "wb") as fh:
            fh.write(b"\x00\x05\x16\x07Mac OS X        \x00\x02\xff\xfe" if name.startswith(("._", "~$")) else b"lock")


def _predict_argv(root, out):
    return ["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", out, "--workers", "0",
            "--no-progress", "--device", "cpu"]


@pytest.mark.parametrize("command", ["validate", "train", "predict"])
def test_os_and_editor_debris_is_skipped_with_one_note(tmp_path, capsys, caplog, command):
    caplog.set_level(logging.INFO)
    root = str(tmp_path / "data")
    build_root(root, _plant_debris)
    before = fingerprint(root)
    out = tmp_path / "out"
    argv = {"validate": ["validate", root, "--require-labels"],
            "train": ["train", "--data", root, "--out", out, *TINY_TRAIN, "--set", "train.max_steps=1",
                      "--set", "train.epochs=1"],
            "predict": _predict_argv(root, out)}[command]
    code, _out, err = run_cli(argv, capsys)
    assert code == 0, err
    notes = [r.getMessage() for r in caplog.records if "left by the OS or an editor" in r.getMessage()]
    assert notes == [f"note: {root}/csv_files: skipped 4 file(s) left by the OS or an editor, not data: "
                     + ", ".join(sorted(DEBRIS))]
    assert fingerprint(root) == before


def test_another_unreadable_csv_is_still_refused(tmp_path, capsys):
    root = str(tmp_path / "data")
    build_root(root, _plant_debris)
    with open(os.path.join(root, "csv_files", "notes.csv"), "wb") as fh:
        fh.write(b"\x00\x01binary")
    code, _out, err = run_cli(["validate", root], capsys)
    assert code == 2 and err.startswith(f"error: {root}/csv_files/notes.csv: not a text CSV file")


def _dangling_link_late(root, rows):
    """The last image of the CSV order (a FUGC row, after every mask) is a dangling link."""
    last = file_of(root, rows[-1]["image_path"])
    os.remove(last)
    os.symlink(last + ".moved", last)


def test_predict_checks_every_image_header_before_writing(tmp_path, capsys):
    root = str(tmp_path / "data")
    build_root(root, _dangling_link_late)
    before = fingerprint(root)
    out = tmp_path / "pred"
    code, _out, err = run_cli(_predict_argv(root, out), capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: {CSV} line 14 (task FUGC): {root}/Regression/FUGC/001.png: file not found")
    assert f"(the header check of the 13 input image(s) found 1 problem(s); nothing was written to {out})" in err
    assert not out.exists() and fingerprint(root) == before


def _black_white(path):
    """A two-class mask saved as 0/255 (the commonest mask mistake)."""
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert cv2.imwrite(str(path), (mask > 0).astype("uint8") * 255)


def _black_white_truth(root, rows):
    _black_white(file_of(root, rows[0]["mask_path"]))


FIX_0_255 = "divide it by 255 (save class ids 0/1, not black/white)"
MASK0 = "Segmentation/Two/breast_lesion/MASKS/000.png"


def test_validate_names_the_0_255_fix(tmp_path, capsys):
    root = str(tmp_path / "data")
    build_root(root, _black_white_truth)
    code, _out, err = run_cli(["validate", root], capsys)
    assert code == 1 and f"  {CSV} line 2: mask '../{MASK0}' has value(s) [255] >= num_classes 2; {FIX_0_255}" in err


def test_train_names_the_0_255_fix_where_it_reads_the_mask(tmp_path, capsys):
    root = str(tmp_path / "data")
    build_root(root, _black_white_truth)
    code, _out, err = run_cli(["train", "--data", root, "--out", tmp_path / "run", *TINY_TRAIN, "--set",
                               "data.tasks=[breast_lesion]", "--set", "data.val_fraction=0"], capsys)
    assert code == 2 and f"{MASK0}: mask value(s) [255] >= num_classes 2; {FIX_0_255}" in err and "Traceback" not in err


@pytest.mark.parametrize("side", ["prediction", "truth"])
def test_evaluate_warns_of_0_255_masks(tmp_path, capsys, side):
    from fmuia.evaluate.truth_submission import write_truth_submission

    root, pred, out = str(tmp_path / "data"), tmp_path / "pred", tmp_path / "eval"
    materialise(root, valid_rows())
    write_truth_submission(root, str(pred))
    _black_white(pred / MASK0 if side == "prediction" else file_of(root, "../" + MASK0))
    code, stdout, _err = run_cli(["evaluate", "--data", root, "--pred", pred, "--out", out, "--workers", "1"], capsys)
    named = str(pred / MASK0) if side == "prediction" else file_of(root, "../" + MASK0)
    what = "1 predicted mask(s)" if side == "prediction" else "ground truth: 1 mask(s)"
    warning = f"{what} of two-class task(s) hold exactly the values 0 and 255 (scored as background and no class): {named}; {FIX_0_255}"
    assert code == 0 and warning in json.loads((out / "results.json").read_text())["warnings"] and warning in stdout


def _mistyped_task_id(root, rows):
    rows[6]["task_id"] = "breast_2cIs"  # capital I for l: one row leaves breast_2cls
    rewrite(root, rows)


TYPO = f"{CSV} line 8: task id 'breast_2cIs' is not in the task registry (did you mean breast_2cls?): its 1 row(s) form a new classification task"


@pytest.mark.parametrize("command", ["validate", "train"])
def test_unknown_task_id_warns_with_the_closest_known_id(tmp_path, capsys, caplog, command):
    caplog.set_level(logging.INFO)
    root = str(tmp_path / "data")
    build_root(root, _mistyped_task_id)
    argv = {"validate": ["validate", root, "--require-labels", "--quick"],
            "train": ["train", "--data", root, "--out", tmp_path / "run", *TINY_TRAIN, "--set", "train.max_steps=1",
                      "--set", "train.epochs=1", "--set", "data.val_fraction=0"]}[command]
    code, _out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert [r.getMessage() for r in caplog.records if "breast_2cIs" in r.getMessage()] == [f"warning: {TYPO}; kept as a new task"]


@pytest.mark.parametrize("command", ["validate", "train"])
def test_unknown_task_id_is_refused_in_strict_mode(tmp_path, capsys, command):
    root = str(tmp_path / "data")
    build_root(root, _mistyped_task_id)
    before = fingerprint(root)
    run = tmp_path / "run"
    argv = {"validate": ["validate", root, "--require-labels", "--unknown-tasks", "error"],
            "train": ["train", "--data", root, "--out", run, *TINY_TRAIN, "--set", "data.unknown_tasks=error"]}[command]
    code, _out, err = run_cli(argv, capsys)
    assert code == {"validate": 1, "train": 2}[command] and "Traceback" not in err
    assert f"  {TYPO}; refused, as unknown task ids are errors in strict mode" in err
    assert not run.exists() and fingerprint(root) == before


def test_a_genuinely_new_task_is_kept_under_warn(tmp_path, capsys, caplog):
    """A task id with no close known id: a new task, named once, with no suggestion."""
    from dataset_builders import cls_row

    root = str(tmp_path / "data")
    materialise(root, valid_rows() + [cls_row(i, task="gallbladder_polyp_cls", label=i % 2) for i in range(4)])
    code, out, _err = run_cli(["validate", root, "--require-labels"], capsys)
    assert code == 0 and "gallbladder_polyp_cls    classification  2       4        4" in out
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: {CSV} line 15: task id 'gallbladder_polyp_cls' is not in the task registry: its 4 row(s) form a new "
        "classification task; kept as a new task"]


def _header_only_csv(root, rows):
    from catalogue_helpers import rows_text

    with open(os.path.join(root, "csv_files", "extra.csv"), "w") as fh:
        fh.write(rows_text([]))


@pytest.mark.parametrize("command", ["validate", "train", "predict"])
def test_a_header_only_csv_is_an_error_naming_the_file(tmp_path, capsys, command):
    root = str(tmp_path / "data")
    build_root(root, _header_only_csv)
    before = fingerprint(root)
    out = tmp_path / "out"
    argv = {"validate": ["validate", root, "--quick"],
            "train": ["train", "--data", root, "--out", out, *TINY_TRAIN],
            "predict": _predict_argv(root, out)}[command]
    code, _out, err = run_cli(argv, capsys)
    assert code == {"validate": 1}.get(command, 2) and "Traceback" not in err
    assert "  csv_files/extra.csv: no data rows, only a header (an export of an empty sheet?)" in err
    assert not out.exists() and fingerprint(root) == before


def _semicolon_csv_for_fugc(root, rows):
    """FUGC's rows moved to their own CSV, saved with ';' as a European spreadsheet does."""
    from catalogue_helpers import rows_text

    fugc = [r for r in rows if r["task_id"] == "FUGC"]
    rewrite(root, [r for r in rows if r["task_id"] != "FUGC"])
    with open(os.path.join(root, "csv_files", "FUGC.csv"), "w") as fh:
        fh.write(rows_text(fugc).replace(",", ";"))


SEMICOLON = "csv_files/FUGC.csv line 1: the columns are separated by ';', not ','; save it as comma-separated CSV"


@pytest.fixture
def semicolon_truth(tmp_path):
    """A data root whose FUGC CSV is semicolon-separated, and the perfect submission of all five tasks."""
    from fmuia.evaluate.truth_submission import write_truth_submission

    root, pred = str(tmp_path / "data"), tmp_path / "pred"
    materialise(root, valid_rows())
    write_truth_submission(root, str(pred))
    _semicolon_csv_for_fugc(root, valid_rows())
    return root, pred


def test_evaluate_refuses_a_ground_truth_it_cannot_read(tmp_path, capsys, semicolon_truth):
    root, pred = semicolon_truth
    before = fingerprint(root), fingerprint(pred)
    out = tmp_path / "eval"
    code, stdout, err = run_cli(["evaluate", "--data", root, "--pred", pred, "--out", out, "--workers", "1"], capsys)
    assert code == 2 and stdout == "" and "Traceback" not in err
    assert err.startswith(f"error: ground truth {root}: 1 problem(s) in the CSVs, nothing was scored (fix them, or pass "
                          f"--partial to score the readable rows and list these as warnings):\n  {SEMICOLON}")
    assert not out.exists() and (fingerprint(root), fingerprint(pred)) == before


def test_evaluate_partial_scores_what_is_readable_and_says_how_much(tmp_path, capsys, semicolon_truth):
    root, pred = semicolon_truth
    out = tmp_path / "eval"
    code, stdout, _err = run_cli(["evaluate", "--data", root, "--pred", pred, "--out", out, "--workers", "1",
                                  "--partial"], capsys)
    results = json.loads((out / "results.json").read_text())
    assert code == 0 and stdout.startswith("Challenge score: 1.0000  (over 4 of 27 tasks)\n")
    assert (results["tasks_scored"], results["tasks_total"]) == (4, 27) and "FUGC" not in results["tasks"]
    assert f"ground truth: {SEMICOLON}" in "\n".join(results["warnings"])


def _rotated_jpeg(path, orientation=6):
    """A 20x40 (h x w) JPEG whose EXIF orientation 6 says: turn a quarter clockwise, upright 40x20."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, "JPEG", exif=exif.tobytes(), quality=95)


def _box_in_the_upright_image(root, rows):
    rows[9].update(x_min=2, y_min=25, x_max=15, y_max=35)  # inside 20 wide x 40 high only
    _rotated_jpeg(file_of(root, rows[9]["image_path"]))
    rewrite(root, rows)


def test_exif_orientation_is_applied_as_cv2_imread_does(tmp_path):
    import cv2
    import numpy as np

    from fmuia.io.images import image_size, read_image

    for orientation in range(1, 9):
        path = str(tmp_path / f"{orientation}.jpg")
        _rotated_jpeg(path, orientation)
        official = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        assert np.array_equal(read_image(path), official) and image_size(path) == official.shape[:2]


@pytest.mark.parametrize("quick", [False, True])
def test_boxes_are_checked_against_the_upright_image_unless_told_to_ignore(tmp_path, capsys, monkeypatch, quick):
    monkeypatch.setenv("FMUIA_EXIF_ORIENTATION", "apply")  # restored after the test
    root = str(tmp_path / "data")
    build_root(root, _box_in_the_upright_image)
    level = ["--quick"] if quick else []
    code, _out, err = run_cli(["validate", root, "--require-labels", *level], capsys)
    assert (code, err.strip()) == (0, f"OK: {root} is valid")
    code, _out, err = run_cli(["validate", root, "--require-labels", *level, "--exif-orientation", "ignore"], capsys)
    assert code == 1 and f"  {CSV} line 11: box [2.0, 25.0, 15.0, 35.0] lies outside the 40x20 (w x h) image" in err


@pytest.mark.parametrize("mode, size", [("apply", [20, 40]), ("ignore", [40, 20])])
def test_predict_gives_boxes_in_pixels_of_the_image_as_read(tmp_path, capsys, monkeypatch, mode, size):
    monkeypatch.setenv("FMUIA_EXIF_ORIENTATION", "apply")
    root = str(tmp_path / "data")
    build_root(root, _box_in_the_upright_image)
    out = tmp_path / "pred"
    code, _out, err = run_cli([*_predict_argv(root, out), "--exif-orientation", mode], capsys)
    assert code == 0, err
    record = [r for r in json.loads((out / "detection_predictions.json").read_text())
              if r["image_path"].endswith("/000.jpg")][0]
    (x1, y1, x2, y2), (n1, m1, n2, m2) = record["bbox_pixels"], record["bbox_normalized"]
    assert [round(x2 / n2), round(y2 / m2)] == size  # w, h of the image the box refers to


def _corrupt_pixel_data(root, rows):
    """Pixel data damaged inside the file (not truncated): what libpng and libjpeg
    complain about on the process's stderr."""
    for row, at in ((rows[5], b"IDAT"), (rows[9], b"\xff\xda")):  # a PNG's data chunk, a JPEG's scan
        path = file_of(root, row["image_path"])
        data = bytearray(open(path, "rb").read())
        start = data.find(at) + 12
        data[start : start + 24] = b"\xff" * 24
        open(path, "wb").write(bytes(data))


def test_no_library_messages_above_fmuias_own(tmp_path):
    """As a user runs it (a new process, stderr as the terminal sees it)."""
    import subprocess
    import sys

    root = str(tmp_path / "data")
    build_root(root, _corrupt_pixel_data)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "fmuia", "validate", root], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    # libjpeg decodes the damaged scan with a warning ("Corrupt JPEG data: ..."); libpng fails.
    assert done.stderr == (f"\n1 problem(s) in {root}:\n"
                           f"  {CSV} line 7: image '../Classification/breast_2cls/000.png': not a readable image "
                           "(truncated or corrupt PNG pixel data; the header says 32x32)\n")


def test_predict_header_check_leaves_an_earlier_submission_as_it_was(tmp_path, capsys):
    """--overwrite removes an earlier run's files only once the inputs have passed."""
    root = str(tmp_path / "data")
    build_root(root, lambda root, rows: None)
    out = tmp_path / "pred"
    assert run_cli(_predict_argv(root, out), capsys)[0] == 0
    earlier = fingerprint(out)
    _dangling_link_late(root, valid_rows())
    code, _out, err = run_cli([*_predict_argv(root, out), "--overwrite"], capsys)
    assert code == 2 and "found 1 problem(s); nothing was written" in err and fingerprint(out) == earlier


def test_report_refuses_the_same_ground_truth_unless_partial(tmp_path, capsys, semicolon_truth):
    root, pred = semicolon_truth
    out = tmp_path / "report"
    code, _out, err = run_cli(["report", "--data", root, "--pred", pred, "--out", out, "--workers", "1"], capsys)
    assert code == 2 and err.startswith(f"error: ground truth {root}: 1 problem(s)") and not out.exists()
    code, _out, err = run_cli(["report", "--data", root, "--pred", pred, "--out", out, "--workers", "1", "--partial"], capsys)
    assert code == 0 and "<h2>Challenge score: 1.0000 (over 4 of 27 tasks)</h2>" in (out / "index.html").read_text()
