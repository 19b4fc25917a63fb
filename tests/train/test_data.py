import os

import numpy as np
import pytest
import torch

from fmuia.config import AugmentConfig, DataConfig, SamplerConfig
from fmuia.data.cache import SampleCache
from fmuia.data.torch_datasets import EvalSet, TrainSet, collate
from fmuia.data.dataset import FMUIADataset
from fmuia.data.transforms import build_eval_transform, build_train_transform
from fmuia.errors import DataError
from fmuia.config import ModelConfig
from fmuia.model.network import task_input_sizes
from fmuia.train.data import build_data, random_split, read_datasets, stratified_split

pytestmark = pytest.mark.usefixtures("one_thread")


def test_stratified_split_holds_out_each_task():
    groups = {"a": list(range(10)), "b": list(range(10, 12)), "c": [12]}
    train, val = stratified_split(groups, 0.2, seed=1)
    assert sorted(train + val) == list(range(13))
    assert len([i for i in val if i < 10]) == 2 and len([i for i in val if 10 <= i < 12]) == 1
    assert 12 in train  # a single sample stays in training
    assert stratified_split(groups, 0.2, seed=1) == (train, val)


def test_cache_gives_the_same_samples_and_is_built_lazily(train_root, tmp_path):
    ds = FMUIADataset(train_root)
    tf = {t.task_id: build_train_transform(64, t, {"brightness_contrast": 1.0}) for t in ds.registry}
    cache = SampleCache(str(tmp_path / "cache"), 64)
    plain, cached = TrainSet(ds, tf), TrainSet(ds, tf, cache)
    assert not os.path.exists(cache.root)
    picks = [(i, 100 + i) for i in range(0, len(ds), 5)]
    first = [cached[p] for p in picks]
    files = [os.path.join(d, f) for d, _, fs in os.walk(cache.root) for f in fs]
    assert len(files) == len(picks) and all(f.endswith(".npz") for f in files)
    again = [cached[p] for p in picks]
    for p, a, b in zip(picks, first, again):
        ref = plain[p]
        assert torch.equal(a["image"], b["image"])
        assert torch.allclose(a["image"], ref["image"], atol=0.05)  # resize of the uint8 image, then augmentation
        assert torch.allclose(a["target"].float(), ref["target"].float(), atol=1e-4)
    ev = EvalSet(ds, build_eval_transform(64), cache)
    item = ev[0]
    assert item["size"] == (32, 32) and item["image"].shape == (3, 64, 64)
    # Labels stay at the original size and in their own type: the written mask (class 1
    # at rows 4..9, columns 5..19), the class id, the box in original pixels.
    kinds = [e.kind.value for e in ds.entries]
    picks = [0, kinds.index("classification") + 1, kinds.index("detection") + 1]
    batch = collate([ev[i] for i in picks])
    assert batch["image"].shape == (3, 3, 64, 64)
    assert batch["task_id"] == ["breast_lesion", "breast_2cls", "thyroid_nodule_det"]
    assert batch["index"] == picks and batch["size"] == [(32, 32)] * 3
    mask = np.zeros((32, 32), np.uint8)
    mask[4:10, 5:20] = 1
    assert batch["label"][0].dtype == np.uint8 and np.array_equal(batch["label"][0], mask)
    assert batch["label"][1] == 1 and isinstance(batch["label"][1], int)
    np.testing.assert_array_equal(batch["label"][2], [5.0, 5.0, 21.0, 25.0])


def test_random_split_draws_from_all_rows_at_once():
    groups = {"a": list(range(40)), "b": list(range(40, 50)), "c": list(range(50, 60))}
    train, val = random_split(groups, 0.2, seed=1)
    assert len(val) == 12 and sorted(train + val) == list(range(60)) and not set(train) & set(val)
    assert random_split(groups, 0.2, seed=1) == (train, val)
    assert random_split(groups, 0.2, seed=2) != (train, val)
    # Not stratified: a task's share of the validation rows changes with the draw (the
    # per-task split always holds out 8, 2 and 2).
    shares = {tuple(sum(i in set(ix) for i in random_split(groups, 0.2, seed)[1]) for ix in groups.values())
              for seed in range(10)}
    assert len(shares) > 1 and shares != {(8, 2, 2)}
    assert random_split(groups, 0.0, seed=1) == (list(range(60)), [])


def test_random_split_that_empties_a_task_names_it():
    with pytest.raises(DataError, match=r"data.val_split.*task\(s\) [xy],"):
        random_split({"x": [0], "y": [1]}, 0.5, seed=4)


def _p1_transforms(ds):
    """Pipelines whose random steps always run, so every draw shows in the image."""
    return {t.task_id: build_train_transform(64, t, {"brightness_contrast": 1.0, "noise": 1.0}) for t in ds.registry}


def test_seeded_augmentation_repeats_and_unseeded_does_not(train_root):
    ds = FMUIADataset(train_root)
    seeded = TrainSet(ds, _p1_transforms(ds))
    assert torch.equal(seeded[(0, 5)]["image"], seeded[(0, 5)]["image"])
    assert not torch.equal(seeded[(0, 5)]["image"], seeded[(0, 6)]["image"])
    unseeded = TrainSet(ds, _p1_transforms(ds), seeded=False)
    images = [unseeded[(0, 5)]["image"] for _ in range(3)]
    assert not any(torch.equal(a, b) for i, a in enumerate(images) for b in images[i + 1:])
    assert torch.equal(unseeded[(0, 5)]["target"], seeded[(0, 5)]["target"])  # a photometric draw: same label


def test_unseeded_augmentation_differs_between_loader_workers(train_root):
    # A worker holds a copy of its parent's albumentations state: the same draws in
    # every worker unless each process seeds its own.
    ds = FMUIADataset(train_root)
    unseeded = TrainSet(ds, _p1_transforms(ds), seeded=False)
    loader = torch.utils.data.DataLoader(unseeded, batch_sampler=[[(0, 5)], [(0, 5)]], num_workers=2, collate_fn=collate)
    first, second = [batch["image"] for batch in loader]
    assert not torch.equal(first, second)


def test_build_data_applies_val_split_and_augment_seeded(train_root):
    def run_data(val_split, seeded):
        data = DataConfig(num_workers=0, val_fraction=0.25, val_split=val_split)
        datasets = read_datasets(data, train_root, None, seed=3)
        return build_data(data, SamplerConfig(), AugmentConfig(seeded=seeded), datasets,
                          input_sizes={t.task_id: 64 for t in datasets.registry}, batch_size=4, seed=3)

    per_task = run_data("per_task", True)
    assert len(per_task.val.entries) == 8  # round(0.25 * 6) = 2 of each of the four tasks
    assert per_task.train_loader.dataset.seeded
    random = run_data("random", False)
    assert len(random.val.entries) == 6 and len(random.train.entries) == 18  # round(0.25 * 24) of all rows
    assert not random.train_loader.dataset.seeded


def test_tasks_of_several_input_sizes_are_loaded_and_cached_at_their_own(train_root, tmp_path):
    data = DataConfig(num_workers=0, val_fraction=0.25, cache_dir=str(tmp_path / "cache"))
    datasets = read_datasets(data, train_root, None, seed=0)
    model = ModelConfig(image_size=64, input_scale={"segmentation": 1.5, "breast_2cls": 2.0})
    run = build_data(data, SamplerConfig(mode="mixed", batches_per_epoch=6), AugmentConfig(), datasets,
                     input_sizes=task_input_sizes(datasets.registry, model), batch_size=4, seed=0)
    sizes = {t.task_id: (96 if t.kind.value == "segmentation" else 128 if t.task_id == "breast_2cls" else 64)
             for t in run.registry}
    seen = set()
    for batch in run.train_loader:
        side = batch["image"].shape[-1]
        assert {sizes[t] for t in batch["task_id"]} == {side}
        seen.add(side)
    for batch in run.val_loader:
        assert {sizes[t] for t in batch["task_id"]} == {batch["image"].shape[-1]}
    assert seen <= {64, 96, 128} and len(seen) >= 2
    assert {d for d in os.listdir(tmp_path / "cache")} <= {"64px", "96px", "128px"}
