"""Training validation and ``fmuia evaluate`` score the same predictions identically:
validation decodes the head output through the kinds' prediction step; the same decoded
outputs are written as a submission (the kinds' results and records, the submission
writer) and scored by the scorer."""
import contextlib
import os

import pytest
import torch
from torch.utils.data import DataLoader

from dataset_builders import cls_row, det_row, kp_row, materialise, seg_row
from fmuia import kinds
from fmuia.data.dataset import FMUIADataset
from fmuia.data.torch_datasets import EvalSet, collate
from fmuia.data.transforms import build_eval_transform
from fmuia.evaluate.scorer import evaluate
from fmuia.model import ModelConfig, build_model
from fmuia.model.routing import group_indices
from fmuia.predict.writer import SubmissionWriter
from fmuia.train.validation import run_validation

SIZE = 64


def _rows():
    return (
        [seg_row(i) for i in range(3)]
        + [seg_row(i, task="cardiac_multi", n=4, folder="Four") for i in range(3)]
        + [cls_row(i, label=i % 2) for i in range(4)]
        + [cls_row(i, label=i % 3, task="breast_3cls", n=3) for i in range(4)]
        + [det_row(i, box=(2 + i, 5, 20 + i, 25 + i)) for i in range(3)]
        + [kp_row(i, points=((3 + i, 4), (20.5, 11 + i))) for i in range(3)]
    )


def _write_submission(model, loader, dataset, out_dir):
    """The predictions validation scored, written as ``fmuia predict`` writes them."""
    writer = SubmissionWriter(out_dir)
    writer.start()
    with torch.no_grad():
        for batch in loader:
            decoded = model.decode(model(batch["image"], batch["task_id"]))
            for task_id, rows in group_indices(batch["task_id"]).items():
                task = dataset.registry[task_id]
                owner = kinds.kind_of(task)
                sizes = [tuple(batch["size"][i]) for i in rows]
                for i, result in zip(rows, owner.results(task, decoded[task_id], sizes)):
                    entry = dataset.entries[batch["index"][i]]
                    if owner.prediction_file is None:
                        writer.add_mask(os.path.join(out_dir, owner.prediction_path(entry)), result.mask)
                    else:
                        writer.add_record(entry.kind, owner.record(entry, result))
    writer.finish()


@pytest.mark.parametrize("heads", [{}, {"keypoints": "heatmap", "detection": "centernet"}], ids=["seed", "dense"])
def test_validation_metrics_equal_the_scorer_on_the_same_predictions(tmp_path, heads):
    root = str(tmp_path / "data")
    materialise(root, _rows())
    dataset = FMUIADataset(root)
    torch.manual_seed(1)
    config = ModelConfig(encoder="resnet18", pretrained="none", image_size=SIZE, decoder_channels=32,
                         decoder_out_channels=32, channels_last=False, heads=heads)
    model = build_model(config, dataset.registry).eval()
    loader = DataLoader(EvalSet(dataset, build_eval_transform(SIZE)), batch_size=5, collate_fn=collate)

    validation = run_validation(model, loader, dataset.registry, torch.device("cpu"), contextlib.nullcontext)
    out_dir = str(tmp_path / "pred")
    _write_submission(model, loader, dataset, out_dir)
    scored = evaluate(root, out_dir, workers=1)

    assert not scored.missing and not scored.extra
    assert [r.task_id for r in validation.results] == [r.task_id for r in scored.tasks]
    for ours, theirs in zip(validation.results, scored.tasks):
        assert ours.num_samples == theirs.num_samples > 0
        assert ours.metrics.keys() == theirs.metrics.keys()
        for name, value in ours.metrics.items():
            if value is None:
                assert theirs.metrics[name] is None, (ours.task_id, name)
            else:
                assert theirs.metrics[name] == pytest.approx(value, abs=1e-9), (ours.task_id, name)
        assert theirs.score == pytest.approx(ours.score, abs=1e-9)
    assert scored.summary.challenge_score == pytest.approx(validation.score, abs=1e-9)
