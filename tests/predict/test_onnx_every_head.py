"""Every registered head type exports to ONNX and gives the torch model's raw outputs.

The registry is walked, so a head type added to a kind is covered without editing this
file. The improved recipe's dense heads read the FPN map (as configs/fmuia_plus.yaml
routes them); the others keep their kind's default route.
"""
import numpy as np
import pytest
import torch

from fmuia import kinds
from fmuia.model import ModelConfig, build_model
from fmuia.predict.backends import OnnxBackend, TorchBackend
from fmuia.predict.onnx_graph import export_onnx
from fmuia.tasks import TaskRegistry, fmuia2026

from tiny import TINY

# One task of each built-in kind keeps every export small.
REGISTRY = TaskRegistry(t for t in fmuia2026() if t.task_id in ("breast_lesion", "organ_cls", "thyroid_nodule_det", "FUGC"))
HEAD_TYPES = [(k.name, name) for k in kinds.all_kinds() for name in k.head_types if REGISTRY.of_kind(k.kind)]


def test_every_built_in_kind_and_head_type_is_covered():
    covered = {(kind, head) for kind, head in HEAD_TYPES}
    assert {("segmentation", "conv"), ("classification", "linear"), ("detection", "grid"), ("detection", "centernet"),
            ("keypoints", "regression"), ("keypoints", "bounded_regression"), ("keypoints", "heatmap")} <= covered


@pytest.mark.parametrize("kind, head", HEAD_TYPES, ids=[f"{k}.{h}" for k, h in HEAD_TYPES])
def test_head_type_round_trips_through_onnx(kind, head, tmp_path):
    routing = {kind: "fpn"} if head in ("heatmap", "centernet") else {}
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, heads={kind: head}, routing=routing), REGISTRY).eval()
    path = str(tmp_path / "model.onnx")
    export_onnx(model, path)
    torch_backend, onnx_backend = TorchBackend(model, "cpu", "fp32"), OnnxBackend(path, "cpu")
    images = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8)
    task_ids = ["FUGC", "breast_lesion", "organ_cls", "thyroid_nodule_det", "FUGC"]
    expected, got = torch_backend.raw(images, task_ids), onnx_backend.raw(images, task_ids)
    assert set(got) == set(expected) == set(task_ids)
    for task_id, raw in expected.items():
        assert got[task_id].shape == raw.shape, task_id
        assert float(np.abs(got[task_id] - raw.numpy()).max()) <= 1e-4, task_id
    # the decoded predictions (what the submission is made of) agree as well
    decoded_torch, decoded_onnx = torch_backend.decoded(images, task_ids), onnx_backend.decoded(images, task_ids)
    for task_id in expected:
        np.testing.assert_allclose(decoded_onnx[task_id], decoded_torch[task_id], atol=1e-4, err_msg=task_id)


def test_fine_decoder_stage_round_trips_through_onnx(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(**TINY, decoder_stride=2, heads={"keypoints": "heatmap", "detection": "centernet"},
                         routing={"keypoints": "fpn"})
    model = build_model(config, REGISTRY).eval()
    path = str(tmp_path / "model.onnx")
    export_onnx(model, path)
    images = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    task_ids = ["FUGC", "breast_lesion", "organ_cls", "thyroid_nodule_det"]
    expected = TorchBackend(model, "cpu", "fp32").raw(images, task_ids)
    got = OnnxBackend(path, "cpu").raw(images, task_ids)
    assert expected["thyroid_nodule_det"].shape[-2:] == (32, 32)  # stride 2 of 64 px
    for task_id, raw in expected.items():
        assert got[task_id].shape == raw.shape, task_id
        assert float(np.abs(got[task_id] - raw.numpy()).max()) <= 1e-4, task_id


def test_several_input_sizes_share_one_onnx_graph(tmp_path):
    # model.input_scale: the dense tasks at 96 px, the others at 64; the graph takes both.
    torch.manual_seed(0)
    config = ModelConfig(**TINY, heads={"keypoints": "heatmap", "detection": "centernet"}, routing={"keypoints": "fpn"},
                         input_scale={"segmentation": 1.5, "detection": 1.5, "keypoints": 1.5})
    model = build_model(config, REGISTRY).eval()
    assert model.input_sizes == {"FUGC": 96, "breast_lesion": 96, "organ_cls": 64, "thyroid_nodule_det": 96}
    path = str(tmp_path / "model.onnx")
    export_onnx(model, path)
    torch_backend, onnx_backend = TorchBackend(model, "cpu", "fp32"), OnnxBackend(path, "cpu")
    for side, task_ids in ((96, ["FUGC", "breast_lesion", "thyroid_nodule_det"]), (64, ["organ_cls", "organ_cls"])):
        images = torch.randint(0, 256, (len(task_ids), side, side, 3), dtype=torch.uint8)
        expected, got = torch_backend.raw(images, task_ids), onnx_backend.raw(images, task_ids)
        for task_id, raw in expected.items():
            assert got[task_id].shape == raw.shape, (side, task_id)
            assert float(np.abs(got[task_id] - raw.numpy()).max()) <= 1e-4, (side, task_id)
        if side == 96:
            assert expected["breast_lesion"].shape[-2:] == (96, 96)
