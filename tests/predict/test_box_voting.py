"""Box voting is a prediction setting: saved with the checkpoint and its ONNX graph,
overridden by ``fmuia.load(box_voting=...)`` and ``fmuia predict --[no-]box-voting``."""

import pytest
import torch

from fmuia.config import PredictConfig
from fmuia.model import ModelConfig, build_model
from fmuia.model.checkpoint import save_checkpoint
from fmuia.predict.api import load
from fmuia.predict.onnx_graph import export_onnx
from fmuia.tasks import TaskRegistry, fmuia2026

from tiny import TINY

REGISTRY = TaskRegistry(t for t in fmuia2026() if t.task_id in ("thyroid_nodule_det", "organ_cls"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voting")
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, heads={"detection": "centernet"}), REGISTRY, PredictConfig(box_voting=True)).eval()
    checkpoint = str(folder / "ckpt")
    save_checkpoint(model, checkpoint)
    graph = str(folder / "model.onnx")
    export_onnx(model, graph)
    return checkpoint, graph


def _voting(predictor) -> bool:
    return predictor.backend.predict.box_voting


@pytest.mark.parametrize("which", ["checkpoint", "onnx"])
def test_saved_choice_is_the_default_and_an_argument_overrides_it(saved, which):
    path = saved[0] if which == "checkpoint" else saved[1]
    assert _voting(load(path, device="cpu")) is True
    assert _voting(load(path, device="cpu", box_voting=False)) is False


def test_torch_and_onnx_decode_the_same_voted_boxes(saved):
    checkpoint, graph = saved
    images = [(torch.rand(90, 120, 3) * 255).to(torch.uint8).numpy() for _ in range(3)]
    ids = ["thyroid_nodule_det"] * 3
    by_torch = load(checkpoint, device="cpu").predict_batch(images, ids)
    by_onnx = load(graph, device="cpu").predict_batch(images, ids)
    peak_only = load(checkpoint, device="cpu", box_voting=False).predict_batch(images, ids)
    for a, b in zip(by_torch, by_onnx):
        assert a.box == pytest.approx(b.box, abs=1e-3)
    # a random network's score map has many cells near its peak: voting moves the box
    assert any(a.box != pytest.approx(c.box, abs=1e-3) for a, c in zip(by_torch, peak_only))


@pytest.mark.parametrize("flags, expected", [([], None), (["--box-voting"], True), (["--no-box-voting"], False)])
def test_predict_command_leaves_the_choice_to_the_checkpoint_unless_told(flags, expected):
    from fmuia.cli.main import build_parser

    args = build_parser().parse_args(["predict", "--checkpoint", "c", "--data", "d", "--out", "o", *flags])
    assert args.box_voting is expected


def test_predict_box_voting_must_be_a_boolean():
    from fmuia.errors import ConfigError

    with pytest.raises(ConfigError, match="predict.box_voting"):
        PredictConfig(box_voting="yes")
