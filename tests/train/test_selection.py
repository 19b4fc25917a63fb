"""The checkpoint-selection rules (``train.select``): the official mean of metric cells
and the balanced mean of skills, by hand; and a training run that selects by them."""
import csv
import json
import os

import pytest

from fmuia import kinds
from fmuia.errors import ConfigError
from fmuia.evaluate import aggregate
from fmuia.metrics.results import TaskResult
from fmuia.metrics.selection import balanced_score, official_score, skill
from fmuia.tasks import Kind
from fmuia.train import Trainer, train
from fmuia.train import validation
from fmuia.train.validation import Validation
from train_helpers import tiny_config

SEG, CLS, DET, KP = Kind.SEGMENTATION, Kind.CLASSIFICATION, Kind.DETECTION, Kind.KEYPOINTS


def _result(task_id, kind, metrics, score, num_samples=4):
    return TaskResult(task_id, kind, 2, num_samples, metrics, score)


def _results():
    return [
        _result("seg_a", SEG, {"DSC": 0.8, "HD": 12.0, "HD_norm": 0.3}, 0.75),
        _result("seg_b", SEG, {"DSC": 0.6, "HD": 20.0, "HD_norm": 0.4}, 0.6),
        _result("cls_a", CLS, {"Accuracy": 0.7, "AUC": 0.9, "F1_macro": 0.5, "F1_weighted": 0.6, "MCC": 0.3}, 0.9),
        _result("det_a", DET, {"IoU": 0.4}, 0.4),
        _result("kp_a", KP, {"MRE": 3.0, "MRE_norm": 0.1}, 0.92),
        _result("det_empty", DET, {"IoU": None}, None, num_samples=0),
    ]


def _official_columns():
    return {k.kind: k.official_selection_metrics for k in kinds.all_kinds()}


def test_each_kind_names_its_official_columns():
    assert _official_columns() == {SEG: ("DSC",), CLS: ("Accuracy", "F1_macro"), DET: ("IoU",), KP: ()}


def test_official_rule_by_hand():
    # cells: DSC 0.8, 0.6; Accuracy 0.7 and F1 0.5 (classification twice); IoU 0.4;
    # keypoints and the task without samples add none
    expected = (0.8 + 0.6 + 0.7 + 0.5 + 0.4) / 5
    assert official_score(_results(), _official_columns()) == pytest.approx(expected, abs=1e-15)
    validation = Validation(_results(), aggregate.summarise(_results()), select="official")
    assert validation.selection_score() == pytest.approx(expected, abs=1e-15)
    assert validation.selection_score("challenge") == validation.score == pytest.approx((0.75 + 0.6 + 0.9 + 0.4 + 0.92) / 5)
    # an undefined cell is left out, not counted as 0
    undefined = _results()[:3]
    undefined[2].metrics["F1_macro"] = None
    assert official_score(undefined, _official_columns()) == pytest.approx((0.8 + 0.6 + 0.7) / 3)
    assert official_score(_results()[4:], _official_columns()) is None


def test_balanced_rule_by_hand():
    chance = {"seg_a": 0.5, "seg_b": 0.2, "cls_a": 0.5, "det_a": 0.0, "kp_a": 0.9, "det_empty": None}
    balanced = balanced_score(_results(), chance)
    seg = ((0.75 - 0.5) / 0.5 + (0.6 - 0.2) / 0.8) / 2
    cls, det, kp = (0.9 - 0.5) / 0.5, 0.4, (0.92 - 0.9) / 0.1
    assert balanced.per_kind == pytest.approx({"segmentation": seg, "classification": cls, "detection": det, "keypoints": kp})
    assert balanced.score == pytest.approx((seg + cls + det + kp) / 4)
    assert balanced.per_task["det_empty"] is None
    validation = Validation(_results(), aggregate.summarise(_results()), select="balanced", chance=chance)
    assert validation.selection_score() == pytest.approx(balanced.score)
    columns = validation.selection_columns()
    assert columns["val_score"] == pytest.approx(balanced.score) and columns["challenge_score"] == validation.score
    assert columns["skill_keypoints"] == pytest.approx(kp)
    # a kind whose every task is degenerate (chance already perfect) drops out of the mean
    chance["kp_a"] = 1.0
    assert balanced_score(_results(), chance).score == pytest.approx((seg + cls + det) / 3)


def test_skill_scale():
    assert skill(0.5, 0.5) == 0.0 and skill(1.0, 0.5) == 1.0 and skill(0.25, 0.5) == -0.5
    assert skill(None, 0.5) is None and skill(0.5, None) is None and skill(1.0, 1.0) is None


def test_an_unknown_rule_is_refused_naming_the_key():
    validation = Validation(_results(), aggregate.summarise(_results()))
    with pytest.raises(ConfigError, match="train.select"):
        validation.selection_score("best")
    assert set(validation.selection_columns()) == {"val_score", "challenge_score"}


def _capture_validations(monkeypatch):
    seen = []
    original = Trainer._validate

    def keep(self):
        val = original(self)
        seen.append(val)
        return val

    monkeypatch.setattr(Trainer, "_validate", keep)
    return seen


@pytest.mark.usefixtures("one_thread")
def test_training_selects_by_the_official_rule(train_root, tmp_path, monkeypatch):
    seen = _capture_validations(monkeypatch)
    run = str(tmp_path / "run")
    result = train(tiny_config(epochs=3, select="official"), train_root, run)
    rows = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
    assert len(rows) == len(seen) == 3
    for row, val in zip(rows, seen):
        cells = [v for r in val.results for name in kinds.kind_of(r.kind).official_selection_metrics
                 if (v := r.metrics[name]) is not None]
        assert float(row["val_score"]) == pytest.approx(sum(cells) / len(cells), abs=1e-12)
        assert float(row["challenge_score"]) == pytest.approx(val.score, abs=1e-12)
    official = [float(r["val_score"]) for r in rows]
    assert result.best_score == pytest.approx(max(official), abs=1e-12)
    assert result.best_epoch == 1 + official.index(max(official))
    sidecar = json.load(open(os.path.join(run, "best", "model.json")))
    assert sidecar["extra"]["epoch"] == result.best_epoch
    # resuming under another rule would compare scores of different scales
    with pytest.raises(ConfigError, match="train.select"):
        train(resume=run, overrides=["train.epochs=4", "train.select=challenge"])


@pytest.mark.usefixtures("one_thread")
def test_training_selects_by_the_balanced_rule(train_root, tmp_path, monkeypatch):
    seen = _capture_validations(monkeypatch)
    computed = []
    chance_scores = validation.chance_scores

    def counted(task, labels, sizes):
        computed.append(task.task_id)
        if task.kind.value == "segmentation":  # scored batch by batch: no mask is held
            assert len(labels) <= 4
        return chance_scores(task, labels, sizes)

    monkeypatch.setattr(validation, "chance_scores", counted)
    run = str(tmp_path / "run")
    result = train(tiny_config(epochs=2, select="balanced"), train_root, run)
    rows = result.history
    # once, on the first validation: each task's chance predictions scored
    assert set(computed) == {"breast_lesion", "breast_2cls", "thyroid_nodule_det", "FUGC"}
    assert seen[0].chance == seen[1].chance
    assert set(seen[0].chance) == {"breast_lesion", "breast_2cls", "thyroid_nodule_det", "FUGC"}
    for row, val in zip(rows, seen):
        balanced = balanced_score(val.results, val.chance)
        assert row["val_score"] == balanced.score and row["challenge_score"] == val.score
        assert {k: row[f"skill_{k}"] for k in balanced.per_kind} == balanced.per_kind
    assert result.best_score == max(r["val_score"] for r in rows)
