"""Tasks of several input sizes (``model.input_scale``) predicted through both backends."""
import json
import os

import numpy as np
import pytest
import torch
from dataset_builders import materialise, valid_rows
from PIL import Image

import fmuia
from fmuia.cli.main import main
from fmuia.model import ModelConfig, build_model, save_checkpoint
from fmuia.data.resize import resize_image
from fmuia.predict.normalise import normalise
from fmuia.tasks import fmuia2026

from tiny import TINY

DENSE = {"segmentation": 1.5, "detection": 1.5, "keypoints": 1.5}  # 96 px; classification 64


@pytest.fixture(scope="module")
def scaled_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, input_scale=DENSE, heads={"detection": "centernet"}), fmuia2026()).eval()
    path = str(tmp_path_factory.mktemp("scaled") / "ckpt")
    save_checkpoint(model, path)
    return path


def test_each_task_is_predicted_at_its_own_size(scaled_checkpoint):
    predictor = fmuia.load(scaled_checkpoint, device="cpu", precision="fp32")
    assert predictor.input_sizes["breast_lesion"] == 96 and predictor.input_sizes["organ_cls"] == 64
    assert predictor.input_sizes == predictor.backend.model.input_sizes  # the model's mapping, received
    assert "64/96px" in repr(predictor)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (50 + 7 * i, 70, 3), dtype=np.uint8) for i in range(5)]
    task_ids = ["breast_lesion", "organ_cls", "FUGC", "organ_cls", "thyroid_nodule_det"]
    batch = predictor.predict_batch(images, task_ids)
    for image, task_id, result in zip(images, task_ids, batch):
        alone = predictor.predict(image, task_id)
        assert type(alone) is type(result)
        for name, a in vars(alone).items():
            b = getattr(result, name)
            if isinstance(a, str) or a is None:
                assert a == b, name
            else:
                np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=1e-4)
    # the segmentation mask is the model's answer at 96 px, not at image_size
    model = predictor.backend.model
    x = normalise(torch.from_numpy(resize_image(images[0], 96))[None], torch.device("cpu"))
    with torch.no_grad():
        logits = model(x, ["breast_lesion"])["breast_lesion"]
    assert logits.shape[-2:] == (96, 96)
    assert batch[0].mask.shape == images[0].shape[:2]


def test_torch_and_onnx_submissions_agree(tmp_path, scaled_checkpoint):
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    onnx_file = str(tmp_path / "model.onnx")
    assert main(["export", "onnx", "--checkpoint", scaled_checkpoint, onnx_file]) == 0
    # the graph carries the model's mapping
    assert fmuia.load(onnx_file, device="cpu").input_sizes == fmuia.load(scaled_checkpoint).backend.model.input_sizes
    outs = {}
    for backend, ckpt in (("torch", scaled_checkpoint), ("onnx", onnx_file)):
        out = outs[backend] = str(tmp_path / backend)
        assert main(["predict", "--checkpoint", ckpt, "--data", root, "--out", out, "--device", "cpu", "--workers", "0",
                     "--backend", backend, "--precision", "fp32", "--no-progress", "--batch-size", "3"]) == 0
    for name in ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json"):
        a, b = (json.load(open(os.path.join(outs[k], name))) for k in ("torch", "onnx"))
        assert [r["image_path"] for r in a] == [r["image_path"] for r in b] and a
        for ra, rb in zip(a, b):
            for key, value in ra.items():
                if isinstance(value, list):
                    np.testing.assert_allclose(value, rb[key], atol=1e-3)
    masks = [os.path.relpath(os.path.join(d, f), outs["torch"])
             for d, _, fs in os.walk(os.path.join(outs["torch"], "Segmentation")) for f in fs]
    assert masks
    for rel in masks:
        a, b = (np.asarray(Image.open(os.path.join(outs[k], rel))) for k in ("torch", "onnx"))
        assert (a != b).mean() < 0.01, rel
