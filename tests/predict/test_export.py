import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from dataset_builders import materialise, valid_rows
from tiny import tiny_checkpoint

import fmuia
from fmuia.cli.main import main
from fmuia.errors import ConfigError
from fmuia.model import load_checkpoint
from fmuia.predict.backends import OnnxBackend, TorchBackend
from fmuia.predict.predictor import normalise
from fmuia.predict.submission import export_submission

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
    images = normalise(torch.randint(0, 256, (7, 64, 64, 3), dtype=torch.uint8), torch.device("cpu"))
    for task_ids in (["FUGC", "breast_lesion", "organ_cls", "breast_lesion", "thyroid_nodule_det", "FUGC", "cardiac_multi"],
                     ["organ_cls"] * 7):  # a batch without any FPN task
        expected, got = torch_backend.raw(images, task_ids), onnx_backend.raw(images, task_ids)
        assert set(got) == set(expected)
        for task_id, raw in expected.items():
            assert got[task_id].shape == raw.shape
            assert float((got[task_id] - raw).abs().max()) <= 1e-4, task_id


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
    assert predictor.backend.name == "onnx"


def test_exported_folder_runs_on_its_own(tmp_path):
    root, folder, out = str(tmp_path / "data"), tmp_path / "submission", str(tmp_path / "output")
    materialise(root, valid_rows())
    assert main(["export", "submission", "--checkpoint", tiny_checkpoint(), str(folder), "--device", "cpu", "--tta"]) == 0
    assert {"model.py", "Dockerfile", "requirements.txt", "settings.json", "checkpoint", "fmuia"} <= set(os.listdir(folder))
    with pytest.raises(ConfigError, match="not empty"):
        export_submission(tiny_checkpoint(), str(folder))

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import model\n"
        "m = model.Model()\n"
        f"m.predict({root!r}, {out!r}, batch_size=8)\n"
        "import fmuia\n"
        "print('PACKAGE', fmuia.__file__)\n"
        "print('TTA', len(m.predictor.tta))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    package = proc.stdout.split("PACKAGE ", 1)[1].splitlines()[0]
    assert package.startswith(str(folder)), package  # the copy in the folder, not the repository
    assert int(proc.stdout.split("TTA ", 1)[1].split()[0]) > 0
    assert all(os.path.isfile(os.path.join(out, name)) for name in JSONS)
    assert len(json.load(open(os.path.join(out, JSONS[0])))) == 4
    assert os.path.isfile(os.path.join(out, "Segmentation/Four/cardiac_multi/MASKS/001.png"))
