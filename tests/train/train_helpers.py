"""Tiny runs for the training tests: resnet18 without pretrained weights at 64 px on a
few 32x32 images of all four kinds (``dataset_builders.training_rows``; the data root
and the one-thread setting are fixtures of tests/conftest.py)."""
from __future__ import annotations

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


def stopped_after_first_epoch(monkeypatch, run_class, start) -> None:
    """``start()`` interrupted (KeyboardInterrupt) right after the first epoch of its run
    (a ``run_class``, a ``TrainingLoop``) was saved, as a killed run would be."""
    import pytest

    original = run_class._end_epoch

    def stop_after_first(self, *a):
        original(self, *a)
        if self.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_class, "_end_epoch", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        start()
    monkeypatch.setattr(run_class, "_end_epoch", original)


def train_stopped_after_first_epoch(monkeypatch, *args, **kwargs) -> None:
    """``train(*args, **kwargs)`` interrupted right after its first epoch was saved;
    resume it with ``train(resume=RUN)``."""
    from fmuia.train import Trainer, train

    stopped_after_first_epoch(monkeypatch, Trainer, lambda: train(*args, **kwargs))
