"""Training runs with the official code's behaviour switched on by config: the decoder
left untrained (``optim.train_decoder``) and the rate annealed per epoch
(``schedule.interval``); both keep a resumed run bit-identical."""
import csv
import math
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import fmuia
from fmuia.config import load_config
from fmuia.train import Trainer, train
from train_helpers import tiny_config, train_stopped_after_first_epoch

pytestmark = pytest.mark.usefixtures("one_thread")

FROZEN = ["optim.train_decoder=false"]
PER_EPOCH = ["schedule.interval=epoch"]


def _short_run(root, run_dir, overrides):
    """(weights before training, weights of the last checkpoint) of a three-step run."""
    trainer = Trainer(load_config(tiny_config(epochs=1, max_steps=3), overrides), root, run_dir)
    try:
        start = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        trainer.fit()
    finally:
        trainer.close()
    return start, load_file(os.path.join(run_dir, "last", "model.safetensors"))


def _changed(before, after, prefix):
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return [k for k in keys if not torch.equal(before[k], after[k])]


def test_untrained_decoder_keeps_its_initialisation_and_predicts(train_root, tmp_path):
    run = str(tmp_path / "frozen")
    start, end = _short_run(train_root, run, FROZEN)
    assert _changed(start, end, "decoder.") == []
    assert _changed(start, end, "encoder.")
    assert _changed(start, end, "heads.")
    predictor = fmuia.load(os.path.join(run, "last"), device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    [result] = predictor.predict_batch([image], ["breast_lesion"])
    assert result.mask.shape == (32, 32)

    start, end = _short_run(train_root, str(tmp_path / "trained"), [])
    assert _changed(start, end, "decoder.")


def test_per_epoch_rate_and_untrained_decoder_resume_bit_identically(train_root, tmp_path, monkeypatch):
    config = tiny_config()  # two epochs, optim.lr 1e-3 for the encoder
    straight = str(tmp_path / "straight")
    result = train(config, train_root, straight, overrides=FROZEN + PER_EPOCH)
    rows = list(csv.DictReader(open(os.path.join(straight, "metrics.csv"))))
    # After epoch 1 the encoder runs at the rate of epoch e = 1 of E = 2: half-way.
    assert float(rows[0]["lr"]) == pytest.approx(1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi / 2)) / 2, rel=1e-9)
    assert result.steps == 2 * int(rows[0]["step"])

    interrupted = str(tmp_path / "interrupted")
    train_stopped_after_first_epoch(monkeypatch, config, train_root, interrupted, overrides=FROZEN + PER_EPOCH)
    train(resume=interrupted)
    a = load_file(os.path.join(straight, "last", "model.safetensors"))
    b = load_file(os.path.join(interrupted, "last", "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
