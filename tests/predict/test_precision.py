"""Inference precision: fp32 by default on CPU whatever the CPU, bf16 when asked."""
import json
import os

import pytest
import torch
from dataset_builders import materialise, valid_rows
from tiny import tiny_checkpoint

import fmuia
from fmuia.cli.main import main
from fmuia import runtime as model_config
from fmuia.predict.backends import inference_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("fast_bf16", [False, True])
def test_cpu_default_is_fp32_on_every_cpu(monkeypatch, fast_bf16):
    monkeypatch.setattr(model_config, "cpu_has_fast_bf16", lambda: fast_bf16)
    for checkpoint_precision in ("auto", "bf16", "fp32"):
        assert inference_precision(None, checkpoint_precision, CPU) == "fp32"
    assert inference_precision("bf16", "auto", CPU) == "bf16"
    assert inference_precision("fp32", "auto", CPU) == "fp32"
    assert inference_precision("auto", "fp32", CPU) == ("bf16" if fast_bf16 else "fp32")


def test_gpu_default_stays_the_checkpoints(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cuda = torch.device("cuda")
    assert inference_precision(None, "auto", cuda) == "bf16"
    assert inference_precision(None, "fp32", cuda) == "fp32"
    assert inference_precision("fp32", "auto", cuda) == "fp32"


def test_load_and_cli_default_fp32_and_bf16_on_request(tmp_path, monkeypatch):
    monkeypatch.setattr(model_config, "cpu_has_fast_bf16", lambda: True)  # where auto would pick bf16
    assert fmuia.load(tiny_checkpoint(), device="cpu").backend.precision == "fp32"
    assert fmuia.load(tiny_checkpoint(), device="cpu", precision="bf16").backend.precision == "bf16"
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    outs = {}
    for name, extra in (("default", []), ("fp32", ["--precision", "fp32"]), ("bf16", ["--precision", "bf16"])):
        outs[name] = str(tmp_path / name)
        assert main(["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", outs[name],
                     "--device", "cpu", "--workers", "0", "--no-progress", *extra]) == 0

    def probs(out):
        with open(os.path.join(out, "classification_predictions.json")) as fh:
            return [r["predicted_probs"] for r in json.load(fh)]

    assert probs(outs["default"]) == probs(outs["fp32"])
    assert probs(outs["bf16"]) != probs(outs["fp32"])  # bf16 really ran
