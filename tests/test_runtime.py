import os

import pytest
import torch

from fmuia.errors import ConfigError
from fmuia.runtime import (autocast, resolve_device, resolve_precision, training_precision,
                           training_workers)


def test_training_workers_leave_a_core_for_training():
    n = training_workers(device_type="cuda")
    assert 0 <= n <= 8 and n <= max(0, len(os.sched_getaffinity(0)) - 1)
    assert training_workers(device_type="cpu") == 0  # CPU training: the model's threads use every core
    assert training_workers(local_world_size=64, device_type="cuda") == 0  # cores shared by 64 processes


def test_device_resolution(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    assert resolve_device("auto", local_rank=1) == torch.device("cpu")
    with pytest.raises(ConfigError, match="'cuda' requested but no CUDA device"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")  # prediction: the current device
    assert resolve_device("auto", local_rank=1) == torch.device("cuda:1")  # one process per GPU
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda:1")
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda:0")  # an explicit index is kept


def test_precision_and_autocast():
    assert training_precision("auto", torch.device("cpu")) == "fp32"  # CPU training never autocasts by default
    assert training_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("int8")
    with autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
