"""The faithful (seed) recipe's code path, pinned: its head types and raw output shapes,
its loss parameters, and its loss values on fixed hand-made tensors. The improved
recipe's additions are switched on by config only; these numbers must not move."""
from __future__ import annotations

import os

import pytest
import torch

from fmuia.config import load_config
from fmuia.model import ModelConfig, build_model
from fmuia.model.heads import default_heads
from fmuia.model.routing import default_routes
from fmuia.tasks import Kind, Task, TaskRegistry
from fmuia.train.losses import TaskLoss, loss_for, loss_params

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEG, CLS, DET, KP = Task("s", Kind.SEGMENTATION, 3), Task("c", Kind.CLASSIFICATION, 3), Task("d", Kind.DETECTION, 1), Task("k", Kind.KEYPOINTS, 2)


def test_seed_head_types_and_routes_are_the_defaults():
    assert default_heads() == {Kind.SEGMENTATION: "conv", Kind.CLASSIFICATION: "linear", Kind.DETECTION: "grid",
                             Kind.KEYPOINTS: "regression"}
    assert default_routes() == {Kind.SEGMENTATION: "fpn", Kind.DETECTION: "fpn", Kind.CLASSIFICATION: "top",
                              Kind.KEYPOINTS: "top"}
    baseline = load_config(os.path.join(ROOT, "configs", "fmuia2026_baseline.yaml"))
    assert baseline["model"]["heads"] == {} and baseline["model"]["routing"] == {}
    assert "segmentation.conv" not in baseline["loss"]["params"]


def test_seed_head_output_shapes():
    registry = TaskRegistry([SEG, CLS, DET, KP])
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="resnet18", pretrained="none", image_size=64, channels_last=False), registry).eval()
    with torch.no_grad():
        raw = model(torch.randn(5, 3, 64, 64), ["s", "c", "d", "k", "s"])
        decoded = model.decode(raw)
    assert {t: tuple(v.shape) for t, v in raw.items()} == {"s": (2, 3, 64, 64), "c": (1, 3), "d": (1, 5, 16, 16), "k": (1, 4)}
    assert {t: tuple(v.shape) for t, v in decoded.items()} == {"s": (2, 3, 64, 64), "c": (1, 3), "d": (1, 5), "k": (1, 2, 2)}
    assert model.routes == {"s": "fpn", "c": "top", "d": "fpn", "k": "top"}


def test_seed_loss_parameters():
    assert loss_params(Kind.SEGMENTATION, "conv") == {"ce_weight": 0.0}
    assert loss_params(Kind.CLASSIFICATION, "linear") == {}
    assert loss_params(Kind.KEYPOINTS, "regression") == {}
    assert loss_params(Kind.DETECTION, "grid") == {"box_weight": 8.0}


def test_seed_loss_values_on_fixed_tensors():
    seg = torch.linspace(-2, 2, 2 * 3 * 4 * 4).view(2, 3, 4, 4).sin() * 2
    seg_target = torch.arange(32).view(2, 4, 4) % 3
    cls = torch.tensor([[1.0, -0.5, 0.25], [0.3, 0.2, -1.0]])
    kp = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    kp_target = torch.tensor([[[0.2, 0.2], [0.3, 0.1]], [[0.5, 0.5], [1.0, 0.8]]])
    det = torch.linspace(-3, 3, 2 * 5 * 4 * 4).view(2, 5, 4, 4).cos() * 1.5
    det_target = torch.tensor([[0.1, 0.2, 0.45, 0.6], [0.5, 0.55, 0.9, 0.95]])
    values = {
        "seg": loss_for(Kind.SEGMENTATION, "conv")(seg, seg_target, SEG, loss_params(Kind.SEGMENTATION, "conv")),
        "cls": loss_for(Kind.CLASSIFICATION, "linear")(cls, torch.tensor([0, 2]), CLS, {}),
        "kp": loss_for(Kind.KEYPOINTS, "regression")(kp, kp_target, KP, {}),
        "det": loss_for(Kind.DETECTION, "grid")(det, det_target, DET, {"box_weight": 8.0}),
    }
    assert values["seg"].item() == pytest.approx(0.6839246750, abs=1e-6)
    assert values["cls"].item() == pytest.approx(1.3030465841, abs=1e-6)
    assert values["kp"].item() == pytest.approx(0.025, abs=1e-7)  # (0.1² + 0.3² + 0.1² + 0.3²) / 8
    assert values["det"].item() == pytest.approx(2.7914416790, abs=1e-6)


def test_baseline_config_builds_the_seed_losses():
    baseline = load_config(os.path.join(ROOT, "configs", "fmuia2026_baseline.yaml"))
    registry = TaskRegistry([SEG, CLS, DET, KP])
    heads = {k: default_heads()[k] for k in Kind}
    loss = TaskLoss(registry, heads, baseline["loss"])
    assert loss.params == {"s": {"ce_weight": 0.0}, "c": {}, "d": {"box_weight": 8.0}, "k": {}}
    assert loss.fns["s"] is loss_for(Kind.SEGMENTATION, "conv")
