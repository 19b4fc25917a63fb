"""``fmuia finetune``: a training run that starts from an fmuia checkpoint or an encoder
file, with new heads for the new tasks, frozen encoder parts and layer-wise rates."""
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dataset_builders import cls_row, materialise, seg_row
from fmuia.cli.main import main as cli
from fmuia.config import load_config
from fmuia.errors import CheckpointError
from fmuia.model import build_model
from fmuia.model.checkpoint import WEIGHTS_NAME
from fmuia.train import train
from fmuia.data.layout import read_layout
from fmuia.tasks import fmuia2026
from fmuia.train.finetune import finetune
from fmuia.train.transfer import freeze, load_initial_weights
from fmuia.train.optim import build_optimizer
from train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

NEW_TASKS = ["new_organ_seg", "new_view_cls", "breast_2cls"]  # two new task ids, one shared with train_root


@pytest.fixture(scope="module")
def source_run(train_root, tmp_path_factory):
    """A one-step multi-task run on ``train_root`` to fine-tune from."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: the one_thread fixture is not active yet
    try:
        run = str(tmp_path_factory.mktemp("source") / "run")
        train(tiny_config(epochs=1, max_steps=1), train_root, run)
    finally:
        torch.set_num_threads(threads)
    return run


@pytest.fixture(scope="module")
def new_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("new") / "data")
    materialise(root, [seg_row(i, task="new_organ_seg") for i in range(6)]
                + [cls_row(i, label=i % 3, task="new_view_cls", n=3) for i in range(6)]
                + [cls_row(i, label=i % 2) for i in range(6)])
    return root


def _fine_tune(source, root, out, *sets, freeze=None, layer_decay=None):
    """A tiny run on ``root`` from ``source``; the architecture comes from the checkpoint."""
    overrides = [f"{k}={v}" for k, v in {
        "seed": 3, "device": "cpu", "data.num_workers": 0, "data.val_fraction": 0.0, "train.batch_size": 4,
        "train.progress": False, "train.plot": False, "model.image_size": 64, "model.channels_last": False,
    }.items()] + list(sets)
    return finetune(source, root, out, overrides=overrides, freeze_spec=freeze, layer_decay=layer_decay)


def _weights(run, which="last"):
    return load_file(os.path.join(run, which, WEIGHTS_NAME))


def test_step_zero_keeps_encoder_fpn_and_shared_heads_and_adds_new_ones(source_run, new_root, tmp_path):
    result = _fine_tune(os.path.join(source_run, "last"), new_root, str(tmp_path / "ft"), "train.epochs=0")
    before, after = _weights(source_run), _weights(result.run_dir)
    kept = [k for k in after if k.startswith(("encoder.", "decoder.", "heads.breast_2cls."))]
    assert kept and any(k.startswith("decoder.") for k in kept)
    assert all(torch.equal(after[k], before[k]) for k in kept)
    assert {k.split(".")[1] for k in after if k.startswith("heads.")} == set(NEW_TASKS)
    assert not any(k.startswith("heads.FUGC.") for k in after)  # the old tasks' heads are gone
    config = load_config(os.path.join(result.run_dir, "config.yaml"))
    assert config.finetune.init_from == os.path.abspath(os.path.join(source_run, "last"))
    assert config.model.encoder == "resnet18" and config.model.decoder_channels == 32


def test_linear_probing_leaves_the_encoder_and_its_batchnorm_statistics_unchanged(source_run, new_root, tmp_path):
    result = _fine_tune(os.path.join(source_run, "last"), new_root, str(tmp_path / "probe"), "train.epochs=1",
                        freeze="encoder")
    assert result.steps > 0
    before, after = _weights(source_run), _weights(result.run_dir)
    encoder = [k for k in after if k.startswith("encoder.")]
    assert any(k.endswith("running_mean") for k in encoder)
    assert all(torch.equal(after[k], before[k]) for k in encoder)
    shared_head = [k for k in after if k.startswith("heads.breast_2cls.")]  # kept at step 0, then trained
    assert shared_head and not all(torch.equal(after[k], before[k]) for k in shared_head)
    # the run resumes like any training run
    assert cli(["train", "--resume", result.run_dir, "--set", "train.epochs=2"]) == 0


def test_partial_freezing_and_layer_decay_set_the_encoder_groups():
    config = load_config(tiny_config(), {"finetune.freeze": "stages:2", "finetune.layer_decay": 0.5})
    model = build_model(config.model, fmuia2026().subset(["breast_2cls"]))
    frozen = freeze(model, config.finetune)
    optimizer = build_optimizer(model, config.optim, config.finetune)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert "encoder:stage0" not in groups and "encoder:stage1" not in groups  # frozen: no group
    lr = config.optim.lr * config.optim.lr_multipliers.encoder
    assert [groups[f"encoder:stage{k}"]["lr"] for k in (2, 3, 4)] == pytest.approx([lr * 0.25, lr * 0.5, lr])
    assert not model.encoder.model.conv1.weight.requires_grad and not model.encoder.model.layer1[0].conv1.weight.requires_grad
    assert model.encoder.model.layer2[0].conv1.weight.requires_grad
    assert model.encoder.model.bn1 in frozen and model.encoder.model.layer2 not in frozen


def test_an_encoder_file_starts_the_encoder(source_run, new_root, tmp_path):
    weights = _weights(source_run)
    encoder_file = str(tmp_path / "encoder.safetensors")
    save_file({k[len("encoder.model."):]: v for k, v in weights.items() if k.startswith("encoder.model.")}, encoder_file)
    result = _fine_tune(encoder_file, new_root, str(tmp_path / "from_encoder"), "train.epochs=0",
                        "model.encoder=resnet18", "model.decoder_channels=32", "model.decoder_out_channels=32")
    after = _weights(result.run_dir)
    assert all(torch.equal(after[k], weights[k]) for k in after if k.startswith("encoder.model."))
    assert load_config(os.path.join(result.run_dir, "config.yaml")).model.pretrained == encoder_file


def test_bad_sources_are_clear_errors(source_run, new_root, tmp_path, capsys):
    edited = tmp_path / "edited"
    shutil.copytree(os.path.join(source_run, "last"), edited)
    with open(edited / WEIGHTS_NAME, "ab") as fh:
        fh.write(b"\0")
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"weights": {"a": torch.zeros(1)}, "code": object()}, unsafe)
    cases = [
        ([str(tmp_path / "missing")], "no such file or folder"),
        ([str(notes)], "not an fmuia checkpoint"),
        ([str(edited)], "SHA-256 differs"),
        ([str(unsafe)], "cannot read"),
        ([os.path.join(source_run, "last"), "--set", "model.encoder=resnet34"], "does not fit the model being trained"),
        ([os.path.join(source_run, "last"), "--freeze", "stage:1"], "finetune.freeze: expected none, encoder or stages:N"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        argv = ["finetune", "--data", new_root, "--out", str(out), "--set", "device=cpu", "--set", "data.num_workers=0",
                "--set", "train.epochs=0", "--set", "train.progress=false", "--set", "model.image_size=64",
                "--from", *args]
        assert cli(argv) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (args, err)
        shutil.rmtree(out, ignore_errors=True)
    with pytest.raises(CheckpointError):
        load_initial_weights(build_model(load_config(tiny_config()).model, _registry(new_root)), str(edited))


def _registry(root):
    return read_layout(root).registry
