import math

import pytest
import torch

from fmuia.errors import ConfigError
from fmuia.config.sections import LossConfig
from fmuia.tasks import Kind, fmuia2026
from fmuia.kinds import kind_of
from fmuia.kinds.base import Head
from fmuia.kinds.detection import centre_cells
from fmuia.train.losses import TaskLoss, loss_for

REG = fmuia2026()
HEADS = {Kind.SEGMENTATION: "conv", Kind.CLASSIFICATION: "linear", Kind.KEYPOINTS: "regression", Kind.DETECTION: "grid"}


def value(task_id, raw, target, **params):
    task = REG[task_id]
    fn = loss_for(task.kind, HEADS[task.kind])
    defaults = {"box_weight": 8.0} if task.kind is Kind.DETECTION else {}
    return float(fn(raw, target, task, {**defaults, **params}))


def test_cross_entropy_known_value():
    assert value("breast_2cls", torch.zeros(1, 2), torch.tensor([0])) == pytest.approx(math.log(2))


def test_keypoint_mse_on_normalised_coordinates():
    raw = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    target = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])
    assert value("FUGC", raw, target) == pytest.approx(0.25)


def test_multiclass_dice_known_values():
    target = torch.ones(1, 2, 2, dtype=torch.long)
    # uniform probabilities: class 1 dice = 2 * 2 / (2 + 4); class 0 is absent and counts 0
    assert value("lung", torch.zeros(1, 2, 2, 2), target) == pytest.approx((1 - 2 / 3) / 2, abs=1e-6)
    perfect = torch.stack([torch.full((2, 2), -20.0), torch.full((2, 2), 20.0)])[None]
    assert value("lung", perfect, target) == pytest.approx(0.0, abs=1e-6)
    wrong = -perfect
    assert value("lung", wrong, target) == pytest.approx(0.5, abs=1e-6)


def test_detection_bce_on_centre_cell_plus_8_l1():
    raw = torch.zeros(1, 5, 2, 2)
    box = torch.tensor([[0.0, 0.0, 0.5, 0.5]])  # centre (0.25, 0.25): cell (0, 0)
    # BCE of zero logits is log 2 everywhere; box sigmoid(0) = 0.5 vs target: L1 mean 0.25
    assert value("thyroid_nodule_det", raw, box) == pytest.approx(math.log(2) + 8 * 0.25, abs=1e-6)
    assert value("thyroid_nodule_det", raw, box, box_weight=1.0) == pytest.approx(math.log(2) + 0.25, abs=1e-6)
    # a confident score at the centre cell and matching box give a small loss
    good = torch.full((1, 5, 2, 2), -10.0)
    good[0, 4, 0, 0] = 10.0
    good[0, :4, 0, 0] = torch.logit(torch.tensor([0.01, 0.01, 0.5, 0.5]))
    assert value("thyroid_nodule_det", good, box) < 0.1
    row, col = centre_cells(torch.tensor([[0.6, 0.1, 1.0, 0.3], [0.0, 0.9, 1.0, 1.0]]), 4, 4)
    assert row.tolist() == [0, 3] and col.tolist() == [3, 2]


def test_task_loss_weights_and_per_task_values():
    reg = REG.subset(["breast_2cls", "FUGC"])
    loss = TaskLoss(reg, HEADS, LossConfig(kind_weights={"classification": 2.0}, task_weights={"FUGC": 3.0}))
    outputs = {"breast_2cls": torch.zeros(1, 2), "FUGC": torch.tensor([[0.5, 0.5, 0.0, 0.0]])}
    targets = {"breast_2cls": torch.tensor([0]), "FUGC": torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])}
    total, per_task = loss(outputs, targets)
    assert float(per_task["breast_2cls"]) == pytest.approx(math.log(2))
    # each task weighted by its share of the batch (1 of 2 rows each)
    assert float(total) == pytest.approx(0.5 * 2.0 * math.log(2) + 0.5 * 3.0 * 0.25)


def test_loss_config_errors_and_registry_is_open():
    with pytest.raises(ConfigError, match="loss.task_weights.nope"):
        TaskLoss(REG, HEADS, LossConfig(task_weights={"nope": 1.0}))
    with pytest.raises(ConfigError, match="loss.params.detection.grid.gamma"):
        TaskLoss(REG, HEADS, LossConfig(params={"detection.grid": {"gamma": 2}}))
    with pytest.raises(ConfigError, match="no loss registered"):
        loss_for(Kind.KEYPOINTS, "heatmap_test")

    def heatmap(raw, target, task, params):
        return raw.sum() * 0 + params["sigma"]

    class TestHead(Head):
        pass

    kind_of(Kind.KEYPOINTS).add_head("heatmap_test", TestHead, heatmap, sigma=2.0)
    try:
        loss = TaskLoss(REG.subset(["FUGC"]), {Kind.KEYPOINTS: "heatmap_test"}, LossConfig(params={"keypoints.heatmap_test": {"sigma": 3.0}}))
        total, _ = loss({"FUGC": torch.zeros(2, 4)}, {"FUGC": torch.zeros(2, 2, 2)})
        assert float(total) == 3.0
    finally:
        del kind_of(Kind.KEYPOINTS).head_types["heatmap_test"]


def test_default_kind_weights_follow_the_registered_kinds():
    from fmuia import kinds

    assert LossConfig().kind_weights == {k.name: 1.0 for k in kinds.all_kinds()}
    assert list(LossConfig().kind_weights) == ["segmentation", "classification", "detection", "keypoints"]
