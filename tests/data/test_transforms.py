import numpy as np
import pytest
import torch

from fmuia.config.sections import AugmentConfig
from fmuia.data.records import Entry, Sample
from fmuia.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_eval_transform,
    build_train_transform,
    encode_sample,
    policy_for,
    resize_sample,
)
from fmuia.errors import ConfigError
from fmuia.tasks import fmuia2026

REG = fmuia2026()
H, W = 40, 60


def make(task_id, label, image=None):
    task = REG[task_id]
    entry = Entry(task_id=task_id, kind=task.kind, image_path="x.png", image_file="x.png", csv_file="c.csv", line=2)
    if image is None:
        image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    return Sample(entry=entry, image=image, label=label)


def test_image_is_resized_and_imagenet_normalised():
    image = np.full((H, W, 3), 128, np.uint8)
    x, y = encode_sample(make("organ_cls", 3, image), build_eval_transform(64))
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    expected = (128 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[:, 10, 10].numpy(), expected, rtol=1e-5)
    assert y.dtype == torch.long and int(y) == 3


def test_box_and_points_are_normalised_by_original_size():
    t = build_eval_transform(64)
    box = np.array([6.0, 4.0, 60.0, 40.0])  # touches the right and bottom borders
    _, y = encode_sample(make("thyroid_nodule_det", box), t)
    np.testing.assert_allclose(y.numpy(), box / [W, H, W, H], atol=1e-6)
    pts = np.array([[3.0, 4.0], [59.5, 39.0]])
    _, y = encode_sample(make("FUGC", pts), t)
    assert y.shape == (2, 2)
    np.testing.assert_allclose(y.numpy(), pts / [W, H], atol=1e-6)


def test_mask_is_nearest_resized():
    m = np.zeros((H, W), np.uint8)
    m[10:30, 15:45] = 2
    _, y = encode_sample(make("cervix_multi", m), build_eval_transform(32))
    assert y.shape == (32, 32) and y.dtype == torch.long
    assert set(y.unique().tolist()) == {0, 2}
    assert int(y[16, 16]) == 2 and int(y[0, 0]) == 0


def test_unlabelled_sample_has_no_target():
    x, y = encode_sample(make("lung", None), build_eval_transform(32))
    assert y is None and x.shape == (3, 32, 32)


def test_train_transform_is_photometric_and_reproducible():
    pts = np.array([[3.0, 4.0], [50.0, 30.0]])
    s = make("FUGC", pts)
    t = build_train_transform(64, REG["FUGC"], {"brightness_contrast": 1.0, "noise": 1.0}, seed=1)
    a, ya = encode_sample(s, t, seed=7)
    b, yb = encode_sample(s, t, seed=7)
    c, _ = encode_sample(s, t, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    np.testing.assert_allclose(ya.numpy(), pts / [W, H], atol=1e-6)  # no geometric change
    ref, _ = encode_sample(s, build_eval_transform(64))
    assert not torch.equal(a, ref)


def test_flip_never_for_orientation_sensitive_tasks():
    sensitive = [t for t in REG if t.orientation_sensitive]
    assert sensitive
    t = build_train_transform(32, sensitive[0], {"hflip": 1.0, "brightness_contrast": 0.0})
    assert not any(type(s).__name__ == "HorizontalFlip" for s in t.transforms)
    free = REG["lung"]
    assert not free.orientation_sensitive
    t = build_train_transform(32, free, {"hflip": 1.0, "brightness_contrast": 0.0})
    m = np.zeros((H, W), np.uint8)
    m[:, :10] = 1
    _, y = encode_sample(make("lung", m), t, seed=0)
    assert int(y[:, -1].sum()) > 0 and int(y[:, 0].sum()) == 0  # the mask moved with the image


def test_policy_levels_and_errors():
    aug = AugmentConfig(default={"blur": 0.2}, kinds={"segmentation": {"blur": 0.3}}, tasks={"lung": {"noise": 0.1}})
    p = policy_for(REG["lung"], aug)
    assert p["blur"] == 0.3 and p["noise"] == 0.1
    assert policy_for(REG["organ_cls"], aug)["blur"] == 0.2
    with pytest.raises(ConfigError, match="augment.tasks.lung.rotate"):
        policy_for(REG["lung"], AugmentConfig(tasks={"lung": {"rotate": 0.5}}))
    with pytest.raises(ConfigError, match="probability"):
        policy_for(REG["lung"], AugmentConfig(default={"blur": 2}))


def test_resize_sample_then_encode_equals_encode():
    t = build_eval_transform(32)
    for task_id, label in [("thyroid_nodule_det", np.array([6.0, 4.0, 50.0, 30.0])), ("FUGC", np.array([[3.0, 4.0], [50.0, 30.0]]))]:
        s = make(task_id, label)
        small = resize_sample(s, 32)
        assert small.image.shape == (32, 32, 3) and small.image.dtype == np.uint8
        _, y1 = encode_sample(s, t)
        _, y2 = encode_sample(small, t)
        np.testing.assert_allclose(y1.numpy(), y2.numpy(), atol=1e-5)
