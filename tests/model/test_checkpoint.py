import json

import pytest
import torch
from model_helpers import images, tiny_config

from fmuia.errors import CheckpointError
from fmuia.model import build_model, load_checkpoint, read_checkpoint_meta, save_checkpoint
from fmuia.tasks import Kind, Task

TASK_IDS = ["seg", "cls", "det", "kp", "cls2"]


def test_save_load_round_trip_gives_identical_outputs(tmp_path, tiny_model):
    weights = save_checkpoint(tiny_model, tmp_path / "ckpt", training_config={"epochs": 2}, extra={"note": "x"})
    assert weights == tmp_path / "ckpt" / "model.safetensors"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["model.json", "model.safetensors"]
    x = images(5)
    for path in (tmp_path / "ckpt", weights):
        loaded = load_checkpoint(path, registry=tiny_model.registry)
        assert not loaded.training and loaded.registry == tiny_model.registry
        with torch.no_grad():
            a, b = tiny_model(x, TASK_IDS), loaded(x, TASK_IDS)
        for task_id in a:
            assert torch.equal(a[task_id], b[task_id])
    meta = read_checkpoint_meta(weights)
    assert meta["training_config"] == {"epochs": 2} and meta["extra"] == {"note": "x"}
    assert meta["model_config"]["encoder"] == "resnet18" and len(meta["registry"]) == 5


def test_channels_last_model_saves_as_a_file_path(tmp_path, small_registry):
    model = build_model(tiny_config(channels_last=True), small_registry).eval()
    weights = save_checkpoint(model, tmp_path / "best.safetensors")
    assert (tmp_path / "best.json").is_file()
    loaded = load_checkpoint(tmp_path / "best.json")
    with torch.no_grad():
        assert torch.equal(model(images(2), ["seg", "kp"])["seg"], loaded(images(2), ["seg", "kp"])["seg"])
    assert weights.is_file()


def test_mismatches_name_what_differs(tmp_path, tiny_model, small_registry):
    save_checkpoint(tiny_model, tmp_path)
    other = small_registry.replace("cls", n=5).with_task(Task("new", Kind.SEGMENTATION, 2))
    with pytest.raises(CheckpointError, match="tasks not in the checkpoint: new; cls: checkpoint classification n=4"):
        load_checkpoint(tmp_path, registry=other)
    # a sidecar edited to describe other tasks than the weights hold
    meta_path = tmp_path / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["registry"][1]["n"] = 7
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match its checkpoint_sha256 .*fields changed: registry"):
        load_checkpoint(tmp_path)
    # unverified, the weights themselves are compared with the model the sidecar describes
    with pytest.raises(CheckpointError, match=r"heads.cls.linear.weight: checkpoint \(4, 512\) vs model \(7, 512\)"):
        load_checkpoint(tmp_path, verify=False)


def test_corrupt_or_missing_checkpoints(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="no checkpoint sidecar"):
        load_checkpoint(tmp_path)
    weights = save_checkpoint(tiny_model, tmp_path)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path)
    weights.unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        load_checkpoint(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))


def test_a_checkpoint_keeps_the_heads_it_named(tmp_path, small_registry):
    # heads: {} (each kind's default head, as every checkpoint written before the defaults
    # named a keypoint head says) stays {} when loaded, not today's default entries
    model = build_model(tiny_config(heads={}), small_registry).eval()
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config.heads == {} and loaded.head_types == model.head_types
    assert model.head_types["keypoints"] == "regression"
    with torch.no_grad():
        assert torch.equal(model(images(2), ["kp", "kp"])["kp"], loaded(images(2), ["kp", "kp"])["kp"])
