"""A checkpoint is one unit: its hash covers weights, training state and every sidecar
field, and a save killed at any instant leaves the old or the new checkpoint."""
import contextlib
import json
import os
import shutil

import pytest
import torch

from fmuia.errors import CheckpointError
from fmuia.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from fmuia.model.checkpoint import (
    CHECKPOINT_HASH,
    SIDECAR_NAME,
    STATE_NAME,
    WEIGHTS_NAME,
    open_checkpoint,
    read_checkpoint_meta,
)
from fmuia.tasks import Kind, Task, TaskRegistry
from fmuia.train.state import load_state


@pytest.fixture(scope="module")
def tiny_model():
    """A model of 150 k parameters: a save is cheap enough to repeat at every step."""
    torch.manual_seed(0)
    registry = TaskRegistry([Task("seg", Kind.SEGMENTATION, 2), Task("cls", Kind.CLASSIFICATION, 3)])
    config = ModelConfig(encoder="test_efficientnet", pretrained="none", image_size=32,
                         decoder_channels=32, decoder_out_channels=32, channels_last=False)
    return build_model(config, registry).eval()


def _state(epoch):
    return {"epoch": epoch, "optimizer": {"step": torch.tensor(float(epoch))}}


def _edit_sidecar(folder, change):
    path = folder / SIDECAR_NAME
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta, indent=2))


def test_sidecar_records_hashes_of_weights_state_and_fields(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path / "last", extra={"epoch": 1}, training_state=_state(1))
    assert sorted(os.listdir(tmp_path / "last")) == [SIDECAR_NAME, WEIGHTS_NAME, STATE_NAME]
    meta = read_checkpoint_meta(tmp_path / "last")
    assert meta["format_version"] == 2
    assert {"weights_sha256", "training_state_sha256", "field_sha256", CHECKPOINT_HASH} <= set(meta)
    assert "model_config" in meta["field_sha256"] and "training_state_sha256" in meta["field_sha256"]
    assert load_state(str(tmp_path / "last"))["epoch"] == 1
    with pytest.raises(CheckpointError, match="only in a checkpoint folder"):
        save_checkpoint(tiny_model, tmp_path / "x.safetensors", training_state=_state(1))


def test_flipped_weight_byte_is_refused(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path / "c")
    weights = tmp_path / "c" / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{WEIGHTS_NAME}: SHA-256 differs from weights_sha256 in {SIDECAR_NAME}"):
        load_checkpoint(tmp_path / "c")


@pytest.mark.parametrize("field, change", [
    ("model_config", lambda meta: meta["model_config"].update(image_size=128)),
    ("extra", lambda meta: meta["extra"].update(epoch=9)),
    ("weights_sha256", lambda meta: meta.update(weights_sha256="0" * 64)),
])
def test_edited_sidecar_field_is_refused_naming_it(tmp_path, tiny_model, field, change):
    save_checkpoint(tiny_model, tmp_path / "c", extra={"epoch": 1})
    _edit_sidecar(tmp_path / "c", change)
    with pytest.raises(CheckpointError, match=rf"{SIDECAR_NAME}: the sidecar does not match its checkpoint_sha256 .*changed: {field}$"):
        load_checkpoint(tmp_path / "c")


def test_added_field_or_edited_field_hashes_are_refused(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path / "c")
    _edit_sidecar(tmp_path / "c", lambda meta: meta.update(note="x"))
    with pytest.raises(CheckpointError, match="added: note"):
        load_checkpoint(tmp_path / "c")
    save_checkpoint(tiny_model, tmp_path / "d")
    _edit_sidecar(tmp_path / "d", lambda meta: meta["field_sha256"].update(extra="0" * 64))
    with pytest.raises(CheckpointError, match="field_sha256 does not match its checkpoint_sha256"):
        load_checkpoint(tmp_path / "d")


def test_missing_hash_is_refused_and_an_old_checkpoint_says_so(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path / "c")
    _edit_sidecar(tmp_path / "c", lambda meta: meta.pop(CHECKPOINT_HASH))
    with pytest.raises(CheckpointError, match=f"{SIDECAR_NAME}: the sidecar has no checkpoint_sha256"):
        load_checkpoint(tmp_path / "c")

    def as_version_1(meta):  # what fmuia wrote before the checkpoint hash existed
        for key in (CHECKPOINT_HASH, "field_sha256"):
            meta.pop(key)
        meta["format_version"] = 1

    save_checkpoint(tiny_model, tmp_path / "old")
    _edit_sidecar(tmp_path / "old", as_version_1)
    with pytest.raises(CheckpointError, match="format_version 1.*written before format_version 2 have none.*verify=False"):
        load_checkpoint(tmp_path / "old")
    rescued = load_checkpoint(tmp_path / "old", verify=False)
    save_checkpoint(rescued, tmp_path / "old")
    assert load_checkpoint(tmp_path / "old").registry == tiny_model.registry


@pytest.mark.parametrize("file_checkpoint", [False, True])
def test_weights_and_state_of_another_save_are_refused(tmp_path, tiny_model, file_checkpoint):
    """The mixes a kill between two separate file writes used to leave."""
    if file_checkpoint:
        first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    else:
        first, second = tmp_path / "a", tmp_path / "b"
    other = load_checkpoint(save_checkpoint(tiny_model, tmp_path / "src"))
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    save_checkpoint(tiny_model, first, extra={"epoch": 1}, **({} if file_checkpoint else {"training_state": _state(1)}))
    save_checkpoint(other, second, extra={"epoch": 2}, **({} if file_checkpoint else {"training_state": _state(2)}))
    weights = (lambda p: p) if file_checkpoint else (lambda p: p / WEIGHTS_NAME)
    shutil.copy(weights(second), weights(first))
    with pytest.raises(CheckpointError, match="SHA-256 differs from weights_sha256"):
        load_checkpoint(first)
    if not file_checkpoint:
        save_checkpoint(tiny_model, first, extra={"epoch": 1}, training_state=_state(1))
        shutil.copy(second / STATE_NAME, first / STATE_NAME)
        load_checkpoint(first)  # inference needs no training state
        with pytest.raises(CheckpointError, match=f"{STATE_NAME}: SHA-256 differs from training_state_sha256"):
            load_state(str(first))
        save_checkpoint(tiny_model, first, extra={"epoch": 1})  # a checkpoint without state...
        shutil.copy(second / STATE_NAME, first / STATE_NAME)  # ...next to a stray one
        with pytest.raises(CheckpointError, match="not part of the checkpoint"):
            load_state(str(first))


def test_folder_with_other_files_is_not_replaced(tmp_path, tiny_model):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match=r"holds files that are not part of a checkpoint \(notes.txt\)"):
        save_checkpoint(tiny_model, tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]


class _Killed(BaseException):
    """The process died here: nothing after this point reaches the disk."""


@contextlib.contextmanager
def _die_at(step, monkeypatch):
    """Every call that changes the file system (or flushes it) counts as a step; the
    ``step``-th one and every later one raise ``_Killed`` before doing anything, so the
    clean-up code that runs while the exception unwinds cannot touch the disk either,
    exactly as after a kill."""
    calls = {"n": 0}
    names = ("open", "replace", "rename", "mkdir", "unlink", "rmdir", "fsync")
    originals = {name: getattr(os, name) for name in names}

    def counted(name):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] >= step:
                raise _Killed(f"killed at step {step} ({name})")
            return originals[name](*args, **kwargs)
        return call

    with monkeypatch.context() as patch:
        for name in names:
            patch.setattr(os, name, counted(name))
        yield calls


def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_checkpoint(tmp_path, tiny_model, monkeypatch):
    newer = load_checkpoint(save_checkpoint(tiny_model, tmp_path / "copy"))
    with torch.no_grad():
        next(newer.parameters()).add_(1.0)
    target = tmp_path / "run" / "last"
    outcomes, found_aside = [], 0
    for step in range(1, 200):
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        save_checkpoint(tiny_model, target, extra={"epoch": 1}, training_state=_state(1))
        finished = True
        with _die_at(step, monkeypatch):
            try:
                save_checkpoint(newer, target, extra={"epoch": 2}, training_state=_state(2))
            except _Killed:
                finished = False
        found_aside += not target.exists()  # killed between the two renames: read from the aside copy
        files = open_checkpoint(target, training_state=True)  # both hashes hold: never a mix
        epoch = files.meta["extra"]["epoch"]
        model = load_checkpoint(target)
        expected = tiny_model if epoch == 1 else newer
        assert torch.equal(next(model.parameters()), next(expected.parameters())), step
        assert load_state(str(target))["epoch"] == epoch
        outcomes.append(epoch)
        # the next save recovers whatever was left and cleans up after it
        save_checkpoint(newer, target, extra={"epoch": 3}, training_state=_state(3))
        assert sorted(os.listdir(target.parent)) == ["last"], step
        assert load_state(str(target))["epoch"] == 3
        if finished:
            break
    assert finished and step > 10, "the save should take many steps"
    assert found_aside == 1
    assert outcomes[0] == 1 and outcomes[-1] == 2 and set(outcomes) == {1, 2}
    assert outcomes == sorted(outcomes)  # old until the rename that publishes the new one, then new
