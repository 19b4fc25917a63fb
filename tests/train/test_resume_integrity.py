"""``fmuia train --resume`` continues only from a whole checkpoint: weights, sidecar and
training state of one save."""
import os
import shutil

import pytest
import torch

from fmuia.cli.main import main as cli
from fmuia.errors import CheckpointError
from fmuia.model.checkpoint import SIDECAR_NAME, STATE_NAME, WEIGHTS_NAME
from fmuia.train import train
from train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def resumed_once(train_root, tmp_path_factory):
    """A run resumed once (epoch 1, then epoch 2), with a copy of its epoch-1 ``last``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: the one_thread fixture is not active yet
    base = tmp_path_factory.mktemp("resumed")
    run = str(base / "run")
    try:
        train(tiny_config(epochs=1), train_root, run)
        shutil.copytree(os.path.join(run, "last"), str(base / "epoch1"))
        train(resume=run, overrides=["train.epochs=2"])
    finally:
        torch.set_num_threads(threads)
    return base


@pytest.fixture
def two_epochs(resumed_once, tmp_path):
    """This test's own copy of ``resumed_once``: (run folder, epoch-1 ``last``)."""
    shutil.copytree(resumed_once, tmp_path / "copy")
    return str(tmp_path / "copy" / "run"), tmp_path / "copy" / "epoch1"


@pytest.mark.parametrize("stale", [STATE_NAME, WEIGHTS_NAME, SIDECAR_NAME])
def test_resume_refuses_a_checkpoint_mixed_from_two_saves(two_epochs, stale, capsys):
    run, epoch1 = two_epochs
    last = os.path.join(run, "last")
    shutil.copy(epoch1 / stale, os.path.join(last, stale))
    with pytest.raises(CheckpointError, match="SHA-256 differs|does not match its checkpoint_sha256"):
        train(resume=run, overrides=["train.epochs=3"])
    assert cli(["train", "--resume", run, "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and last in err and "Traceback" not in err


def test_resume_after_a_save_interrupted_between_its_renames(two_epochs):
    """The run's ``last`` was moved aside and the new one never arrived: resume continues
    from the old one and the next save cleans up."""
    run, _ = two_epochs
    aside = os.path.join(run, ".last." + "a" * 32 + ".old")
    os.rename(os.path.join(run, "last"), aside)
    staged = os.path.join(run, ".last." + "b" * 32 + ".new")
    os.makedirs(staged)
    result = train(resume=run, overrides=["train.epochs=3"])
    assert result.epochs == 3
    assert sorted(n for n in os.listdir(run) if "last" in n) == ["last"]
    state = torch.load(os.path.join(run, "last", STATE_NAME), weights_only=True)
    assert state["epoch"] == 3 and len(state["history"]) == 3
