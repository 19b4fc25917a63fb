"""The synthetic dataset: layout, validity, labels that agree with the pixels,
determinism, and labels that carry signal."""
from __future__ import annotations

import hashlib
import os

import cv2
import numpy as np
import pytest

from fmuia.io.images import read_image, read_mask
from fmuia.data.layout import read_layout
from fmuia.synthetic import generate, synthesize
from fmuia.data.validate import validate
from fmuia.errors import DataError
from fmuia.tasks import Kind, fmuia2026

REGISTRY = fmuia2026()
TASKS = REGISTRY.task_ids
SPLITS = {"train": 3, "val": 1, "test": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    summary = generate(str(out), splits=SPLITS, seed=7, workers=2)
    layouts = {split: read_layout(root) for split, root in summary.roots.items()}
    return summary, layouts


def _entries(layouts, task_id, split="train"):
    return [e for e in layouts[split].entries if e.task_id == task_id]


def _digest(root: str) -> str:
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def test_every_split_is_a_valid_data_root(dataset):
    summary, layouts = dataset
    assert set(summary.roots) == set(SPLITS)
    for split, root in summary.roots.items():
        report = validate(root, require_labels=True)
        assert report.ok, report.problems[:5]
        assert sorted(os.listdir(os.path.join(root, "csv_files"))) == sorted(f"{t}.csv" for t in TASKS)
        for task_id in TASKS:
            assert len(_entries(layouts, task_id, split)) == SPLITS[split]


@pytest.mark.parametrize("task_id", TASKS)
def test_paths_and_columns_follow_the_layout(dataset, task_id):
    _, layouts = dataset
    task = REGISTRY[task_id]
    for e in _entries(layouts, task_id):
        assert e.image_path.startswith("../")
        assert e.labelled
        if task.kind is Kind.SEGMENTATION:
            folder = {2: "Two", 3: "Three", 4: "Four", 5: "Five"}[task.n]
            assert e.image_path.startswith(f"../Segmentation/{folder}/{task_id}/IMAGES/")
            assert e.mask_path.startswith(f"../Segmentation/{folder}/{task_id}/MASKS/") and e.mask_path.endswith(".png")
        else:
            top = {Kind.CLASSIFICATION: "Classification", Kind.DETECTION: "Detection", Kind.KEYPOINTS: "Regression"}[task.kind]
            assert e.image_path.startswith(f"../{top}/{task_id}/")


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of ``mask``, outside it."""
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool) & ~mask


@pytest.mark.parametrize("task_id", [t.task_id for t in REGISTRY.of_kind(Kind.SEGMENTATION)])
def test_masks_line_up_with_drawn_structures(dataset, task_id):
    _, layouts = dataset
    task = REGISTRY[task_id]
    seen = set()
    for e in _entries(layouts, task_id) + _entries(layouts, task_id, "test"):
        gray = read_image(e.image_file)[..., 0].astype(np.float64)
        mask = read_mask(e.mask_file)
        assert mask.shape == gray.shape and mask.max() < task.n
        for c in range(1, task.n):
            region = mask == c
            if region.sum() < 20:
                continue
            seen.add(c)
            # Background just around the structure, past its rim.
            ring = _ring(region, 14) & ~_ring(region, 5) & ~region & (mask == 0) & (gray > 0)
            assert abs(gray[region].mean() - gray[ring].mean()) > 12, (e.image_path, c)
    assert seen, f"no class of {task_id} was drawn"
    sample = synthesize(task, seed=7, split="train", index=0)
    assert not (sample.label[~sample.valid]).any()  # nothing labelled outside the field of view


@pytest.mark.parametrize("task_id", [t.task_id for t in REGISTRY.of_kind(Kind.DETECTION)])
def test_boxes_are_tight_around_the_target(dataset, task_id):
    _, layouts = dataset
    task = REGISTRY[task_id]
    for e in _entries(layouts, task_id):
        gray = read_image(e.image_file)[..., 0].astype(np.float64)
        x0, y0, x1, y1 = e.label.astype(int)
        inside = gray[y0:y1, x0:x1]
        around = np.zeros_like(gray, bool)
        around[max(0, y0 - 10) : y1 + 10, max(0, x0 - 10) : x1 + 10] = True
        around[y0:y1, x0:x1] = False
        assert abs(inside.mean() - gray[around & (gray > 0)].mean()) > 10, e.image_path
    # The box is exactly the bounding box of the drawn target.
    for i in range(3):
        s = synthesize(task, seed=7, split="train", index=i)
        ys, xs = np.nonzero(s.structure)
        assert s.label.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert np.array_equal(s.image, read_image(_entries(layouts, task_id)[i].image_file)[..., 0] if s.image.ndim == 2 else s.image) or s.ext == "jpg"


@pytest.mark.parametrize("task_id", [t.task_id for t in REGISTRY.of_kind(Kind.KEYPOINTS)])
def test_points_lie_on_their_structure(dataset, task_id):
    _, layouts = dataset
    task = REGISTRY[task_id]
    for e in _entries(layouts, task_id):
        h, w = read_image(e.image_file).shape[:2]
        assert e.label.shape == (task.n, 2)
        assert ((e.label >= 0) & (e.label < [w, h])).all()
    for i in range(4):
        s = synthesize(task, seed=7, split="train", index=i)
        for x, y in s.label:
            xi, yi = int(round(x)), int(round(y))
            patch = s.structure[max(0, yi - 3) : yi + 4, max(0, xi - 3) : xi + 4]
            assert patch.any(), (task_id, i, x, y)
            # Landmarks sit on bright structure (bone, canal line, skull rim).
            bright = s.gray[max(0, yi - 2) : yi + 3, max(0, xi - 2) : xi + 3].max()
            assert bright > np.percentile(s.gray[s.valid], 75), (task_id, i, x, y)


def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path):
    kw = dict(splits={"train": 2, "test": 1}, tasks=["breast_2cls", "fetal_head", "FUGC", "thyroid_nodule_det"])
    a = generate(str(tmp_path / "a"), seed=3, workers=2, **kw)
    b = generate(str(tmp_path / "b"), seed=3, workers=1, **kw)
    c = generate(str(tmp_path / "c"), seed=4, workers=1, **kw)
    assert _digest(a.out_dir) == _digest(b.out_dir)
    assert _digest(a.out_dir) != _digest(c.out_dir)


def test_unlabelled_test_and_labelled_copy(tmp_path):
    s = generate(str(tmp_path / "d"), splits={"train": 1, "test": 2}, tasks=["cervix", "lung_2cls", "IUGC"], unlabelled_test=True)
    test, gt = validate(s.roots["test"]), validate(s.roots["test_labelled"], require_labels=True)
    assert test.ok and gt.ok
    assert not any(e.labelled for e in test.entries)
    assert [e.image_path for e in test.entries] == [e.image_path for e in gt.entries]


def test_refuses_to_overwrite_and_rejects_unknown_tasks(tmp_path):
    generate(str(tmp_path), splits={"train": 1}, tasks=["lung"])
    with pytest.raises(DataError, match="already holds"):
        generate(str(tmp_path), splits={"train": 1}, tasks=["lung"])
    generate(str(tmp_path), splits={"train": 1}, tasks=["lung"], overwrite=True)
    with pytest.raises(DataError, match="unknown task"):
        generate(str(tmp_path / "x"), splits={"train": 1}, tasks=["no_such_task"])


def _features(gray: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Simple image statistics: intensity histogram in the view, and of the darkest
    and brightest structures' extent."""
    v = gray[valid].astype(np.float64)
    hist = np.histogram(v, bins=12, range=(0, 255))[0] / v.size
    gy, gx = np.gradient(gray.astype(np.float64))
    grad = np.hypot(gx, gy)[valid]
    return np.concatenate([hist, [v.mean() / 255, v.std() / 255, np.percentile(v, 5) / 255, np.percentile(v, 95) / 255, grad.mean() / 50]])


@pytest.mark.parametrize("task_id", [t.task_id for t in REGISTRY.of_kind(Kind.CLASSIFICATION) if t.n == 2])
def test_binary_labels_carry_signal(task_id):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    task = REGISTRY[task_id]
    xs, ys = [], []
    for i in range(60):
        s = synthesize(task, seed=11, split="train", index=i)
        xs.append(_features(s.gray, s.valid))
        ys.append(s.label)
    ys = np.array(ys)
    assert 0.2 < ys.mean() < 0.8  # both classes occur
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    accuracy = cross_val_score(model, np.array(xs), ys, cv=4).mean()
    majority = max(ys.mean(), 1 - ys.mean())
    assert accuracy > majority + 0.1, (task_id, accuracy, majority)


def test_cli_writes_dataset_and_gallery(tmp_path, capsys):
    from fmuia.cli.main import main

    out, gallery = tmp_path / "synth", tmp_path / "gallery.png"
    rc = main(["synth", str(out), "--per-task", "2", "--val", "0", "--test", "1", "--tasks", "lung,breast_3cls",
               "--seed", "5", "--gallery", str(gallery)])
    assert rc == 0
    assert sorted(os.listdir(out)) == ["test", "train"]
    assert validate(str(out / "train"), require_labels=True).ok
    assert gallery.stat().st_size > 10_000
    assert main(["validate", str(out / "test")]) == 0
    assert main(["synth", str(out), "--tasks", "lung"]) == 2  # refuses to overwrite
    assert "already holds" in capsys.readouterr().err
    assert main(["synth"]) == 2


def test_full_gallery_stays_small(tmp_path):
    from fmuia.synthetic import render_gallery

    path = render_gallery(str(tmp_path / "g.png"))
    assert 100_000 < os.path.getsize(path) < 1_500_000
