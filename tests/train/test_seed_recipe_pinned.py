"""The faithful (seed) recipe, pinned in full: tests/snapshots/seed_faithful.yaml (the
reference setting of the default code path, frozen so that the shipped recipes may evolve)
read through the builders the trainer uses (model, heads and routes per task, losses and their
parameters, sampler, augmentation pipeline per task, optimiser groups, gradient
clipping, learning-rate schedule), and its losses' values on fixed hand-made tensors.
The improved recipe's additions are switched on by config only; none of this may move."""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from fmuia.config import load_config, merge
from fmuia.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_eval_transform, build_train_transform, policy_for
from fmuia.model import ModelConfig, build_model
from fmuia.model.heads import default_heads
from fmuia.model.routing import default_routes
from fmuia.tasks import Kind, Task, TaskRegistry, fmuia2026
from fmuia.train import Trainer, train
from fmuia.runtime import training_precision
from fmuia.train.losses import TaskLoss, loss_for, loss_params
from fmuia.train.optim import build_optimizer, build_scheduler
from train_helpers import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED_RECIPE = os.path.join(ROOT, "tests", "snapshots", "seed_faithful.yaml")
SEG, CLS, DET, KP = Task("s", Kind.SEGMENTATION, 3), Task("c", Kind.CLASSIFICATION, 3), Task("d", Kind.DETECTION, 1), Task("k", Kind.KEYPOINTS, 2)


def test_seed_head_types_and_routes_are_the_defaults():
    assert default_heads() == {Kind.SEGMENTATION: "conv", Kind.CLASSIFICATION: "linear", Kind.DETECTION: "grid",
                             Kind.KEYPOINTS: "regression"}
    assert default_routes() == {Kind.SEGMENTATION: "fpn", Kind.DETECTION: "fpn", Kind.CLASSIFICATION: "top",
                              Kind.KEYPOINTS: "top"}
    seed_recipe = load_config(SEED_RECIPE)
    assert seed_recipe.model.heads == {} and seed_recipe.model.routing == {}
    assert "segmentation.conv" not in seed_recipe.loss.params


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
    assert loss_params(Kind.CLASSIFICATION, "linear") == {"label_smoothing": 0.0}  # 0: the plain cross-entropy
    assert loss_params(Kind.KEYPOINTS, "regression") == {}
    assert loss_params(Kind.DETECTION, "grid") == {"box_weight": 8.0, "negatives": True, "positive_share": 0.0}


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
        "det": loss_for(Kind.DETECTION, "grid")(det, det_target, DET, {"box_weight": 8.0, "negatives": True, "positive_share": 0.0}),
    }
    assert values["seg"].item() == pytest.approx(0.6839246750, abs=1e-6)
    assert values["cls"].item() == pytest.approx(1.3030465841, abs=1e-6)
    assert values["kp"].item() == pytest.approx(0.025, abs=1e-7)  # (0.1² + 0.3² + 0.1² + 0.3²) / 8
    assert values["det"].item() == pytest.approx(2.7914416790, abs=1e-6)


def test_seed_recipe_config_builds_the_seed_losses():
    seed_recipe = load_config(SEED_RECIPE)
    registry = TaskRegistry([SEG, CLS, DET, KP])
    heads = {k: default_heads()[k] for k in Kind}
    loss = TaskLoss(registry, heads, seed_recipe.loss)
    assert loss.params == {"s": {"ce_weight": 0.0}, "c": {"label_smoothing": 0.0}, "d": {"box_weight": 8.0, "negatives": True, "positive_share": 0.0}, "k": {}}
    assert loss.balance is None and list(loss.parameters()) == []
    assert loss.fns["s"] is loss_for(Kind.SEGMENTATION, "conv")


# -- the whole recipe, as the trainer builds it ---------------------------------------------
REGISTRY = fmuia2026()
KIND_TASKS = {kind: [t.task_id for t in REGISTRY if t.kind is kind] for kind in Kind}


@pytest.fixture(scope="module")
def seed_recipe():
    return load_config(SEED_RECIPE)


@pytest.fixture(scope="module")
def seed_model(seed_recipe):
    """The reference network for the 27 tasks, without downloading its ImageNet weights."""
    torch.manual_seed(0)
    return build_model(dataclasses.replace(seed_recipe.model, pretrained="none"), REGISTRY)


def _layers(module: torch.nn.Module) -> list[tuple]:
    """The leaf layers of a head with the parameters that define them."""
    out = []
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            out.append(("Conv2d", m.in_channels, m.out_channels, m.kernel_size, m.padding, m.bias is not None))
        elif isinstance(m, torch.nn.Linear):
            out.append(("Linear", m.in_features, m.out_features))
        elif isinstance(m, torch.nn.Dropout):
            out.append(("Dropout", m.p))
        elif isinstance(m, torch.nn.BatchNorm2d):
            out.append(("BatchNorm2d", m.num_features, m.eps, m.momentum))
        elif isinstance(m, torch.nn.ReLU):
            out.append(("ReLU",))
    return out


def test_seed_recipe_config_values(seed_recipe):
    values = seed_recipe.to_dict()
    assert values["seed"] == 42
    model = values["model"]
    assert (model["encoder"], model["pretrained"], model["image_size"]) == ("efficientnet_b4", "imagenet", 256)
    assert (model["decoder_channels"], model["decoder_out_channels"], model["decoder_dropout"], model["dropout"]) == (256, 128, 0.2, 0.2)
    assert model["heads"] == {} and model["routing"] == {}
    assert values["data"]["val_fraction"] == 0.2
    assert (values["train"]["epochs"], values["train"]["batch_size"], values["train"]["precision"]) == (50, 8, "auto")
    assert values["train"]["grad_clip"] == 1.0 and values["train"]["ema_decay"] is None
    assert values["train"]["max_steps"] is None and values["train"]["compile"] is False


def test_seed_recipe_heads_and_routes_per_task(seed_model):
    model = seed_model
    assert model.head_types == default_heads()
    expected_class = {Kind.SEGMENTATION: "SegmentationHead", Kind.CLASSIFICATION: "ClassificationHead",
                      Kind.DETECTION: "DetectionGridHead", Kind.KEYPOINTS: "KeypointRegressionHead"}
    route = {Kind.SEGMENTATION: "fpn", Kind.DETECTION: "fpn", Kind.CLASSIFICATION: "top", Kind.KEYPOINTS: "top"}
    # B4's deepest stage has 448 channels; the FPN's output 128.
    layers = {
        Kind.SEGMENTATION: lambda t: [("Conv2d", 128, t.n, (1, 1), (0, 0), True)],
        Kind.CLASSIFICATION: lambda t: [("Dropout", 0.2), ("Linear", 448, t.n)],
        Kind.KEYPOINTS: lambda t: [("Linear", 448, 2 * t.n)],
        Kind.DETECTION: lambda t: [("Conv2d", 128, 128, (3, 3), (1, 1), False), ("BatchNorm2d", 128, 1e-5, 0.1), ("ReLU",)] * 2
                                  + [("Conv2d", 128, 5, (1, 1), (0, 0), True)],
    }
    for task in REGISTRY:
        head = model.head(task.task_id)
        assert type(head).__name__ == expected_class[task.kind], task.task_id
        assert model.routes[task.task_id] == route[task.kind], task.task_id
        assert _layers(head) == layers[task.kind](task), task.task_id
    # The whole network, as the README states it.
    assert sum(p.numel() for p in model.parameters()) == 19_461_676


def test_seed_recipe_losses_per_task(seed_recipe, seed_model):
    loss = TaskLoss(REGISTRY, seed_model.head_types, seed_recipe.loss)
    names = {Kind.SEGMENTATION: "segmentation_dice", Kind.CLASSIFICATION: "classification_ce",
             Kind.DETECTION: "detection_grid", Kind.KEYPOINTS: "keypoint_mse"}
    params = {Kind.SEGMENTATION: {"ce_weight": 0.0}, Kind.CLASSIFICATION: {"label_smoothing": 0.0}, Kind.DETECTION: {"box_weight": 8.0, "negatives": True, "positive_share": 0.0},
              Kind.KEYPOINTS: {}}
    assert {t: f.__name__ for t, f in loss.fns.items()} == {t.task_id: names[t.kind] for t in REGISTRY}
    assert loss.params == {t.task_id: params[t.kind] for t in REGISTRY}
    assert loss.weights == {t.task_id: 1.0 for t in REGISTRY}


def test_seed_recipe_optimiser_groups(seed_recipe, seed_model):
    optimizer = build_optimizer(seed_model, seed_recipe.optim)
    assert type(optimizer) is torch.optim.AdamW
    groups = optimizer.param_groups
    assert [g["name"] for g in groups] == ["encoder", "decoder"] + [f"head:{t.task_id}" for t in REGISTRY]
    assert [g["lr"] for g in groups] == [1e-4] + [1e-3] * 28  # decoder and heads at 10x
    for g in groups:
        assert (g["weight_decay"], g["betas"], g["eps"], g["amsgrad"]) == (0.01, (0.9, 0.999), 1e-8, False), g["name"]
    owned = [id(p) for g in groups for p in g["params"]]
    assert len(owned) == len(set(owned)) == len(list(seed_model.parameters()))
    encoder = {id(p) for p in seed_model.encoder.parameters()}
    assert {id(p) for p in groups[0]["params"]} == encoder


def test_seed_recipe_schedule(seed_recipe, seed_model):
    assert seed_recipe.schedule.to_dict() == {"name": "cosine", "min_lr": 1e-6, "warmup_steps": 0, "interval": "step"}
    optimizer = build_optimizer(seed_model, seed_recipe.optim)
    total = 1001  # cosine over updates 0..1000: update 500 is half-way
    scheduler = build_scheduler(optimizer, seed_recipe.schedule, total)
    encoder, decoder = scheduler.lr_lambdas[0], scheduler.lr_lambdas[1]
    # No warm-up: the first update uses the full rate; every group ends at min_lr.
    assert encoder(0) == 1.0 and decoder(0) == 1.0
    assert 1e-4 * encoder(500) == pytest.approx(1e-6 + (1e-4 - 1e-6) / 2, rel=1e-12)
    assert 1e-3 * decoder(500) == pytest.approx(1e-6 + (1e-3 - 1e-6) / 2, rel=1e-12)
    assert 1e-4 * encoder(1000) == pytest.approx(1e-6, rel=1e-12) and 1e-3 * decoder(1000) == pytest.approx(1e-6, rel=1e-12)


def _pipeline(transform) -> list[tuple]:
    """Each albumentations step with the parameters that define what it does."""
    keys = {
        "Resize": ("height", "width", "interpolation", "mask_interpolation"),
        "RandomBrightnessContrast": ("p", "brightness_limit", "contrast_limit", "brightness_by_max"),
        "Normalize": ("mean", "std", "max_pixel_value"),
    }
    out = []
    for step in transform.to_dict()["transform"]["transforms"]:
        name = step["__class_fullname__"]
        out.append((name, {k: step[k] for k in keys.get(name, ("p",))}))
    return out


SEED_PIPELINE = [
    ("Resize", {"height": 256, "width": 256, "interpolation": 1, "mask_interpolation": 0}),  # linear; nearest masks
    ("RandomBrightnessContrast", {"p": 0.5, "brightness_limit": (-0.2, 0.2), "contrast_limit": (-0.2, 0.2),
                                  "brightness_by_max": True}),
    ("Normalize", {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "max_pixel_value": 255.0}),
]


def test_seed_recipe_augmentation_per_task(seed_recipe):
    size = seed_recipe.model.image_size
    for task in REGISTRY:
        transform = build_train_transform(size, task, policy_for(task, seed_recipe.augment))
        assert _pipeline(transform) == SEED_PIPELINE, task.task_id
        params = transform.to_dict()["transform"]
        assert (params["bbox_params"]["format"], params["bbox_params"]["clip"]) == ("pascal_voc", True)
        assert (params["keypoint_params"]["format"], params["keypoint_params"]["remove_invisible"]) == ("xy", False)
    assert _pipeline(build_eval_transform(size)) == [SEED_PIPELINE[0], SEED_PIPELINE[2]]


def _small_seed_recipe(seed_recipe, **train_cfg):
    """The seed recipe on the tiny network and CPU; everything else unchanged."""
    return merge(seed_recipe, {"device": "cpu", "model": TINY_MODEL, "data": {"num_workers": 0},
                               "train": {"progress": False, "plot": False, **train_cfg}})


def test_trainer_builds_the_seed_recipe_sampler_schedule_and_precision(seed_recipe, train_root, tmp_path):
    trainer = Trainer(_small_seed_recipe(seed_recipe), train_root, str(tmp_path / "run"))
    try:
        sampler = trainer.data.sampler
        assert (sampler.mode, sampler.batch_size) == ("round_robin", 8)
        assert sampler.weights == {t: 0.25 for t in sampler.groups}  # four tasks, uniform
        # 24 samples, 20% held out per task (1 of 6) -> 20 for training, 3 batches of 8.
        assert len(sampler) == 3 and trainer.total_steps == 50 * 3
        assert trainer.precision == "fp32" == training_precision("auto", torch.device("cpu"))
        assert trainer.ema is None
        lambdas = trainer.scheduler.lr_lambdas
        assert [round(1e-3 * lambdas[1](s), 12) for s in (0, 149)] == [1e-3, 1e-6]  # cosine over T = 150 updates
        transforms = trainer.data.train_loader.dataset.transforms
        assert sorted(transforms) == sorted(sampler.groups)
        for tf in transforms.values():
            assert _pipeline(tf) == [("Resize", {**SEED_PIPELINE[0][1], "height": 64, "width": 64})] + SEED_PIPELINE[1:]
    finally:
        trainer.close()


def test_seed_recipe_clips_the_gradient_norm_at_one(seed_recipe, train_root, tmp_path, monkeypatch):
    clip = torch.nn.utils.clip_grad_norm_
    seen = []

    def recording(parameters, max_norm, *args, **kwargs):
        seen.append(float(max_norm))
        return clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording)
    train(_small_seed_recipe(seed_recipe, max_steps=2, epochs=1), train_root, str(tmp_path / "run"))
    assert seen == [1.0, 1.0]
