import pytest

from fmuia.errors import ConfigError
from fmuia.tasks import Kind, Task, TaskRegistry, fmuia2026


def test_fmuia2026_has_the_27_tasks_of_the_spec():
    reg = fmuia2026()
    assert len(reg) == 27
    assert [len(reg.of_kind(k)) for k in Kind] == [12, 9, 3, 3]
    assert reg["IUGC"].num_points == 3
    assert reg["fetal_abdomen_multi"].num_classes == 5
    assert reg["fetal_head_pos_cls"].n == 8 and reg["fetal_head_pos_cls"].orientation_sensitive
    assert reg["thyroid_nodule_det"].kind is Kind.DETECTION


def test_kind_csv_spelling():
    assert Kind.KEYPOINTS.csv_name == "Regression"
    assert Kind.from_csv("Regression") is Kind.KEYPOINTS
    assert Kind.from_csv(" segmentation ") is Kind.SEGMENTATION
    with pytest.raises(ValueError, match="unknown task kind 'segmentaton'"):
        Kind.from_csv("segmentaton")


def test_registry_round_trips_through_yaml_and_lists():
    reg = fmuia2026()
    assert TaskRegistry.from_yaml(reg.to_yaml()) == reg
    assert TaskRegistry.from_list(reg.to_list()) == reg
    assert reg.index(reg.task_ids[5]) == 5


def test_task_validation_messages():
    with pytest.raises(ValueError, match="detection tasks have n == 1"):
        Task("x", Kind.DETECTION, 2)
    with pytest.raises(ValueError, match="needs n >= 2"):
        Task("x", "classification", 1)
    with pytest.raises(ValueError, match="2 class names given for n = 3"):
        Task("x", "classification", 3, class_names=("a", "b"))
    with pytest.raises(AttributeError):
        Task("x", Kind.KEYPOINTS, 2).num_classes


def test_duplicate_and_unknown_tasks():
    reg = fmuia2026()
    with pytest.raises(ValueError, match="already registered"):
        reg.add(reg["FUGC"])
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        reg["nope"]
    sub = reg.subset(["lung", "FUGC"])
    assert sub.task_ids == ["FUGC", "lung"]  # registry order is kept


def test_registry_file_errors_are_config_errors(tmp_path):
    bad = tmp_path / "tasks.yaml"
    bad.write_text("tasks:\n  - {task_id: a, kind: segmentation, n: 1}\n")
    with pytest.raises(ConfigError, match="tasks.yaml: invalid task registry"):
        TaskRegistry.from_file(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        TaskRegistry.from_file(str(tmp_path / "missing.yaml"))
