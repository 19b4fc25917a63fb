"""Every writer family gives its files the user's umask, like a plain ``open`` (no
0600 temporary files): checkpoints, JSON, masks, CSV, YAML, PNG, caches, datasets and
exported submissions."""
import os
import stat

import numpy as np
import pytest
import torch

from fmuia.config import save_config
from fmuia.data.cache import SampleCache
from fmuia.data.layout import read_layout
from fmuia.io.atomic import publish_folder
from fmuia.model import ModelConfig, build_model, save_checkpoint
from fmuia.predict.submission import export_submission
from fmuia.predict.writer import SubmissionWriter
from fmuia.synthetic.gallery import render_gallery
from fmuia.synthetic.writer import generate
from fmuia.tasks import Kind, Task, TaskRegistry
from fmuia.train.history import MetricsLog, plot_curves


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    registry = TaskRegistry([Task("seg", Kind.SEGMENTATION, 2), Task("cls", Kind.CLASSIFICATION, 3)])
    config = ModelConfig(encoder="test_efficientnet", pretrained="none", image_size=32,
                         decoder_channels=32, decoder_out_channels=32, channels_last=False)
    return build_model(config, registry).eval()


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def _check_tree(root, umask):
    """Every file and folder under ``root`` (itself included) has the umask's mode."""
    checked = 0
    for here, dirs, files in os.walk(root):
        assert _mode(here) == 0o777 & ~umask, here
        for name in files:
            assert _mode(os.path.join(here, name)) == 0o666 & ~umask, os.path.join(here, name)
            checked += 1
    assert checked, f"nothing written under {root}"


def test_checkpoints(tmp_path, umask, small_model):
    save_checkpoint(small_model, tmp_path / "run" / "last", training_state={"epoch": 1})
    assert sorted(os.listdir(tmp_path / "run" / "last")) == ["model.json", "model.safetensors", "training_state.pt"]
    save_checkpoint(small_model, tmp_path / "run" / "best.safetensors")
    _check_tree(tmp_path / "run", umask)


def test_masks_and_prediction_json(tmp_path, umask):
    out = tmp_path / "pred"
    writer = SubmissionWriter(str(out))
    writer.start()
    os.makedirs(out / "Segmentation")
    writer.add_mask(str(out / "Segmentation" / "1.png"), np.zeros((8, 8), np.uint8))
    writer.add_record(Kind.CLASSIFICATION, {"image_path": "x.png", "predicted_class": 0})
    writer.finish()
    assert len(os.listdir(out)) == 4
    _check_tree(out, umask)


def test_run_files_csv_yaml_png(tmp_path, umask):
    run = tmp_path / "run"
    run.mkdir()
    save_config({"seed": 1}, str(run / "config.yaml"))
    rows = [{"epoch": 1, "step": 2, "lr": 0.1, "train_loss": 1.0, "val_score": 0.5}]
    log = MetricsLog(str(run), rows[:0], tensorboard_dir=str(tmp_path / "tb"))
    log.add(rows[0])
    log.close()
    plot_curves(rows, str(run / "curves.png"))
    assert sorted(os.listdir(run)) == ["config.yaml", "curves.png", "metrics.csv"]
    _check_tree(run, umask)


def test_sample_cache_and_synthetic_data(tmp_path, umask, tiny_root):
    entry = read_layout(tiny_root).entries[0]
    SampleCache(str(tmp_path / "cache"), 16).load(entry)
    _check_tree(tmp_path / "cache", umask)
    generate(str(tmp_path / "synth"), splits={"train": 1}, tasks=["FUGC", "breast_2cls"], workers=1)
    render_gallery(str(tmp_path / "synth" / "gallery.png"), tasks=["FUGC"], tile=(40, 40), columns=1)
    _check_tree(tmp_path / "synth", umask)


def test_published_folders_and_exported_submissions(tmp_path, umask, small_model):
    with publish_folder(tmp_path / "folder") as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "f").write_text("x")
    _check_tree(tmp_path / "folder", umask)
    checkpoint = tmp_path / "ckpt"
    save_checkpoint(small_model, checkpoint)
    out = export_submission(str(checkpoint), str(tmp_path / "submission"), device="cpu")
    assert _mode(out) == 0o777 & ~umask
    _check_tree(out / "checkpoint", umask)
    assert _mode(out / "settings.json") == 0o666 & ~umask
