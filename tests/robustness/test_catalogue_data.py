"""Bad data as each command meets it: ``validate`` (full and --quick), ``train`` (stops
before its first step, leaving no run folder), ``predict`` (where the input matters) and
``evaluate`` (the ground-truth side). Every case asserts the exit code, the message
naming the CSV row or file and the reason, and that no input file changed."""
from __future__ import annotations

import json

import pytest
from catalogue_helpers import TINY_TRAIN, build_root, fingerprint, run_cli
from tiny import tiny_checkpoint

import data_faults
from dataset_builders import materialise, valid_rows
from fmuia.evaluate.truth_submission import write_truth_submission

ROW = "csv_files/data.csv line {}: "
IMG7 = "image '../Classification/breast_2cls/000.png': "
MASK2 = "mask '../Segmentation/Two/breast_lesion/MASKS/000.png'"
NOT_UTF8 = "CSV file is not valid UTF-8"
UTF16 = "CSV file is encoded as UTF-16, not UTF-8; save it as 'CSV UTF-8'"

# name: (problem as validate reports it, or None when the data is valid;
#        whether the header-level pass sees it)
VALIDATE = {
    "zero_byte_image": (ROW.format(7) + IMG7 + "not a readable image (empty file, 0 bytes)", True),
    "zero_byte_mask": (ROW.format(2) + MASK2 + ": not a readable image (empty file, 0 bytes)", True),
    "truncated_png": (ROW.format(7) + IMG7 + "not a readable image (truncated or corrupt PNG pixel data; the header says 32x32)", False),
    "truncated_jpg": (ROW.format(11) + "image '../Detection/thyroid_nodule_det/000.jpg': not a readable image "
                      "(truncated or corrupt JPEG pixel data; the header says 32x32)", False),
    "not_an_image": (ROW.format(7) + IMG7 + "not a readable image (not an image file of a known format)", True),
    "sixteen_bit_image": (None, True),
    "wrong_size_mask": (ROW.format(2) + MASK2 + " is 20x32 but its image is 32x32 (h x w)", True),
    "mask_value_too_large": (ROW.format(2) + MASK2 + " has value(s) [5] >= num_classes 2", False),
    "csv_bom": (None, True),
    "empty_csv": (ROW.format(1) + "missing required column(s): task_id, task_name, num_classes, image_path", True),
    "missing_column": (ROW.format(1) + "missing required column(s): num_classes", True),
    "misspelt_column": (ROW.format(1) + "unknown column 'x_mn' (did you mean 'x_min'?)", True),
    "unknown_kind": (ROW.format(7) + "task_name: unknown task kind 'clasification'", True),
    "num_classes_disagree": (ROW.format(8) + "num_classes 3 disagrees with the task registry (2)", True),
    "label_out_of_range": (ROW.format(8) + "classification label 2 outside 0..1", True),
    "box_outside_image": (ROW.format(11) + "box [4.0, 5.0, 40.0, 25.0] lies outside the 32x32 (w x h) image", True),
    "inverted_box": (ROW.format(11) + "box [20.0, 5.0, 4.0, 25.0] is empty or inverted", True),
    "point_outside_image": (ROW.format(13) + "point_1_xy [50, 4] lies outside the 32x32 (w x h) image", True),
    "malformed_point": (ROW.format(13) + "point_1_xy: not a JSON [x, y] pair: '[3, four]'", True),
    "duplicate_row": (ROW.format(15) + "duplicate row: task breast_2cls image '../Classification/breast_2cls/000.png' "
                      "already at csv_files/data.csv line 7", True),
    "missing_image": (ROW.format(7) + IMG7 + "file not found", True),
    "escaping_path": (ROW.format(7) + "image '" + "../" * 12 + "etc/passwd': not a readable image (not an image file", True),
}
# Refused before any row is read, by every command alike (exit 2, the file named).
ENCODING = {"csv_cp1252": NOT_UTF8 + " (byte(s) e9 2e 70 6e at line 7", "csv_utf16": UTF16}


def _root(tmp_path, name):
    root = str(tmp_path / "data")
    build_root(root, data_faults.ALL[name])
    return root, fingerprint(root)


@pytest.mark.parametrize("name", sorted(VALIDATE))
def test_validate_full_and_quick(tmp_path, capsys, name):
    root, before = _root(tmp_path, name)
    problem, header_sees_it = VALIDATE[name]
    for argv, sees in ((["validate", root, "--require-labels"], True),
                       (["validate", root, "--require-labels", "--quick"], header_sees_it)):
        code, _out, err = run_cli(argv, capsys)
        if problem is None or not sees:
            assert (code, err.strip()) == (0, f"OK: {root} is valid")
        else:
            assert code == 1 and f"  {problem}" in err and "Traceback" not in err
    assert fingerprint(root) == before


@pytest.mark.parametrize("name", sorted(ENCODING))
@pytest.mark.parametrize("command", ["validate", "train", "predict", "evaluate"])
def test_csv_in_another_encoding_is_refused_by_every_command(tmp_path, capsys, name, command):
    root, before = _root(tmp_path, name)
    out = tmp_path / "out"
    argv = {"validate": ["validate", root],
            "train": ["train", "--data", root, "--out", out, *TINY_TRAIN],
            "predict": ["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", out, "--workers", "0",
                        "--no-progress", "--device", "cpu"],
            "evaluate": ["evaluate", "--data", root, "--pred", tmp_path, "--out", out, "--workers", "1"]}[command]
    code, _out, err = run_cli(argv, capsys)
    assert code == 2 and err.startswith(f"error: {root}/csv_files/data.csv: ") and ENCODING[name] in err
    assert not out.exists() and fingerprint(root) == before


# Faults the header-level check sees stop training before its first step.
TRAIN_STOPS = sorted(n for n, (p, sees) in VALIDATE.items() if p and sees)


@pytest.mark.parametrize("name", TRAIN_STOPS)
def test_train_stops_before_the_first_step_and_writes_nothing(tmp_path, capsys, name):
    root, before = _root(tmp_path, name)
    run = tmp_path / "run"
    code, _out, err = run_cli(["train", "--data", root, "--out", run, *TINY_TRAIN], capsys)
    assert code == 2 and err.startswith("error: data check (header) found ")
    assert "training did not start and nothing was written" in err
    assert f"training data {root}: " in err and f"  {VALIDATE[name][0]}" in err
    assert not run.exists() and fingerprint(root) == before


@pytest.mark.parametrize("name", ["truncated_png", "mask_value_too_large"])
def test_train_full_check_sees_what_headers_do_not(tmp_path, capsys, name):
    root, before = _root(tmp_path, name)
    run = tmp_path / "run"
    code, _out, err = run_cli(["train", "--data", root, "--out", run, *TINY_TRAIN, "--set", "data.check=full"], capsys)
    assert code == 2 and err.startswith("error: data check (full) found 1 problem(s)") and VALIDATE[name][0] in err
    assert not run.exists() and fingerprint(root) == before


@pytest.mark.parametrize("name, task, workers, reason", [
    ("truncated_png", "breast_2cls", 0,
     "Classification/breast_2cls/000.png: not a readable image (truncated or corrupt PNG pixel data"),
    ("mask_value_too_large", "breast_lesion", 1,
     "Segmentation/Two/breast_lesion/MASKS/000.png: mask value(s) [5] >= num_classes 2"),
])
def test_train_header_check_then_a_bad_file_read_mid_run_names_file_and_row(tmp_path, capsys, name, task, workers, reason):
    """What only the pixels show, under the default header check: the run stops at the
    read with the row and the file (also from a loader worker process)."""
    root, before = _root(tmp_path, name)
    run = tmp_path / "run"
    line = 7 if task == "breast_2cls" else 2
    code, _out, err = run_cli(["train", "--data", root, "--out", run, *TINY_TRAIN, "--set", f"data.tasks=[{task}]",
                               "--set", "data.val_fraction=0", "--set", f"data.num_workers={workers}"], capsys)
    assert code == 2 and err.startswith(f"error: csv_files/data.csv line {line} (task {task}): {root}/") and reason in err
    assert "training stopped at step 1 (epoch 1); no checkpoint had been written yet" in err
    assert "Traceback" not in err
    assert not (run / "last").exists() and fingerprint(root) == before


def test_train_check_none_skips_the_check(tmp_path, capsys):
    """data.check=none: at the user's risk; a bad row then fails where the rows are read."""
    root, _ = _root(tmp_path, "wrong_size_mask")
    code, _out, err = run_cli(["train", "--data", root, "--out", tmp_path / "run", *TINY_TRAIN, "--set", "data.check=none",
                               "--set", "data.tasks=[breast_lesion]", "--set", "data.val_fraction=0"], capsys)
    assert code == 2 and err.startswith("error: csv_files/data.csv line 2 (task breast_lesion): mask ")
    assert "is (20, 32) but its image is (32, 32)" in err


# predict reads the images, not the labels' files: image faults and CSV faults matter.
PREDICT = {
    "zero_byte_image": "Classification/breast_2cls/000.png: not a readable image (empty file, 0 bytes)",
    "truncated_png": "Classification/breast_2cls/000.png: not a readable image (truncated or corrupt PNG pixel data",
    "truncated_jpg": "Detection/thyroid_nodule_det/000.jpg: not a readable image (truncated or corrupt JPEG pixel data",
    "not_an_image": "Classification/breast_2cls/000.png: not a readable image (not an image file of a known format)",
    "missing_image": "Classification/breast_2cls/000.png: file not found",
    "escaping_path": "/etc/passwd: not a readable image (not an image file of a known format)",
}
# Row problems of the CSVs all take one path (the layout reader's list); three stand for them.
PREDICT_CSV = ["empty_csv", "unknown_kind", "duplicate_row"]
PREDICT_OK = ["sixteen_bit_image", "csv_bom", "mask_value_too_large"]  # masks are outputs here


@pytest.mark.parametrize("name", sorted(PREDICT) + PREDICT_CSV + PREDICT_OK)
def test_predict(tmp_path, capsys, name):
    root, before = _root(tmp_path, name)
    out = tmp_path / "pred"
    code, stdout, err = run_cli(["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", out,
                                 "--workers", "0", "--no-progress", "--device", "cpu"], capsys)
    if name in PREDICT_OK:
        assert code == 0 and f"wrote {out}: 5 mask(s)" in err and "total                               13" in stdout
        assert json.loads((out / "classification_predictions.json").read_text())
    elif name in PREDICT:
        line = 11 if name == "truncated_jpg" else 7
        assert code == 2 and err.startswith(f"error: csv_files/data.csv line {line} (task ") and PREDICT[name] in err
        assert not any(out.glob("*.json"))  # no submission that looks complete
    else:
        assert code == 2 and err.startswith(f"error: {root}: ") and VALIDATE[name][0] in err
        assert not out.exists()
    assert fingerprint(root) == before


@pytest.fixture(scope="module")
def perfect_predictions(tmp_path_factory):
    """The exact submission of the valid tiny root."""
    folder = tmp_path_factory.mktemp("truth")
    materialise(str(folder / "data"), valid_rows())
    write_truth_submission(str(folder / "data"), str(folder / "pred"))
    return folder / "pred"


# Broken ground-truth rows are an error; with --partial they are left out of the score
# and named as warnings.
EVALUATE_WARNS = ["empty_csv", "missing_column", "unknown_kind", "num_classes_disagree", "label_out_of_range",
                  "inverted_box", "malformed_point", "duplicate_row"]


@pytest.mark.parametrize("name", EVALUATE_WARNS + ["zero_byte_mask", "wrong_size_mask"])
def test_evaluate_ground_truth_side(tmp_path, capsys, name, perfect_predictions):
    root, before = _root(tmp_path, name)
    preds_before = fingerprint(perfect_predictions)
    out = tmp_path / "eval"
    code, stdout, err = run_cli(["evaluate", "--data", root, "--pred", perfect_predictions, "--out", out,
                                 "--workers", "1", "--partial"], capsys)
    if name == "zero_byte_mask":
        assert code == 2 and err.startswith("error: ground truth csv_files/data.csv line 2 (task breast_lesion): ")
        assert "MASKS/000.png: not a readable image (empty file, 0 bytes)" in err and not out.exists()
    elif name == "wrong_size_mask":  # the prediction (32x32) is nearest-resized to the truth, and said so
        results = json.loads((out / "results.json").read_text())
        assert code == 0 and "1 predicted mask(s) differ in size from the ground truth and were nearest-resized" in results["warnings"]
    else:
        results = json.loads((out / "results.json").read_text())
        assert code == 0 and f"ground truth: {VALIDATE[name][0]}" in "\n".join(results["warnings"])
        assert f"ground truth: {VALIDATE[name][0]}" in stdout
    assert fingerprint(root) == before and fingerprint(perfect_predictions) == preds_before
