"""Every registered kind and head type, through every hook: CSV round trip, target,
forward and loss, decode, result, submission record and its strict parse, score."""
import json

import numpy as np
import pytest
import torch

from fmuia import kinds
from fmuia.data.records import Entry, Sample
from fmuia.data.transforms import build_eval_transform, encode_sample
from fmuia.kinds.base import LabelError
from fmuia.model import ModelConfig
from fmuia.tasks import Kind, Task

SIZE = 32  # original images are SIZE x SIZE; the model frame too


def _mask(task, h, w):
    m = np.zeros((h, w), np.uint8)
    for c in range(1, task.n):
        m[3 * c : 3 * c + 5, 4:20] = c
    return m


# A valid native label per kind (original pixels of a SIZE x SIZE image). A new kind adds
# its example here; the test below fails for a registered kind without one.
EXAMPLES = {
    "segmentation": (Task("s", "segmentation", 3), _mask),
    "classification": (Task("c", "classification", 3), lambda task, h, w: 2),
    "detection": (Task("d", "detection", 1), lambda task, h, w: np.array([3.0, 4.5, 20.0, 31.0])),
    "keypoints": (Task("k", "keypoints", 3), lambda task, h, w: np.array([[1.5, 2.0], [30.25, 7.0], [16.0, 32.0]])),
}


def test_kind_enum_and_registry_agree():
    assert [k.kind for k in kinds.all_kinds()] == list(Kind)
    for owner in kinds.all_kinds():
        assert kinds.kind_of(owner.kind) is owner
        assert kinds.kind_of(owner.name) is owner
        assert kinds.kind_of(owner.csv_name) is owner
        assert owner.default_head in owner.head_types
        assert owner.name in EXAMPLES, f"no example label for kind {owner.name}"
    assert Kind("keypoints") is Kind.KEYPOINTS and Kind.from_csv("regression") is Kind.KEYPOINTS
    with pytest.raises(ValueError, match="not a task kind"):
        Kind("counting_nope")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_csv_columns_round_trip(name, tmp_path):
    task, make = EXAMPLES[name]
    owner = kinds.kind_of(task)
    folder = str(tmp_path / "csv_files")
    label = "../Segmentation/Three/s/MASKS/001.png" if owner.label_is_file else make(task, SIZE, SIZE)
    cells = owner.label_to_columns(task, label)
    assert all(isinstance(v, str) for v in cells.values())
    assert all(owner.is_label_column(c) for c in cells)
    row = {"task_id": task.task_id, "task_name": task.kind.csv_name, "num_classes": str(task.n), **cells}
    parsed = owner.parse_label(row, task, list(row), folder)
    if owner.label_is_file:
        assert parsed.mask_path == label and parsed.label is None
    else:
        np.testing.assert_array_equal(np.asarray(parsed.label), np.asarray(label))
    # blank label cells: an unlabelled row, except for kinds whose label is a file
    blank = {**row, **{c: "" for c in cells}}
    if owner.label_is_file:
        with pytest.raises(LabelError):
            owner.parse_label(blank, task, list(row), folder)
    else:
        assert owner.parse_label(blank, task, list(row), folder).label is None


def _head_cases():
    for owner in kinds.all_kinds():
        for head in owner.head_types:
            if owner.name in EXAMPLES:
                yield pytest.param(owner.name, head, id=f"{owner.name}-{head}")


@pytest.mark.parametrize("name,head", list(_head_cases()))
def test_every_head_type_trains_decodes_and_writes_a_record_that_parses_back(name, head):
    torch.manual_seed(0)
    task, make = EXAMPLES[name]
    owner = kinds.kind_of(task)
    spec = owner.head_type(head)
    assert callable(spec.loss)
    config = ModelConfig(encoder="resnet18", pretrained="none", image_size=SIZE)
    module = spec.head(task, 16, config).train()
    features = torch.randn(2, 16, SIZE // 4, SIZE // 4)

    truths, targets = [], []
    for i in range(2):
        label = make(task, SIZE, SIZE)
        entry = Entry(task.task_id, task.kind, f"{i}.png", f"/x/{i}.png", "c.csv", i + 2)
        image = np.full((SIZE, SIZE, 3), 100 + i, np.uint8)
        _, target = encode_sample(Sample(entry, image, label), build_eval_transform(SIZE))
        truths.append(label)
        targets.append(target)
    raw = module(features, (SIZE, SIZE))
    loss = spec.loss(raw, torch.stack(targets), task, dict(spec.loss_defaults))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()

    module.eval()
    with torch.no_grad():
        decoded = module.decode(module(features, (SIZE, SIZE)))
    decoded = decoded.numpy()  # prediction's decoded rows are NumPy (training's validation passes tensors)
    np.testing.assert_allclose(owner.flip_back(owner.flip_back(decoded)), decoded, atol=1e-6)
    results = owner.results(task, decoded, [(SIZE, SIZE)] * 2)
    assert len(results) == 2
    for i, (result, truth) in enumerate(zip(results, truths)):
        value = owner.prediction_value(task, result)
        if owner.prediction_file:
            entry = Entry(task.task_id, task.kind, f"{i}.png", f"/x/{i}.png", "c.csv", i + 2)
            record = json.loads(json.dumps(owner.record(entry, result)))
            assert record["image_path"] == f"{i}.png" and record["task_id"] == task.task_id
            parsed = owner.parse_record(record, task)
            assert repr(parsed) == repr(value)
            with pytest.raises(LabelError):
                owner.parse_record({k: ("x" if k not in ("image_path", "task_id") else v) for k, v in record.items()}, task)
        score = owner.score_sample(task, value, truth, (SIZE, SIZE))
        assert 0.0 <= score.score <= 1.0
        json.dumps(score.details)
    perfect = owner.task_result(task, [owner.score_sample(task, owner.prediction_value(task, r), t, (SIZE, SIZE))
                                       for r, t in zip(results, truths)])
    assert perfect.num_samples == 2 and perfect.score is not None
    assert set(owner.metric_names) <= set(perfect.metrics)
