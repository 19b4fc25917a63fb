"""The improved recipe: its losses on hand-made tensors, its augmentation (targets move
with the image, boxes survive, no flip for orientation-sensitive tasks) and a short
training run."""
from __future__ import annotations

import math
import os

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from fmuia.config import load_config
from fmuia.config.sections import AugmentConfig
from fmuia.data.records import Entry, Sample
from fmuia.data.transforms import build_eval_transform, build_train_transform, encode_sample, policy_for
from fmuia.tasks import Kind, Task, fmuia2026
from fmuia.kinds.detection import centernet_loss, centre_targets
from fmuia.kinds.keypoints import keypoint_heatmap_loss
from fmuia.train.losses import loss_for, loss_params

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REG = fmuia2026()
KP_PARAMS = loss_params(Kind.KEYPOINTS, "heatmap")
DET_PARAMS = loss_params(Kind.DETECTION, "centernet")


# -- losses --------------------------------------------------------------------------------
def test_keypoint_heatmap_loss_known_value():
    # 2x2 map, uniform softmax -> soft-argmax (0.5, 0.5); target the centre of cell (0, 0).
    raw = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[0.25, 0.25]]])
    value = keypoint_heatmap_loss(raw, target, Task("k", Kind.KEYPOINTS, 1), KP_PARAMS)
    distance = math.sqrt(0.25**2 + 0.25**2)
    # Gaussian of sigma 1 cell at cell (0, 0): cells at distance 0, 1, 1, sqrt(2).
    g = [1.0, math.exp(-0.5), math.exp(-0.5), math.exp(-1.0)]
    q = [v / sum(g) for v in g]
    p = [0.25] * 4
    m = [(a + b) / 2 for a, b in zip(p, q)]
    js = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m)) + 0.5 * sum(b * math.log(b / c) for b, c in zip(q, m))
    assert KP_PARAMS == {"coord_weight": 2.0, "reg_weight": 1.0, "sigma": 1.0}
    assert value.item() == pytest.approx(2.0 * distance + js, rel=1e-5)


def test_keypoint_heatmap_loss_is_near_zero_for_the_target_gaussian_and_has_gradients():
    h = w = 16
    target = torch.tensor([[[0.40625, 0.59375]]])  # a cell centre: the Gaussian is symmetric
    xs = (torch.arange(w) + 0.5) / w
    d2 = ((xs.view(1, w) - target[0, 0, 0]) * w) ** 2 + ((xs.view(h, 1) - target[0, 0, 1]) * h) ** 2
    raw = (-d2 / 2).view(1, 1, h, w).requires_grad_()
    value = keypoint_heatmap_loss(raw, target, Task("k", Kind.KEYPOINTS, 1), KP_PARAMS)
    assert value.item() < 1e-3
    shifted = keypoint_heatmap_loss(raw.detach().roll(3, dims=3).requires_grad_(), target, Task("k", Kind.KEYPOINTS, 1), KP_PARAMS)
    assert shifted.item() > 0.3
    value.backward()
    assert torch.isfinite(raw.grad).all()


def _sides_logits(box: list[float], h: int, w: int) -> torch.Tensor:
    """(4, h, w) logits of the exact distances from every cell centre to the box's sides."""
    xs, ys = (torch.arange(w) + 0.5) / w, (torch.arange(h) + 0.5) / h
    cx, cy = xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)
    sides = torch.stack([cx - box[0], cy - box[1], box[2] - cx, box[3] - cy]).clamp(1e-4, 1 - 1e-4)
    return sides.log() - (-sides).log1p()


def test_centernet_loss_known_values():
    task = Task("d", Kind.DETECTION, 1)
    target = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    heat, inside = centre_targets(target, 2, 2, DET_PARAMS["gaussian_scale"])
    e = math.exp(-1.0)  # every non-peak cell is one sigma (0.5 cell) away on both axes
    assert torch.allclose(heat, torch.tensor([[[e, e], [e, 1.0]]]))
    assert inside.all()
    # Score logits 0 (p = 1/2): peak -log(1/2)(1/2)^2, three negatives -log(1/2)(1/2)^2(1-e)^4.
    focal = math.log(2) * 0.25 * (1 + 3 * (1 - e) ** 4)
    raw = torch.zeros(1, 5, 2, 2)
    raw[0, 1:5] = _sides_logits([0.0, 0.0, 1.0, 1.0], 2, 2)
    assert centernet_loss(raw, target, task, DET_PARAMS).item() == pytest.approx(focal, rel=1e-4)
    # Side logits 0: every cell predicts a unit box centred on itself, e.g. [-.25, -.25, .75, .75].
    raw[0, 1:5] = 0.0
    iou = 0.5625 / (2 - 0.5625)
    giou = iou - (1.5625 - (2 - 0.5625)) / 1.5625
    box = 2.0 * (1 - giou) + 5.0 * 1.0  # GIoU weight 2, L1 (summed over the sides) weight 5
    assert centernet_loss(raw, target, task, DET_PARAMS).item() == pytest.approx(focal + box, rel=1e-4)


def test_centernet_loss_rejects_false_peaks():
    task = Task("d", Kind.DETECTION, 1)
    target = torch.tensor([[0.1, 0.1, 0.3, 0.3]])
    raw = torch.full((1, 5, 8, 8), -4.0)
    raw[0, 1:5] = _sides_logits(target[0].tolist(), 8, 8)
    good = centernet_loss(raw.clone(), target, task, DET_PARAMS)
    raw[0, 0, 6, 6] = 4.0  # a confident score far from the box
    assert centernet_loss(raw, target, task, DET_PARAMS) > good + 1.0


def test_segmentation_cross_entropy_is_off_by_default_and_adds_when_asked():
    seg = Task("s", Kind.SEGMENTATION, 3)
    raw = torch.linspace(-2, 2, 2 * 3 * 4 * 4).view(2, 3, 4, 4).sin() * 2
    target = torch.arange(32).view(2, 4, 4) % 3
    loss = loss_for(Kind.SEGMENTATION, "conv")
    assert loss_params(Kind.SEGMENTATION, "conv") == {"ce_weight": 0.0}
    dice = loss(raw, target, seg, {"ce_weight": 0.0})
    both = loss(raw, target, seg, {"ce_weight": 0.5})
    ce = torch.nn.functional.cross_entropy(raw, target)
    assert both.item() == pytest.approx(dice.item() + 0.5 * ce.item(), rel=1e-6)


# -- augmentation --------------------------------------------------------------------------
SIZE = 64
GEOMETRIC = {"affine": 1.0, "brightness_contrast": 0.0, "hflip": 0.5}


def _scene():
    """A 96x128 image with two blobs; the class-1 lesion's box and a point inside each blob.
    The lesion is an ellipse, as lesions are roughly: a rotated box is fitted to the
    rotated ellipse inscribed in it, which is then the lesion's true box."""
    image = np.random.default_rng(0).integers(0, 60, (96, 128, 3), dtype=np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    cv2.ellipse(mask, (65, 42), (25, 18), 0, 0, 360, 1, thickness=-1)
    mask[66:86, 20:44] = 2
    box = np.array([[40.0, 24.0, 91.0, 61.0]])
    points = np.array([[65.0, 42.0], [32.0, 76.0]])
    return image, mask, box, points


def _bbox_of(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("task_id", ["breast_lesion", "thyroid_nodule_det", "FUGC"])
def test_geometric_augmentation_moves_mask_box_and_points_together(task_id):
    task = REG[task_id]
    transform = build_train_transform(SIZE, task, policy_for(task, AugmentConfig(default=GEOMETRIC)))
    assert any(isinstance(t, A.Affine) for t in transform.transforms)
    image, mask, box, points = _scene()
    plain = build_eval_transform(SIZE)(image=image, mask=mask, bboxes=box, keypoints=points)
    moved = 0
    for seed in range(25):
        transform.set_random_state(np.random.default_rng(seed), __import__("random").Random(seed))
        out = transform(image=image, mask=mask, bboxes=box, keypoints=points)
        m = np.asarray(out["mask"])
        assert len(out["bboxes"]) == 1
        assert _iou(out["bboxes"][0][:4], _bbox_of(m == 1)) > 0.85
        for (x, y), cls in zip(np.asarray(out["keypoints"])[:, :2], (1, 2)):
            if 0 <= x < SIZE and 0 <= y < SIZE:  # a crop may leave a point outside the frame
                assert m[int(y), int(x)] == cls
            else:
                assert not (m == cls).any() or cls == 2
        moved += np.abs(np.asarray(out["keypoints"])[:, :2] - np.asarray(plain["keypoints"])[:, :2]).max() > 1.0
    assert moved >= 15  # the geometry did change


def test_boxes_always_survive_detection_augmentation():
    task = REG["uterine_fibroid_det"]
    transform = build_train_transform(SIZE, task, policy_for(task, AugmentConfig(default={**GEOMETRIC, "speckle": 1.0, "gain": 1.0})))
    image = np.random.default_rng(1).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    entry = Entry(task_id=task.task_id, kind=task.kind, image_path="x.png", image_file="x.png", csv_file="c.csv", line=2)
    for corner in ([0.0, 0.0, 5.0, 4.0], [95.0, 76.0, 100.0, 80.0]):
        sample = Sample(entry=entry, image=image, label=np.array(corner))
        for seed in range(40):
            _, target = encode_sample(sample, transform, seed=seed)
            assert target.shape == (4,) and (target >= 0).all() and (target <= 1).all()
            assert (target[2:] > target[:2]).all()


@pytest.mark.parametrize("task_id, sensitive", [("cardiac_multi", True), ("fetal_head_pos_cls", True), ("lung", False)])
def test_flip_only_for_orientation_free_tasks(task_id, sensitive):
    task = REG[task_id]
    assert task.orientation_sensitive is sensitive
    policy = policy_for(task, AugmentConfig(default={"hflip": 1.0, "brightness_contrast": 0.0}))
    transform = build_train_transform(SIZE, task, policy)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[:, : SIZE // 4] = 255  # bright left quarter
    out = transform(image=image)["image"]
    reference = build_eval_transform(SIZE)(image=image)["image"]
    if sensitive:
        assert not any(isinstance(t, A.HorizontalFlip) for t in transform.transforms)
        np.testing.assert_allclose(out, reference)
    else:
        np.testing.assert_allclose(out, reference[:, ::-1])
    # The whole improved policy never mirrors a sensitive task either: over many draws the
    # bright side stays on the left.
    improved = build_train_transform(SIZE, task, policy_for(task, AugmentConfig(default={"affine": 1.0, "hflip": 1.0})))
    lefts = []
    for seed in range(10):
        improved.set_random_state(np.random.default_rng(seed), __import__("random").Random(seed))
        img = improved(image=image)["image"]
        lefts.append(img[:, : SIZE // 2].mean() > img[:, SIZE // 2 :].mean())
    assert all(lefts) if sensitive else not any(lefts)


def test_extra_policy_is_off_by_default():
    task = REG["breast_lesion"]
    seed_pipeline = build_train_transform(SIZE, task, policy_for(task, AugmentConfig(default={"brightness_contrast": 0.5})))
    names = [type(t).__name__ for t in seed_pipeline.transforms]
    assert names == ["Resize", "RandomBrightnessContrast", "Normalize"]


def _steps(transform) -> list[tuple]:
    """(name, p, the step's defining ranges) of each albumentations step."""
    keys = ("scale", "rotate", "translate_percent", "brightness_limit", "contrast_limit", "gamma_limit", "blur_limit",
            "multiplier", "elementwise", "erosion_rate")
    out = []
    for step in transform.to_dict()["transform"]["transforms"]:
        out.append((step["__class_fullname__"], step["p"], {k: step[k] for k in keys if step.get(k) is not None}))
    return out


def test_improved_augmentation_pipeline_per_task():
    improved = load_config(os.path.join(ROOT, "configs", "fmuia_plus.yaml"))
    photometric = [
        ("RandomBrightnessContrast", 0.5, {"brightness_limit": (-0.2, 0.2), "contrast_limit": (-0.2, 0.2)}),
        ("RandomGamma", 0.3, {"gamma_limit": (80.0, 120.0)}),
        ("GaussianBlur", 0.2, {"blur_limit": (3, 5)}),
        ("MultiplicativeNoise", 0.3, {"multiplier": (0.75, 1.25), "elementwise": False}),  # gain
        ("MultiplicativeNoise", 0.3, {"multiplier": (0.8, 1.2), "elementwise": True}),  # speckle
    ]
    scale_rotate_shift = ("Affine", 0.7, {"scale": {"x": (0.85, 1.15), "y": (0.85, 1.15)}, "rotate": (-12.0, 12.0),
                                          "translate_percent": {"x": (-0.06, 0.06), "y": (-0.06, 0.06)}})
    zoom_out_then_safe_crop = [("Affine", 0.7, {"scale": {"x": (0.85, 1.0), "y": (0.85, 1.0)}, "rotate": (0.0, 0.0)}),
                               ("RandomSizedBBoxSafeCrop", 0.35, {"erosion_rate": 0.0})]
    # classification keeps the official light policy: nothing geometric, no ultrasound transforms
    light = [("RandomBrightnessContrast", 0.2, {"brightness_limit": (-0.2, 0.2), "contrast_limit": (-0.2, 0.2)}),
             ("GaussNoise", 0.1, {})]
    for task in REG:
        steps = _steps(build_train_transform(256, task, policy_for(task, improved.augment)))
        assert steps[0][0] == "Resize" and steps[-1][0] == "Normalize", task.task_id
        if task.kind is Kind.CLASSIFICATION:
            assert steps[1:-1] == light, task.task_id
            continue
        flip = [] if task.orientation_sensitive else [("HorizontalFlip", 0.5, {})]
        geometric = zoom_out_then_safe_crop if task.kind is Kind.DETECTION else [scale_rotate_shift]
        assert steps[1:-1] == flip + geometric + photometric, task.task_id


# -- the recipe (its config against the baseline: tests/train/test_recipes.py) ----------------
def test_improved_recipe_trains_briefly(tmp_path):
    from train_helpers import TINY_MODEL

    from dataset_builders import materialise, training_rows
    from fmuia.config import merge
    from fmuia.train import train

    root = str(tmp_path / "data")
    materialise(root, training_rows())
    improved = load_config(os.path.join(ROOT, "configs", "fmuia_plus.yaml"))
    config = merge(improved, {
        "device": "cpu", "model": TINY_MODEL, "data": {"num_workers": 0, "val_fraction": 0.25},
        "train": {"epochs": 1, "max_steps": 4, "batch_size": 4, "progress": False, "plot": False},
        "optim": {"lr": 1e-3},
    })
    result = train(config, root, str(tmp_path / "run"))
    assert result.steps == 4
    assert all(math.isfinite(row["train_loss"]) for row in result.history if row["train_loss"] is not None)
    assert result.validation is not None
