import json
import os

import numpy as np
import pytest
import torch
from dataset_builders import materialise, valid_rows
from tiny import tiny_checkpoint

import fmuia
from fmuia.cli.main import main
from fmuia.model import load_checkpoint
from fmuia.predict.backends import OnnxBackend, TorchBackend

JSONS = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("onnx") / "model.onnx")
    assert main(["export", "onnx", "--checkpoint", tiny_checkpoint(), path]) == 0
    return path


def test_onnx_and_torch_raw_outputs_agree_on_a_mixed_batch(onnx_file):
    torch_backend = TorchBackend(load_checkpoint(tiny_checkpoint()), "cpu", "fp32")
    onnx_backend = OnnxBackend(onnx_file, "cpu")
    assert onnx_backend.registry == torch_backend.registry
    images = torch.randint(0, 256, (7, 64, 64, 3), dtype=torch.uint8)
    for task_ids in (["FUGC", "breast_lesion", "organ_cls", "breast_lesion", "thyroid_nodule_det", "FUGC", "cardiac_multi"],
                     ["organ_cls"] * 7):  # a batch without any FPN task
        expected, got = torch_backend.raw(images, task_ids), onnx_backend.raw(images, task_ids)
        assert set(got) == set(expected)
        for task_id, raw in expected.items():
            assert got[task_id].shape == raw.shape
            assert float(np.abs(got[task_id] - raw.numpy()).max()) <= 1e-4, task_id


def test_predict_with_onnx_backend_matches_torch(tmp_path, onnx_file):
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    outs = {}
    for backend, ckpt in (("torch", tiny_checkpoint()), ("onnx", onnx_file)):
        out = str(tmp_path / backend)
        args = ["predict", "--checkpoint", ckpt, "--data", root, "--out", out, "--device", "cpu",
                "--workers", "0", "--backend", backend, "--precision", "fp32", "--no-progress"]
        assert main(args) == 0
        outs[backend] = out
    for name in JSONS:
        a, b = (json.load(open(os.path.join(outs[k], name))) for k in ("torch", "onnx"))
        assert [r["image_path"] for r in a] == [r["image_path"] for r in b]
        for ra, rb in zip(a, b):
            for key, value in ra.items():
                if isinstance(value, list):
                    np.testing.assert_allclose(value, rb[key], atol=1e-4)
    predictor = fmuia.load(onnx_file)
    assert predictor.backend.name == "onnxruntime"

