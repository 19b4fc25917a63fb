import math

import pytest
import torch

from fmuia.errors import CheckpointError, ConfigError
from fmuia.config import catalogue, load_config
from fmuia.config.sections import LossConfig
from fmuia.tasks import Kind, fmuia2026
from fmuia.kinds import kind_of
from fmuia.kinds.head import Head
from fmuia.kinds.detection_heads import centre_cells
from fmuia.train.losses import TaskLoss, loss_for, loss_params

REG = fmuia2026()
HEADS = {Kind.SEGMENTATION: "conv", Kind.CLASSIFICATION: "linear", Kind.KEYPOINTS: "regression", Kind.DETECTION: "grid"}


def value(task_id, raw, target, **params):
    task = REG[task_id]
    fn = loss_for(task.kind, HEADS[task.kind])
    defaults = {"box_weight": 8.0, "negatives": True, "positive_share": 0.0} if task.kind is Kind.DETECTION else {}
    return float(fn(raw, target, task, {**defaults, **params}))


def test_cross_entropy_known_value():
    assert value("breast_2cls", torch.zeros(1, 2), torch.tensor([0])) == pytest.approx(math.log(2))


def test_label_smoothing_spreads_that_much_of_the_target_over_the_classes():
    logits, target = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    logp = torch.log_softmax(logits, dim=1)[0]
    by_hand = -(0.9 * logp[0] + 0.1 * logp.mean())  # 0.1 of the mass spread evenly over the 3 classes
    assert value("breast_3cls", logits, target, label_smoothing=0.1) == pytest.approx(float(by_hand), rel=1e-6)
    assert value("breast_3cls", logits, target, label_smoothing=0.0) == pytest.approx(float(-logp[0]), rel=1e-6)
    assert loss_params(Kind.CLASSIFICATION, "position_pooled") == {"label_smoothing": 0.0}
    for bad in (1.0, -0.1, "0.1", True):
        with pytest.raises(ConfigError, match="label_smoothing"):
            value("breast_3cls", logits, target, label_smoothing=bad)


def test_keypoint_mse_on_normalised_coordinates():
    raw = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    target = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])
    assert value("FUGC", raw, target) == pytest.approx(0.25)


def test_bounded_keypoint_mse_compares_the_sigmoids_with_the_targets():
    fn = loss_for(Kind.KEYPOINTS, "bounded_regression")
    raw = torch.tensor([[0.0, 0.0, 50.0, -50.0]])  # sigmoids 0.5, 0.5, ~1, ~0
    target = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]])
    assert float(fn(raw, target, REG["FUGC"], {})) == pytest.approx(0.5, abs=1e-6)
    # far outside the image, the plain loss grows with the overshoot; the bounded one cannot
    far = torch.tensor([[9.0, 9.0, 9.0, 9.0]])
    assert value("FUGC", far, target) > 50
    assert float(fn(far, target, REG["FUGC"], {})) < 1


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


def _grid_loss_and_score_grad(raw, box, **params):
    raw = raw.clone().requires_grad_(True)
    loss = loss_for(Kind.DETECTION, "grid")(raw, box, REG["thyroid_nodule_det"], {**loss_params(Kind.DETECTION, "grid"), **params})
    loss.backward()
    return float(loss.detach()), raw.grad[:, 4]


def test_detection_grid_default_is_bce_over_every_cell_by_hand():
    torch.manual_seed(0)
    raw = torch.randn(2, 5, 3, 4)
    box = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.6, 1.0, 1.0]])  # centre cells (0, 1) and (2, 3)
    cells = [(0, 0, 1), (1, 2, 3)]
    score = raw[:, 4]
    bce = 0.0
    for b in range(2):
        for r in range(3):
            for c in range(4):
                z = float(score[b, r, c])
                bce += -math.log(1 / (1 + math.exp(-z))) if (b, r, c) in cells else -math.log(1 - 1 / (1 + math.exp(-z)))
    l1 = sum(abs(float(torch.sigmoid(raw[b, i, r, c])) - float(box[b, i])) for b, r, c in cells for i in range(4))
    loss, _ = _grid_loss_and_score_grad(raw, box)
    assert loss == pytest.approx(bce / 24 + 8.0 * l1 / 8, abs=1e-5)
    assert _grid_loss_and_score_grad(raw, box, negatives=True)[0] == loss


def _two_boxes_on_a_3x4_grid(seed):
    """Random grid-head output (2, 5, 3, 4), two boxes whose centres fall in cells (0, 1)
    and (2, 3), and the mask of those centre cells."""
    torch.manual_seed(seed)
    raw = torch.randn(2, 5, 3, 4)
    box = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.6, 1.0, 1.0]])
    centre = torch.zeros(2, 3, 4, dtype=torch.bool)
    centre[0, 0, 1] = centre[1, 2, 3] = True
    return raw, box, centre


def test_detection_grid_without_negatives_scores_the_centre_cell_only():
    raw, box, centre = _two_boxes_on_a_3x4_grid(seed=1)
    loss, grad = _grid_loss_and_score_grad(raw, box, negatives=False)
    assert torch.all(grad[~centre] == 0) and torch.all(grad[centre] < 0)  # only the centre scores are pushed up
    l1 = (torch.sigmoid(torch.stack([raw[0, :4, 0, 1], raw[1, :4, 2, 3]])) - box).abs().mean()
    bce = -torch.nn.functional.logsigmoid(raw[:, 4][centre]).mean()
    assert loss == pytest.approx(float(bce + 8.0 * l1), abs=1e-6)
    # any other cell's score leaves the loss as it is
    moved = raw.clone()
    moved[:, 4][~centre] += 5.0
    assert _grid_loss_and_score_grad(moved, box, negatives=False)[0] == loss
    # with negatives every cell's score has a gradient, the other cells' pushed down
    _, grad = _grid_loss_and_score_grad(raw, box, negatives=True)
    assert torch.all(grad[~centre] > 0) and torch.all(grad[centre] < 0)


def test_detection_grid_negatives_is_a_loss_parameter():
    config = load_config({"loss": {"params": {"detection.grid": {"negatives": False, "positive_share": 0.0}}}})
    loss = TaskLoss(REG, HEADS, config.loss)
    assert loss.params["thyroid_nodule_det"] == {"box_weight": 8.0, "negatives": False, "positive_share": 0.0}
    with pytest.raises(ConfigError, match="loss.params.detection.grid.negatives: expected true or false"):
        TaskLoss(REG, HEADS, LossConfig(params={"detection.grid": {"negatives": "false"}}))


def test_detection_grid_positive_share_splits_the_score_loss_between_centre_and_other_cells():
    raw, box, centre = _two_boxes_on_a_3x4_grid(seed=2)
    score = raw[:, 4]
    positive = -torch.nn.functional.logsigmoid(score[centre]).mean()
    negative = -torch.nn.functional.logsigmoid(-score[~centre]).mean()
    l1 = (torch.sigmoid(torch.stack([raw[0, :4, 0, 1], raw[1, :4, 2, 3]])) - box).abs().mean()
    loss, grad = _grid_loss_and_score_grad(raw, box, positive_share=0.5)
    assert loss == pytest.approx(float(0.5 * positive + 0.5 * negative + 8.0 * l1), abs=1e-6)
    # the two centre cells together get as much pull as the 22 other cells
    assert float(grad[centre].abs().sum()) > 5 * float(_grid_loss_and_score_grad(raw, box)[1][centre].abs().sum())
    with pytest.raises(ConfigError, match="positive_share: expected a number in \\[0, 1\\)"):
        _grid_loss_and_score_grad(raw, box, positive_share=1.0)


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
        catalogue.forget_head_type("keypoints", "heatmap_test")


def test_default_kind_weights_follow_the_registered_kinds():
    from fmuia import kinds

    assert LossConfig().kind_weights == {k.name: 1.0 for k in kinds.all_kinds()}
    assert list(LossConfig().kind_weights) == ["segmentation", "classification", "detection", "keypoints"]


def _two_task_batch():
    outputs = {"breast_2cls": torch.tensor([[0.3, -0.2], [1.0, 0.5]]), "FUGC": torch.tensor([[0.5, 0.5, 0.0, 0.0]])}
    targets = {"breast_2cls": torch.tensor([0, 1]), "FUGC": torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])}
    return outputs, targets


def test_uncertainty_balance_weights_each_task_by_its_learned_log_variance():
    reg = REG.subset(["breast_2cls", "FUGC"])
    config = dict(kind_weights={"classification": 2.0}, task_weights={"FUGC": 3.0})
    fixed = TaskLoss(reg, HEADS, LossConfig(**config))
    learned = TaskLoss(reg, HEADS, LossConfig(balance="uncertainty", **config))
    outputs, targets = _two_task_batch()
    total_fixed, per_task = fixed(outputs, targets)
    # s = 0 at the start: the same loss as fixed
    assert learned(outputs, targets)[0].item() == pytest.approx(float(total_fixed), abs=1e-7)
    assert learned.balance_columns() == {"balance_breast_2cls": 1.0, "balance_FUGC": 1.0}
    with torch.no_grad():
        learned.balance.log_var("breast_2cls").fill_(0.5)
        learned.balance.log_var("FUGC").fill_(-1.0)
    total = learned(outputs, targets)[0].item()
    cls, kp = float(per_task["breast_2cls"]), float(per_task["FUGC"])
    expected = 2 / 3 * (math.exp(-0.5) * 2.0 * cls + 0.5) + 1 / 3 * (math.exp(1.0) * 3.0 * kp - 1.0)
    assert total == pytest.approx(expected, abs=1e-6)
    assert learned.balance_columns() == pytest.approx({"balance_breast_2cls": math.exp(-0.5), "balance_FUGC": math.exp(1.0)})
    # a task absent from the batch gets no gradient (the optimiser leaves its s alone)
    total, _ = learned({"FUGC": outputs["FUGC"]}, {"FUGC": targets["FUGC"]})
    total.backward()
    assert learned.balance.log_var("breast_2cls").grad is None
    assert learned.balance.log_var("FUGC").grad.item() == pytest.approx(1.0 - math.exp(1.0) * 3.0 * kp, abs=1e-6)
    assert fixed.balance is None and fixed.balance_columns() == {} and list(fixed.parameters()) == []


def test_uncertainty_balance_group_state_and_restore():
    from fmuia.config.sections import OptimConfig

    reg = REG.subset(["breast_2cls", "FUGC"])
    loss = TaskLoss(reg, HEADS, LossConfig(balance="uncertainty"))
    group = loss.param_group(OptimConfig(lr=2e-4))
    assert group["name"] == "loss balance" and group["weight_decay"] == 0.0
    assert group["lr"] == pytest.approx(2e-4 * OptimConfig().lr_multipliers.heads)
    assert [id(p) for p in group["params"]] == [id(p) for p in loss.parameters()]
    assert TaskLoss(reg, HEADS, LossConfig()).param_group(OptimConfig()) is None
    with torch.no_grad():
        loss.balance.log_var("FUGC").fill_(0.25)
    other = TaskLoss(reg, HEADS, LossConfig(balance="uncertainty"))
    before = [id(p) for p in other.parameters()]
    other.balance.load(loss.balance.state(), "run/last")
    assert [id(p) for p in other.parameters()] == before  # in place: the optimiser keeps its parameters
    assert other.balance.log_var("FUGC").item() == 0.25 and other.balance.log_var("breast_2cls").item() == 0.0
    with pytest.raises(CheckpointError, match="run/last: the saved loss balance is for tasks FUGC"):
        TaskLoss(REG.subset(["FUGC", "lung"]), HEADS, LossConfig(balance="uncertainty")).balance.load(
            {"FUGC": torch.zeros(())}, "run/last")
