import os

import numpy as np
import pytest
import torch

from fmuia.data.cache import SampleCache
from fmuia.data.torch_datasets import EvalSet, TrainSet, collate
from fmuia.data.dataset import FMUIADataset
from fmuia.data.transforms import build_eval_transform, build_train_transform
from fmuia.train.data import stratified_split

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
