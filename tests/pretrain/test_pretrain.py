"""``fmuia pretrain``: runs on a handful of tiny images, resumes bit for bit, and writes an
encoder that ``model.pretrained`` loads whole."""
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from fmuia.cli.main import main as cli
from fmuia.errors import CheckpointError
from fmuia.model import ModelConfig, build_model
from fmuia.model.encoder_file import encoder_file_info
from fmuia.pretrain import Pretrainer, pretrain
from fmuia.pretrain.checkpoint import STATE_NAME
from fmuia.tasks import fmuia2026
from pretrain_helpers import TINY_PRETRAIN, write_grey_images

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_grey_images(str(tmp_path_factory.mktemp("unlabelled") / "images"))


@pytest.fixture(scope="module")
def uninterrupted(images, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: the one_thread fixture is not active yet
    try:
        return pretrain(None, [images], str(tmp_path_factory.mktemp("pretrain") / "run"), overrides=TINY_PRETRAIN)
    finally:
        torch.set_num_threads(threads)


def test_a_run_writes_its_encoder_checkpoint_metrics_and_config(uninterrupted):
    run = uninterrupted.run_dir
    assert (uninterrupted.images, uninterrupted.epochs, uninterrupted.steps) == (6, 2, 4)  # 6 images, batches of 3
    for name in ("encoder.safetensors", "config.yaml", "run.json", "metrics.csv", "last/weights.safetensors",
                 "last/training_state.pt", "last/checkpoint.json"):
        assert os.path.isfile(os.path.join(run, name)), name
    assert [row["epoch"] for row in uninterrupted.history] == [1, 2]
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in uninterrupted.history)
    info = encoder_file_info(os.path.join(run, "encoder.safetensors"))
    assert info["encoder"] == "resnet18" and info["method"] == "simclr" and info["epochs"] == "2"


def test_resumed_run_equals_the_uninterrupted_one(images, uninterrupted, tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    original = Pretrainer._end_epoch

    def stop_after_first(self, *a):
        original(self, *a)
        if self.epoch == 1:
            raise KeyboardInterrupt  # as a killed run

    monkeypatch.setattr(Pretrainer, "_end_epoch", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        pretrain(None, [images], run, overrides=TINY_PRETRAIN)
    monkeypatch.setattr(Pretrainer, "_end_epoch", original)
    assert cli(["pretrain", "--resume", run]) == 0
    resumed = load_file(os.path.join(run, "encoder.safetensors"))
    straight = load_file(os.path.join(uninterrupted.run_dir, "encoder.safetensors"))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    with open(os.path.join(run, "metrics.csv")) as a, open(os.path.join(uninterrupted.run_dir, "metrics.csv")) as b:
        drop_time = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]  # noqa: E731
        assert drop_time(a.read()) == drop_time(b.read())


def test_model_pretrained_loads_every_encoder_tensor(uninterrupted):
    path = os.path.join(uninterrupted.run_dir, "encoder.safetensors")
    config = ModelConfig(encoder="resnet18", pretrained=path, image_size=64, decoder_channels=32,
                         decoder_out_channels=32, channels_last=False)
    model = build_model(config, fmuia2026().subset(["breast_2cls"]))
    report = model.encoder.load_report
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    saved = load_file(path)
    own = model.encoder.model.state_dict()
    assert all(torch.equal(own[k], saved[k]) for k in saved)


def test_resume_refuses_a_checkpoint_mixed_from_two_saves(uninterrupted, tmp_path):
    run = str(tmp_path / "copy")
    shutil.copytree(uninterrupted.run_dir, run)
    state = os.path.join(run, "last", STATE_NAME)
    with open(state, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        pretrain(resume=run, overrides=["train.epochs=3"])


def test_a_finished_run_is_not_overwritten(images, uninterrupted, capsys):
    assert cli(["pretrain", "--images", images, "--out", uninterrupted.run_dir, *_sets()]) == 2
    assert "already holds a pretraining run" in capsys.readouterr().err


def test_bad_input_is_a_clear_error_not_a_traceback(images, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    cases = [
        (["--images", str(empty)], f"{empty}: no image files"),
        (["--images", str(tmp_path / "missing")], "no such file or folder"),
        (["--images", str(empty / "notes.txt")], "not an image file"),
        (["--images", images, "--set", "train.batch_size=7"], "give no full batch of 7"),
        (["--images", images, "--set", "views.gamma=3"], "views.gamma: expected a probability"),
    ]
    for args, message in cases:
        assert cli(["pretrain", "--out", str(tmp_path / "run"), *_sets(), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "run").exists()


def _sets() -> list[str]:
    return [arg for item in TINY_PRETRAIN for arg in ("--set", item)]
