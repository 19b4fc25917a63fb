"""A tiny random model checkpoint and data roots for the prediction tests."""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

from fmuia.model import ModelConfig, build_model, save_checkpoint
from fmuia.tasks import fmuia2026

TINY = dict(encoder="resnet18", pretrained="none", image_size=64, decoder_channels=32, decoder_out_channels=32)


@functools.lru_cache(maxsize=None)
def tiny_checkpoint() -> str:
    """A random resnet18 model at 64 px for all 27 tasks, saved once per test session."""
    import torch

    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY), fmuia2026()).eval()
    folder = tempfile.mkdtemp(prefix="fmuia-test-ckpt-")
    # Removed when the test process ends: a suite run must not leave 45 MB behind per worker.
    atexit.register(shutil.rmtree, folder, True)
    save_checkpoint(model, os.path.join(folder, "ckpt"))
    return os.path.join(folder, "ckpt")
