"""Tiny runs for the training tests: resnet18 without pretrained weights at 64 px on a
few 32x32 images of all four kinds."""
from __future__ import annotations

import pytest

from dataset_builders import cls_row, det_row, kp_row, materialise, seg_row

TINY_MODEL = {
    "encoder": "resnet18",
    "pretrained": "none",
    "image_size": 64,
    "decoder_channels": 32,
    "decoder_out_channels": 32,
    "channels_last": False,
}


def tiny_config(**train) -> dict:
    return {
        "seed": 3,
        "device": "cpu",
        "model": dict(TINY_MODEL),
        "data": {"num_workers": 0, "val_fraction": 0.25},
        "train": {"epochs": 2, "batch_size": 4, "progress": False, "plot": False, **train},
        "optim": {"lr": 1e-3},
    }


def tiny_rows() -> list[dict]:
    return (
        [seg_row(i) for i in range(6)]
        + [cls_row(i, label=i % 2) for i in range(6)]
        + [det_row(i, box=(4 + i, 5, 20 + i, 25)) for i in range(6)]
        + [kp_row(i, points=((3 + i, 4), (20.5, 11 + i))) for i in range(6)]
    )


@pytest.fixture(scope="session")
def train_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("train") / "data")
    materialise(root, tiny_rows())
    return root


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and do not fight other processes for cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
