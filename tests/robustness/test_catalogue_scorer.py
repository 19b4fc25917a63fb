"""``fmuia evaluate`` against a broken submission: a file it cannot read is an error
naming it; predictions it cannot score are listed (missing.csv, extra.csv) and counted
as missing, never silently dropped or repaired. The submission is never changed."""
from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
from catalogue_helpers import fingerprint, run_cli
from dataset_builders import materialise, valid_rows

from fmuia.evaluate.truth_submission import write_truth_submission

MASK = "Segmentation/Two/breast_lesion/MASKS/000.png"
CLS, DET = "classification_predictions.json", "detection_predictions.json"


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scorer")
    materialise(str(folder / "data"), valid_rows())
    write_truth_submission(str(folder / "data"), str(folder / "perfect"))
    return folder


def _edit_json(pred, name, change):
    records = json.loads((pred / name).read_text())
    change(records)
    (pred / name).write_text(json.dumps(records))


def _sixteen_bit(pred):
    m = cv2.imread(str(pred / MASK), cv2.IMREAD_UNCHANGED)
    assert cv2.imwrite(str(pred / MASK), m.astype(np.uint16))


def _rgb(pred):
    m = cv2.imread(str(pred / MASK), cv2.IMREAD_UNCHANGED)
    assert cv2.imwrite(str(pred / MASK), np.dstack([m, m, m]))


def _malformed(pred):
    (pred / CLS).write_text('[{"image_path": "../Classification/breast_2cls/000.png", ')


def _probs(pred):
    _edit_json(pred, CLS, lambda r: r[0].update(predicted_probs=[0.7, 0.7]))


def _class(pred):
    _edit_json(pred, CLS, lambda r: r[0].update(predicted_class=5))


def _nan_box(pred):
    text = (pred / DET).read_text()
    records = json.loads(text)
    records[0]["bbox_pixels"][0] = float("nan")
    (pred / DET).write_text(json.dumps(records))  # json writes NaN, as a careless writer would


FATAL = {
    "mask_16_bit": (_sixteen_bit, f"{MASK}: predicted mask is 16-bit; expected a single-channel 8-bit PNG of class ids"),
    "mask_rgb": (_rgb, f"{MASK}: predicted mask is 3 channels; expected a single-channel 8-bit PNG of class ids"),
    "malformed_json": (_malformed, f"{CLS}: not valid JSON (Expecting property name enclosed in double quotes: line 1"),
    "probs_not_summing_to_one": (_probs, f"{CLS}: entry 0: 'predicted_probs' must be non-negative and sum to 1, got sum 1.4"),
    "class_out_of_range": (_class, f"{CLS}: entry 0: 'predicted_class' = 5 outside 0..1"),
    "nan_in_bbox": (_nan_box, f"{DET}: entry 0: 'bbox_pixels'[0] = nan is not a finite number"),
}


@pytest.mark.parametrize("name", sorted(FATAL))
def test_unreadable_predictions_are_errors_naming_the_file(truth, tmp_path, capsys, name):
    fault, message = FATAL[name]
    pred = tmp_path / "pred"
    shutil.copytree(truth / "perfect", pred)
    fault(pred)
    before = fingerprint(pred)
    code, _out, err = run_cli(["evaluate", "--data", truth / "data", "--pred", pred, "--out", tmp_path / "eval",
                               "--workers", "1"], capsys)
    assert code == 2 and err.startswith(f"error: {pred}/{message}") and "Traceback" not in err
    assert not (tmp_path / "eval").exists() and fingerprint(pred) == before


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_missing_predictions_are_listed_and_scored_as_missing(truth, tmp_path, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(truth / "perfect", pred)
    (pred / MASK).unlink()
    _edit_json(pred, CLS, lambda r: r.pop(0))
    code, _out, _err = run_cli(["evaluate", "--data", truth / "data", "--pred", pred, "--out", tmp_path / "eval",
                                "--workers", "1"], capsys)
    assert code == 0
    missing = _rows(tmp_path / "eval" / "missing.csv")
    assert [(m["task_id"], m["image_path"], m["expected_in"]) for m in missing] == [
        ("breast_lesion", "../Segmentation/Two/breast_lesion/IMAGES/000.png", MASK),
        ("breast_2cls", "../Classification/breast_2cls/000.png", CLS),
    ]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["missing"] == 2 and results["tasks"]["breast_lesion"]["counts"]["missing"] == 1


def test_extra_predictions_are_listed_not_scored(truth, tmp_path, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(truth / "perfect", pred)
    extra_mask = pred / "Segmentation/Two/breast_lesion/MASKS/099.png"
    shutil.copy(pred / MASK, extra_mask)
    _edit_json(pred, CLS, lambda r: r.append({**r[0], "image_path": "../Classification/breast_2cls/099.png"}))
    code, _out, _err = run_cli(["evaluate", "--data", truth / "data", "--pred", pred, "--out", tmp_path / "eval",
                                "--workers", "1"], capsys)
    assert code == 0
    extra = _rows(tmp_path / "eval" / "extra.csv")
    assert len(extra) == 2 and {x["task_id"] for x in extra} >= {"breast_2cls"}
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["extra"] == 2 and results["missing"] == 0
    assert results["tasks"]["breast_2cls"]["score"] == pytest.approx(1.0)
