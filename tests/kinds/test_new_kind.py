"""A fifth kind defined here, registered, and used end to end through the project's
generic code: layout reading, validation, targets, the model and its loss, the
submission writer and the scorer. No other module knows about it."""
import csv
import json
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dataset_builders import cls_row, materialise, write_image
from fmuia import kinds
from fmuia.data.dataset import FMUIADataset, load_sample
from fmuia.data.layout import read_layout
from fmuia.data.transforms import build_eval_transform, encode_sample
from fmuia.data.validate import validate
from fmuia.metrics.results import TaskResult, empty_result
from fmuia.evaluate.scorer import evaluate
from fmuia.kinds.base import LabelCells, LabelError, SampleScore, TaskKind, as_numpy
from fmuia.kinds.head import Head
from fmuia.model import ModelConfig, build_model
from fmuia.model.routing import group_indices
from fmuia.predict.writer import SubmissionWriter
from fmuia.tasks import Kind, Task
from fmuia.train.losses import TaskLoss


@dataclass
class CountResult:
    task_id: str
    count: float


class CountHead(Head):
    """Pooled features to one non-negative number: how many objects the image shows."""

    def __init__(self, task, in_channels, config):
        super().__init__(task, in_channels, config)
        self.linear = nn.Linear(in_channels, 1)

    def forward(self, features, image_size):
        return self.linear(features.mean(dim=(2, 3)))

    def decode(self, raw):
        return raw.float().squeeze(1).clamp_min(0.0)


def count_mse(raw, target, task, params):
    return F.mse_loss(raw.float().squeeze(1), target.float()) * float(params["scale"])


class CountingKind(TaskKind):
    name = "counting"
    csv_name = "Counting"
    min_n = 1
    max_n = 1
    metric_names = ("MAE",)
    prediction_file = "counting_predictions.json"
    label_columns = ("count",)

    def __init__(self):
        super().__init__()
        self.add_head("linear", CountHead, count_mse, scale=1.0)

    def parse_label(self, row, task, header, folder):
        text = (row.get("count") or "").strip()
        if not text:
            return LabelCells()
        if not text.isdigit():
            raise LabelError(f"count {text!r} is not a non-negative integer")
        return LabelCells(label=int(text))

    def label_to_columns(self, task, label):
        return {"count": str(int(label))}

    def counts(self, entry):
        return ["objects"] * entry.label

    def encode_target(self, out, label, size):
        return torch.tensor(float(label))

    def results(self, task, decoded, sizes, probabilities=False):
        return [CountResult(task.task_id, float(v)) for v in as_numpy(decoded)]

    def record_fields(self, result):
        return {"predicted_count": float(result.count)}

    def parse_record(self, item, task):
        value = item.get("predicted_count")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise LabelError(f"'predicted_count' = {value!r} is not a non-negative number")
        return float(value)

    def score_sample(self, task, value, truth, size):
        error = abs(float(value) - float(truth))
        return SampleScore(1.0 / (1.0 + error), {"AE": error}, error)

    def task_result(self, task, scores):
        if not scores:
            return empty_result(task, self.metric_names)
        mae = float(np.mean([s.data for s in scores]))
        return TaskResult(task.task_id, task.kind, task.n, len(scores), {"MAE": mae}, 1.0 / (1.0 + mae))


@pytest.fixture
def counting():
    owner = kinds.register_kind(CountingKind())
    yield owner
    kinds.unregister_kind("counting")


def _write_counting_root(root, counts):
    materialise(root, [cls_row(i, label=i % 2) for i in range(2)], csv_name="cls.csv")
    rows = []
    for i, count in enumerate(counts):
        image_path = f"../Counting/cells/{i:03d}.png"
        write_image(os.path.normpath(os.path.join(root, "csv_files", image_path)), seed=i)
        rows.append({"task_id": "cells", "task_name": "Counting", "num_classes": "1", "image_path": image_path, "count": str(count)})
    with open(os.path.join(root, "csv_files", "cells.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_registered_kind_works_end_to_end(counting, tmp_path):
    assert Kind("counting") is counting.kind and Kind.from_csv("counting") is counting.kind
    with pytest.raises(ValueError, match="n == 1"):
        Task("cells", "counting", 2)

    root = str(tmp_path / "data")
    counts = [3, 0, 7]
    _write_counting_root(root, counts)

    layout = read_layout(root)
    assert not layout.problems
    assert layout.registry["cells"].kind is counting.kind
    assert [e.label for e in layout.entries if e.task_id == "cells"] == counts
    report = validate(root, require_labels=True)
    assert report.ok and report.stats["cells"].counts["objects"] == 10

    dataset = FMUIADataset(root)
    entry = next(e for e in dataset.entries if e.task_id == "cells")
    _, target = encode_sample(load_sample(entry), build_eval_transform(64))
    assert float(target) == 3.0

    torch.manual_seed(0)
    config = ModelConfig(encoder="resnet18", pretrained="none", image_size=64, channels_last=False)
    model = build_model(config, dataset.registry)
    assert model.head_types[counting.kind] == "linear" and model.routes["cells"] == "top"
    samples = [load_sample(e) for e in dataset.entries]
    encoded = [encode_sample(s, build_eval_transform(64)) for s in samples]
    images = torch.stack([image for image, _ in encoded])
    task_ids = [e.task_id for e in dataset.entries]
    outputs = model(images, task_ids)
    groups = group_indices(task_ids)
    targets = {t: torch.stack([encoded[i][1] for i in rows]) for t, rows in groups.items()}
    total, per_task = TaskLoss(dataset.registry, model.head_types)(outputs, targets)
    assert torch.isfinite(total) and set(per_task) == {"cells", "breast_2cls"}
    total.backward()

    model.eval()
    out_dir = str(tmp_path / "pred")
    writer = SubmissionWriter(out_dir)
    writer.start()
    expected_errors = []
    with torch.no_grad():
        decoded = model.decode(model(images, task_ids))
    for task_id, rows in groups.items():
        task = dataset.registry[task_id]
        owner = kinds.kind_of(task)
        for i, result in zip(rows, owner.results(task, decoded[task_id], [s.size for s in (samples[j] for j in rows)])):
            writer.add_record(task.kind, owner.record(dataset.entries[i], result))
            if task_id == "cells":
                expected_errors.append(abs(result.count - dataset.entries[i].label))
    written = writer.finish()
    assert os.path.basename(written[counting.kind]) == "counting_predictions.json"
    with open(written[counting.kind]) as fh:
        assert [r["image_path"] for r in json.load(fh)] == [f"../Counting/cells/{i:03d}.png" for i in range(3)]

    scored = evaluate(root, out_dir, workers=1)
    cells = scored.task("cells")
    assert cells.num_samples == 3 and not scored.missing
    assert cells.metrics["MAE"] == pytest.approx(float(np.mean(expected_errors)), abs=1e-12)
    assert scored.summary.per_kind["counting"]["MAE"] == cells.metrics["MAE"]
    assert [s["AE"] for s in scored.samples if s["task_id"] == "cells"] == pytest.approx(expected_errors)


def test_unregistering_removes_the_kind(counting):
    kinds.unregister_kind("counting")
    with pytest.raises(ValueError):
        Kind("counting")
    with pytest.raises(ValueError, match="built in"):
        Kind.unregister("detection")
    kinds.register_kind(CountingKind())  # the fixture unregisters it again
