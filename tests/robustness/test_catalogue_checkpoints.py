"""Checkpoints and training state as a user meets them: an edited, mixed or foreign file
is refused by name before anything is loaded or written, a pickle is never unpickled,
and a run stopped by a bad file mid-way keeps its last good checkpoint."""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil

import pytest
import torch
from catalogue_helpers import TINY_TRAIN, file_of, fingerprint, run_cli
from dataset_builders import materialise, valid_rows
from tiny import tiny_checkpoint

from fmuia.model import load_checkpoint, save_checkpoint
from fmuia.model.checkpoint import CHECKPOINT_HASH, SIDECAR_NAME, STATE_NAME, WEIGHTS_NAME

RUN_ARGS = [*TINY_TRAIN, "--set", "data.tasks=[breast_2cls]", "--set", "data.val_fraction=0"]


class _Trap:
    """Unpickling this writes a marker file: proof that a pickle was executed."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _trap(path, marker) -> None:
    trap = _Trap()
    trap.marker = str(marker)
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": trap}, fh)


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    """A tiny run trained one epoch, its ``last`` copied, then resumed to a second."""
    base = tmp_path_factory.mktemp("run")
    root = str(base / "data")
    materialise(root, valid_rows())
    from fmuia.cli.main import main

    assert main(["train", "--data", root, "--out", str(base / "run"), *RUN_ARGS, "--set", "train.epochs=1"]) == 0
    shutil.copytree(base / "run" / "last", base / "epoch1")
    assert main(["train", "--resume", str(base / "run"), "--set", "train.epochs=2"]) == 0
    return base


@pytest.fixture
def run(two_epoch_run, tmp_path):
    shutil.copytree(two_epoch_run, tmp_path / "copy")
    return tmp_path / "copy"


@pytest.fixture
def ckpt(tmp_path):
    shutil.copytree(tiny_checkpoint(), tmp_path / "ckpt")
    return tmp_path / "ckpt"


def _edit(folder, change):
    meta = json.loads((folder / SIDECAR_NAME).read_text())
    change(meta)
    (folder / SIDECAR_NAME).write_text(json.dumps(meta))


def _flip(folder):
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))


CHECKPOINT_FAULTS = {
    "flipped_weight_byte": (_flip, f"{WEIGHTS_NAME}: SHA-256 differs from weights_sha256 in {SIDECAR_NAME}"),
    "edited_sidecar_field": (lambda c: _edit(c, lambda m: m["model_config"].update(image_size=128)),
                             "the sidecar does not match its checkpoint_sha256"),
    "missing_hash": (lambda c: _edit(c, lambda m: m.pop(CHECKPOINT_HASH)), "the sidecar has no checkpoint_sha256"),
}


@pytest.mark.parametrize("name", sorted(CHECKPOINT_FAULTS))
def test_predict_refuses_an_altered_checkpoint(ckpt, tmp_path, capsys, name):
    fault, message = CHECKPOINT_FAULTS[name]
    fault(ckpt)
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    before = fingerprint(tmp_path)
    code, _out, err = run_cli(["predict", "--checkpoint", ckpt, "--data", root, "--out", tmp_path / "pred",
                               "--workers", "0", "--no-progress", "--device", "cpu"], capsys)
    assert code == 2 and err.startswith(f"error: {ckpt}") and message in err and "Traceback" not in err
    assert fingerprint(tmp_path) == before  # no prediction folder, nothing else changed


def test_a_pickle_given_as_checkpoint_is_never_unpickled(tmp_path, capsys):
    marker = tmp_path / "executed"
    _trap(tmp_path / "model.pt", marker)
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    code, _out, err = run_cli(["predict", "--checkpoint", tmp_path / "model.pt", "--data", root, "--out",
                               tmp_path / "pred", "--workers", "0", "--no-progress", "--device", "cpu"], capsys)
    assert code == 2 and err.startswith(f"error: {tmp_path / 'model.pt'}") and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "pred").exists()


def test_a_pickle_given_as_training_state_is_never_unpickled(run, capsys):
    marker = run / "executed"
    last = run / "run" / "last"
    _trap(last / STATE_NAME, marker)
    before = fingerprint(run / "run")
    code, _out, err = run_cli(["train", "--resume", run / "run", "--set", "train.epochs=3"], capsys)
    assert code == 2 and err.startswith("error: ") and str(last) in err and "Traceback" not in err
    assert not marker.exists() and fingerprint(run / "run") == before


@pytest.mark.parametrize("stale", [WEIGHTS_NAME, STATE_NAME])
def test_resume_refuses_a_last_folder_mixed_from_two_saves(run, capsys, stale):
    shutil.copy(run / "epoch1" / stale, run / "run" / "last" / stale)
    before = fingerprint(run / "run")
    code, _out, err = run_cli(["train", "--resume", run / "run", "--set", "train.epochs=3"], capsys)
    assert code == 2 and str(run / "run" / "last") in err
    assert "SHA-256 differs" in err and "Traceback" not in err
    assert fingerprint(run / "run") == before


def test_a_file_broken_after_the_check_stops_the_run_and_keeps_the_last_checkpoint(run, capsys):
    """The files pass the header check and fail when their pixels are read in epoch 3."""
    for i in range(4):
        image = file_of(str(run / "data"), f"../Classification/breast_2cls/{i:03d}.png")
        data = open(image, "rb").read()
        open(image, "wb").write(data[: len(data) // 2])
    last_before = fingerprint(run / "run" / "last")
    code, _out, err = run_cli(["train", "--resume", run / "run", "--data", run / "data", "--set", "train.epochs=3"], capsys)
    assert code == 2 and re.match(r"error: csv_files/data\.csv line (7|8|9|10) \(task breast_2cls\): ", err)
    assert re.search(r"breast_2cls/00\d\.png: not a readable image \(truncated or corrupt PNG pixel data", err)
    assert f"the last good checkpoint {run / 'run' / 'last'} (epoch 2) is kept" in err
    assert fingerprint(run / "run" / "last") == last_before


class _Killed(BaseException):
    pass


def test_a_save_killed_before_its_publishing_rename_leaves_the_old_checkpoint(ckpt, tmp_path, monkeypatch):
    old = load_checkpoint(ckpt)
    newer = load_checkpoint(ckpt)
    with torch.no_grad():
        next(newer.parameters()).add_(1.0)
    real_replace = os.replace

    def killed(src, dst, *a, **k):
        if os.path.basename(str(dst)) == "ckpt":
            raise _Killed("power cut")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(_Killed):
        save_checkpoint(newer, ckpt)
    monkeypatch.undo()
    survivor = load_checkpoint(ckpt)  # verified: the whole old checkpoint, not a mix
    assert torch.equal(next(survivor.parameters()), next(old.parameters()))
    save_checkpoint(newer, ckpt)  # the next save completes and publishes the new one
    assert torch.equal(next(load_checkpoint(ckpt).parameters()), next(newer.parameters()))
