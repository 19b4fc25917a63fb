"""``loss.balance: uncertainty`` in training: the learned per-task log-variances move,
sit in their own optimiser group, are logged per epoch, are kept in the training state
(not in the model weights) and resume bit-identically."""
import csv
import os

import pytest
import torch
from safetensors.torch import load_file

from fmuia.errors import CheckpointError
from fmuia.train import Trainer, train
from fmuia.train.state import load_state
from train_helpers import tiny_config, train_stopped_after_first_epoch

pytestmark = pytest.mark.usefixtures("one_thread")


def balanced_config(**train_cfg):
    config = tiny_config(**train_cfg)
    config["loss"] = {"balance": "uncertainty"}
    return config


def rows(run):
    return list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))


def test_uncertainty_balance_learns_per_task_weights_outside_the_model(train_root, tmp_path):
    run = str(tmp_path / "run")
    trainer = Trainer(balanced_config(), train_root, run)
    try:
        group = trainer.optimizer.param_groups[-1]
        assert group["name"] == "loss balance" and group["weight_decay"] == 0.0
        heads = next(g for g in trainer.optimizer.param_groups if g["name"].startswith("head:"))
        assert group["initial_lr"] == heads["initial_lr"]  # the heads' rate, on the same schedule
        assert len(trainer.scheduler.lr_lambdas) == len(trainer.optimizer.param_groups)
        trainer.fit()
        log_vars = {t: float(s) for t, s in trainer.loss.balance.state().items()}
    finally:
        trainer.close()
    assert sorted(log_vars) == sorted(trainer.registry.task_ids)
    assert all(v != 0.0 for v in log_vars.values())  # every task was trained and its s moved
    assert len(set(log_vars.values())) == len(log_vars)  # and each by its own loss
    state = load_state(os.path.join(run, "last"))
    assert {t: float(s) for t, s in state["loss_balance"].items()} == log_vars
    assert not any("balance" in k or "log_var" in k for k in load_file(os.path.join(run, "last", "model.safetensors")))
    last = rows(run)[-1]
    for task, s in log_vars.items():
        assert float(last[f"balance_{task}"]) == pytest.approx(torch.exp(torch.tensor(-s)).item(), rel=1e-6)
    assert list(last)[-len(log_vars):] == [f"balance_{t}" for t in trainer.registry.task_ids]


def test_uncertainty_balance_resumes_bit_identically(train_root, tmp_path, monkeypatch):
    straight = str(tmp_path / "straight")
    train(balanced_config(), train_root, straight)

    interrupted = str(tmp_path / "interrupted")
    train_stopped_after_first_epoch(monkeypatch, balanced_config(), train_root, interrupted)
    result = train(resume=interrupted)
    assert result.epochs == 2
    a, b = load_file(os.path.join(straight, "last", "model.safetensors")), load_file(os.path.join(interrupted, "last", "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa, sb = load_state(os.path.join(straight, "last")), load_state(os.path.join(interrupted, "last"))
    for task in sa["loss_balance"]:
        assert torch.equal(sa["loss_balance"][task], sb["loss_balance"][task]), task
    assert rows(straight) == [{**r, "time_s": ra["time_s"]} for r, ra in zip(rows(interrupted), rows(straight))]
    # the saved config decides: resuming with the other balance is refused, naming the key
    with pytest.raises(CheckpointError, match="different loss.balance"):
        train(resume=interrupted, overrides=["train.epochs=3", "loss.balance=fixed"])
