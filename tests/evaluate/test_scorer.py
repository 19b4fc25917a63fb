"""``fmuia evaluate`` end to end on small data roots written by the tests."""
import csv
import json
import math
import os

import cv2
import numpy as np
import pytest

from dataset_builders import cls_row, materialise, seg_row, valid_rows
from fmuia.cli.main import main
from fmuia.errors import DataError
from fmuia.evaluate.outputs import write_evaluation
from fmuia.evaluate.scorer import evaluate
from fmuia.evaluate.truth_submission import write_truth_submission


@pytest.fixture
def root_and_truth(tmp_path):
    root = str(tmp_path / "data")
    rows = valid_rows() + [seg_row(i) for i in range(3, 20)] + [cls_row(i, label=i % 2) for i in range(4, 8)]
    materialise(root, rows)
    pred = str(tmp_path / "pred")
    write_truth_submission(root, pred)
    return root, pred


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_truth_scored_against_itself_is_perfect(root_and_truth, tmp_path, capsys):
    root, pred = root_and_truth
    out = str(tmp_path / "eval")
    assert main(["evaluate", "--data", root, "--pred", pred, "--out", out, "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Challenge score: 1.0000" in printed
    results = json.load(open(os.path.join(out, "results.json")))
    tasks = results["tasks"]
    assert tasks["breast_lesion"]["metrics"]["DSC"] == 1.0 and tasks["breast_lesion"]["metrics"]["HD"] == 0.0
    assert tasks["cardiac_multi"]["metrics"]["DSC"] == 1.0 and tasks["cardiac_multi"]["metrics"]["HD"] == 0.0
    assert tasks["breast_lesion"]["num_samples"] == 20  # pooled over chunks
    assert tasks["breast_2cls"]["metrics"]["Accuracy"] == 1.0 and tasks["breast_2cls"]["metrics"]["AUC"] == 1.0
    assert tasks["thyroid_nodule_det"]["metrics"]["IoU"] == 1.0
    assert tasks["FUGC"]["metrics"]["MRE"] == 0.0
    assert results["challenge_score"] == 1.0 and results["missing"] == 0 and results["extra"] == 0
    for name in ("summary.txt", "per_task.csv", "per_sample.csv", "missing.csv", "extra.csv"):
        assert os.path.isfile(os.path.join(out, name))
    per_task = {r["task_id"]: r for r in read_csv(os.path.join(out, "per_task.csv"))}
    assert per_task["FUGC"]["MRE"] == "0.0" and per_task["breast_2cls"]["scored"] == "8"
    summary = open(os.path.join(out, "summary.txt")).read()
    for label in ("DSC=", "HD=", "Accuracy=", "AUC=", "F1 macro=", "F1 weighted=", "MCC=", "IoU=", "MRE="):
        assert label in summary


def test_parallel_and_serial_give_the_same_numbers(root_and_truth, tmp_path):
    root, _ = root_and_truth
    pred = str(tmp_path / "noisy")
    write_truth_submission(root, pred, noise=0.5, seed=3)
    a, b = evaluate(root, pred, workers=1), evaluate(root, pred, workers=2)
    assert [r.metrics for r in a.tasks] == [r.metrics for r in b.tasks]
    assert a.task("breast_lesion").metrics["DSC"] < 1.0


def test_missing_and_extra_predictions_are_listed(root_and_truth, tmp_path):
    root, pred = root_and_truth
    os.remove(os.path.join(pred, "Segmentation/Two/breast_lesion/MASKS/001.png"))
    cls_file = os.path.join(pred, "classification_predictions.json")
    items = json.load(open(cls_file))
    dropped = items.pop(0)
    items.append({**items[0], "image_path": "../Classification/breast_2cls/999.png"})
    items.append({**items[0], "task_id": "not_a_task"})
    json.dump(items, open(cls_file, "w"))
    stray = os.path.join(pred, "Segmentation/Two/breast_lesion/MASKS/stray.png")
    cv2.imwrite(stray, np.zeros((4, 4), np.uint8))

    ev = evaluate(root, pred, workers=1)
    assert ev.counts["breast_lesion"]["missing"] == 1 and ev.counts["breast_lesion"]["scored"] == 19
    assert ev.counts["breast_2cls"]["missing"] == 1 and ev.counts["breast_2cls"]["extra"] == 1
    out = str(tmp_path / "eval")
    write_evaluation(ev, out)
    missing = read_csv(os.path.join(out, "missing.csv"))
    assert {(m["task_id"], m["image_path"]) for m in missing} == {
        ("breast_lesion", "../Segmentation/Two/breast_lesion/IMAGES/001.png"),
        ("breast_2cls", dropped["image_path"]),
    }
    extra = read_csv(os.path.join(out, "extra.csv"))
    reasons = sorted(e["reason"] for e in extra)
    assert reasons == [
        "no labelled ground-truth row with this image_path",
        "no segmentation row has this mask_path",
        "task not in the ground truth",
    ]
    assert any("1 of 20 labelled samples have no prediction" in w for w in ev.warnings)


def test_missing_prediction_file_counts_every_sample_missing(root_and_truth):
    root, pred = root_and_truth
    os.remove(os.path.join(pred, "detection_predictions.json"))
    ev = evaluate(root, pred, workers=1)
    assert ev.counts["thyroid_nodule_det"]["missing"] == 2
    assert ev.task("thyroid_nodule_det").score is None and ev.task("thyroid_nodule_det").metrics["IoU"] is None
    assert "thyroid_nodule_det" in ev.summary.tasks_without_samples


def test_other_size_prediction_is_nearest_resized_and_empty_class_costs_the_diagonal(root_and_truth):
    root, pred = root_and_truth
    folder = os.path.join(pred, "Segmentation/Two/breast_lesion/MASKS")
    gt = cv2.imread(os.path.join(root, "Segmentation/Two/breast_lesion/MASKS/000.png"), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(gt, (64, 64), interpolation=cv2.INTER_NEAREST)  # upsampled exactly 2x
    cv2.imwrite(os.path.join(folder, "000.png"), big)
    cv2.imwrite(os.path.join(folder, "001.png"), np.zeros_like(gt))  # class 1 predicted nowhere
    ev = evaluate(root, pred, workers=1)
    r = ev.task("breast_lesion")
    assert r.per_class["1"]["DSC"] == pytest.approx(19 / 20)
    assert r.metrics["HD"] == pytest.approx(math.hypot(32, 32) / 20)
    assert any("nearest-resized" in w for w in ev.warnings)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda items: "[not json", "not valid JSON"),
        (lambda items: {"a": 1}, "expected a JSON list"),
        (lambda items: [items[0], {"image_path": items[1]["image_path"]}], "entry 1: missing or non-string 'task_id'"),
        (lambda items: [{**items[0], "predicted_probs": [1.0]}], "entry 0: 'predicted_probs' has 1 values, expected 2"),
        (lambda items: [{**items[0], "predicted_probs": ["a", 1]}], "entry 0: 'predicted_probs'[0] = 'a' is not a finite number"),
        (lambda items: [{**items[0], "predicted_class": "1"}], "entry 0: 'predicted_class' = '1' is not an integer"),
        (lambda items: [{**items[0], "predicted_class": 5}], "entry 0: 'predicted_class' = 5 outside 0..1"),
        (lambda items: [{**items[0], "predicted_probs": [0.7, 0.7]}], "entry 0: 'predicted_probs' must be non-negative and sum to 1"),
        (lambda items: [{**items[0], "task_id": "FUGC"}], "entry 0: task 'FUGC' is a keypoints task, not classification"),
    ],
)
def test_malformed_classification_file_names_file_and_entry(root_and_truth, mutate, message):
    root, pred = root_and_truth
    path = os.path.join(pred, "classification_predictions.json")
    bad = mutate(json.load(open(path)))
    with open(path, "w") as fh:
        fh.write(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(DataError) as exc:
        evaluate(root, pred, workers=1)
    assert path in str(exc.value) and message in str(exc.value)


@pytest.mark.parametrize(
    "name, key, value, message",
    [
        ("detection_predictions.json", "bbox_pixels", [1, 2, 3], "entry 0: 'bbox_pixels' has 3 values, expected 4"),
        ("detection_predictions.json", "bbox_pixels", None, "'bbox_pixels' must be a list of numbers"),
        ("regression_predictions.json", "predicted_points_pixels", [1, 2, 3, 4, 5, 6], "has 6 values, expected 4"),
        ("regression_predictions.json", "predicted_points_pixels", [1, 2, float("nan"), 4], "is not a finite number"),
    ],
)
def test_malformed_box_and_point_files(root_and_truth, name, key, value, message):
    root, pred = root_and_truth
    path = os.path.join(pred, name)
    items = json.load(open(path))
    items[0][key] = value
    with open(path, "w") as fh:
        fh.write(json.dumps(items))
    with pytest.raises(DataError, match=message):
        evaluate(root, pred, workers=1)


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    code = main(["evaluate", "--data", root, "--pred", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e")])
    assert code == 2 and "prediction folder not found" in capsys.readouterr().err
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "Segmentation/Two/breast_lesion/MASKS").mkdir(parents=True)
    (pred / "Segmentation/Two/breast_lesion/MASKS/000.png").write_bytes(b"not a png")
    code = main(["evaluate", "--data", root, "--pred", str(pred), "--out", str(tmp_path / "e")])
    assert code == 2 and "000.png: not a readable image" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, 2])
def test_result_files_are_byte_identical_to_the_scorer_before_its_speed_work(tmp_path_factory, workers):
    """A synthetic split of every kind (masks of 2 to 5 classes) and a perturbed submission
    with dropped predictions: the files written are those of the recorded scorer, bit for bit."""
    from scorer_snapshot import SNAPSHOT, score_synthetic_split

    folder = tmp_path_factory.getbasetemp() / "scorer_snapshot"
    folder.mkdir(exist_ok=True)
    assert score_synthetic_split(str(folder), workers) == json.loads(SNAPSHOT.read_text())
