import csv
import dataclasses
import os
import re

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fmuia.cli.main import main as cli
from fmuia.errors import ConfigError
from fmuia.kinds import kind_of
from fmuia.model import load_checkpoint
from fmuia.tasks import Kind
from fmuia.train import NonFiniteLossError, train
from fmuia.train.state import STATE_NAME
from train_helpers import tiny_config, train_stopped_after_first_epoch

pytestmark = pytest.mark.usefixtures("one_thread")


def weights(run_dir, which="last"):
    return load_file(os.path.join(run_dir, which, "model.safetensors"))


def test_run_outputs_and_the_untrained_score(train_root, tmp_path):
    run = str(tmp_path / "run")
    result = train(tiny_config(plot=True), train_root, run)
    assert result.epochs == 2 and result.steps > 0
    for name in ("config.yaml", "metrics.csv", "curves.png", "last/model.safetensors", "best/model.json", f"last/{STATE_NAME}"):
        assert os.path.exists(os.path.join(run, name)), name
    rows = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for col in ("step", "lr", "train_loss", "segmentation_DSC", "classification_AUC", "detection_IoU", "keypoints_MRE",
                "val_score", "score_breast_lesion", "score_FUGC"):
        assert col in rows[0], col
    assert result.best_score == max(float(r["val_score"]) for r in rows)
    saved = yaml.safe_load(open(os.path.join(run, "config.yaml")))
    assert saved["model"]["encoder"] == "resnet18" and saved["train"]["epochs"] == 2
    model = load_checkpoint(os.path.join(run, "best"))
    assert model.checkpoint_meta["training_config"]["seed"] == 3
    # epochs=0 scores the untrained model (what a run starts from)
    base = train(tiny_config(epochs=0), train_root, str(tmp_path / "untrained"))
    assert base.epochs == 0 and base.best_score is not None and base.history[0]["train_loss"] is None
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(tiny_config(), train_root, run)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(train_root, tmp_path, monkeypatch):
    straight = str(tmp_path / "straight")
    train(tiny_config(), train_root, straight)

    interrupted = str(tmp_path / "interrupted")
    train_stopped_after_first_epoch(monkeypatch, tiny_config(), train_root, interrupted)
    assert len(list(csv.DictReader(open(os.path.join(interrupted, "metrics.csv"))))) == 1
    result = train(resume=interrupted)
    assert result.epochs == 2
    a, b = weights(straight), weights(interrupted)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a = list(csv.DictReader(open(os.path.join(straight, "metrics.csv"))))
    rows_b = list(csv.DictReader(open(os.path.join(interrupted, "metrics.csv"))))
    for ra, rb in zip(rows_a, rows_b):
        assert ra["val_score"] == rb["val_score"] and ra["train_loss"] == rb["train_loss"]


def test_non_finite_loss_stops_naming_task_and_step_and_keeps_checkpoint(train_root, tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    train(tiny_config(epochs=1), train_root, run)
    before = open(os.path.join(run, "last", "model.safetensors"), "rb").read()
    owner = kind_of(Kind.CLASSIFICATION)
    nan_loss = dataclasses.replace(owner.head_types["linear"], loss=lambda raw, target, task, params: raw.sum() * float("nan"))
    monkeypatch.setitem(owner.head_types, "linear", nan_loss)
    with pytest.raises(NonFiniteLossError) as err:
        train(resume=run, overrides=["train.epochs=2"])
    message = str(err.value)
    assert "breast_2cls" in message and "classification" in message
    step = int(re.search(r"at step (\d+)", message).group(1))
    assert step > 1
    assert "last good checkpoint" in message
    assert open(os.path.join(run, "last", "model.safetensors"), "rb").read() == before
    assert load_checkpoint(os.path.join(run, "last")).checkpoint_meta["extra"]["epoch"] == 1


def test_cli_overrides_and_errors(train_root, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config()))
    run = str(tmp_path / "cli")
    code = cli(["train", "--config", str(cfg), "--data", train_root, "--out", run,
                "--set", "train.epochs=1", "--set", "sampler.mode=mixed", "--set", "train.ema_decay=0.9"])
    assert code == 0
    saved = yaml.safe_load(open(os.path.join(run, "config.yaml")))
    assert saved["train"]["epochs"] == 1 and saved["sampler"]["mode"] == "mixed" and saved["train"]["ema_decay"] == 0.9
    assert "best validation challenge score" in capsys.readouterr().out
    code = cli(["train", "--config", str(cfg), "--data", train_root, "--out", str(tmp_path / "x"), "--set", "train.epochz=1"])
    err = capsys.readouterr().err
    assert code == 2 and "train.epochz" in err and "Traceback" not in err
    code = cli(["train", "--data", train_root, "--out", str(tmp_path / "y"), "--set", "train.epochs=many"])
    assert code == 2 and "train.epochs" in capsys.readouterr().err
