"""The schema's defaults are one shipped recipe, the baseline; the official recipe states
every value of its own; a section saved before the defaults named entries of an open
mapping reads as it was written."""
from __future__ import annotations

import os

from fmuia.config import Config, ModelConfig, load_config
from fmuia.config.pretrain import load_pretrain_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "configs")


def test_the_defaults_are_the_baseline_recipe():
    assert load_config({}).to_dict() == load_config(os.path.join(CONFIGS, "fmuia2026_baseline.yaml")).to_dict()


def test_the_official_recipe_keeps_its_quirks_over_the_defaults():
    official = load_config(os.path.join(CONFIGS, "fmuia2026_official.yaml"))
    assert official.model.heads == {"keypoints": "regression"}
    assert official.loss.params["detection.grid"]["negatives"] is False
    assert (official.schedule.interval, official.train.grad_clip, official.train.select) == ("epoch", None, "official")
    assert official.augment.default == {"brightness_contrast": 0.2, "noise": 0.1}
    assert (official.optim.train_decoder, official.sampler.mode, official.data.val_split, official.augment.seeded) == \
        (False, "task_uniform", "random", False)


def test_pretraining_keeps_its_per_step_schedule():
    assert load_pretrain_config(None).schedule.interval == "step"
    assert load_config({}).schedule.interval == "epoch"


def test_a_saved_section_means_what_it_meant_when_written():
    # a checkpoint written when model.heads defaulted to {}: each kind's default head
    saved = {**ModelConfig().to_dict(), "heads": {}}
    assert ModelConfig.from_saved(saved).heads == {}
    assert ModelConfig.from_dict(saved).heads == {"keypoints": "bounded_regression"}  # a user's {} adds nothing
    # keys it lacks (added later) take today's defaults; nested sections alike
    older = {k: v for k, v in saved.items() if k != "decoder_stride"}
    assert ModelConfig.from_saved(older).decoder_stride == ModelConfig().decoder_stride
    config = Config.from_saved({"model": {"heads": {}}, "loss": {"params": {}}, "augment": {"default": {"hflip": 0.5}}})
    assert (config.model.heads, config.loss.params, config.augment.default) == ({}, {}, {"hflip": 0.5})
    assert config.augment.kinds == {} and config.train.select == "balanced"


def test_a_run_saved_under_older_defaults_resumes_as_it_was_written(tmp_path):
    # A run folder's config.yaml written before the defaults named a keypoint head: its
    # ``heads: {}`` means each kind's default head, also with overrides laid over it.
    from fmuia.config import load_config, save_config
    from fmuia.config.loading import load_saved_config

    saved = load_config({}).to_dict()
    saved["model"]["heads"] = {}
    path = tmp_path / "config.yaml"
    save_config(saved, str(path))
    assert load_config(str(path)).model.heads == {"keypoints": "bounded_regression"}  # a hand-written file
    assert load_saved_config(str(path)).model.heads == {}
    resumed = load_saved_config(str(path), ["train.epochs=7", "model.heads.detection=centernet"])
    assert (resumed.train.epochs, resumed.model.heads) == (7, {"detection": "centernet"})
