"""The three recipes and the changes between them: the official recipe plus ``FIXES`` is
exactly the baseline, the baseline plus ``IMPROVEMENTS`` exactly the improved recipe;
each fix flips one switch of the official recipe; every change's overrides are valid."""
from __future__ import annotations

import os

import pytest

from fmuia.config import load_config
from fmuia.errors import ConfigError
from fmuia.tasks import Kind
from fmuia.train.recipes import (
    CANDIDATES, FIXES, IMPROVEMENTS, Change, apply_changes, changed_keys, find_change, recipe_difference,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFICIAL = os.path.join(ROOT, "configs", "fmuia2026_official.yaml")
BASELINE = os.path.join(ROOT, "configs", "fmuia2026_baseline.yaml")
IMPROVED = os.path.join(ROOT, "configs", "fmuia_plus.yaml")


def test_the_lists_name_the_changes_in_order():
    assert [c.name for c in FIXES] == ["decoder trained", "detection negatives", "every task visited",
                                      "per-task validation split", "balanced selection", "bounded keypoint regression",
                                      "seeded augmentation"]
    assert [c.name for c in IMPROVEMENTS] == ["keypoint heatmap", "centre detection", "dice + ce", "augmentation",
                                             "classification: light augmentation", "mixed batches", "gradient clipping", "per-step cosine",
                                             "learning rate x5", "classification: position pooling", "uncertainty weighting",
                                             "test-time flip", "box voting", "dense tasks at 1.25x resolution"]
    assert [c.name for c in CANDIDATES] == ["EMA", "learning rate x3", "learning rate x10",
                                           "classification from the FPN map", "segmentation: conv tower",
                                           "no decoder dropout", "fine decoder stage", "classification: label smoothing",
                                           "dense tasks at 1.5x resolution", "classification: no geometric augmentation",
                                           "classification: no ultrasound photometric augmentation"]
    names = [c.name for c in FIXES + IMPROVEMENTS + CANDIDATES]
    assert len(names) == len(set(names))
    assert not [n for n in names if "," in n]  # benchmarks/quality.py --only splits its list on commas


def test_official_plus_the_fixes_is_the_baseline():
    assert recipe_difference(OFFICIAL, BASELINE, FIXES) == []
    # Leaving one fix out is noticed, and named by the key it sets.
    without = [c for c in FIXES if c.name != "per-task validation split"]
    assert recipe_difference(OFFICIAL, BASELINE, without) == ["data.val_split"]


def test_baseline_plus_the_improvements_is_the_improved_recipe():
    assert recipe_difference(BASELINE, IMPROVED, IMPROVEMENTS) == []
    without = [c for c in IMPROVEMENTS if c.name != "per-step cosine"]
    assert recipe_difference(BASELINE, IMPROVED, without) == ["schedule.interval"]
    with_ema = list(IMPROVEMENTS) + [find_change("EMA")]
    assert recipe_difference(BASELINE, IMPROVED, with_ema) == ["train.ema_decay"]
    # The official recipe is not the baseline: the fixes are needed.
    assert recipe_difference(OFFICIAL, IMPROVED, IMPROVEMENTS) != []


@pytest.mark.parametrize("fix", FIXES, ids=lambda c: c.name)
def test_each_fix_flips_exactly_one_official_switch(fix):
    keys = changed_keys(OFFICIAL, fix)
    # One switch: one key, or the parameters of one loss (detection negatives also sets
    # the share of the centre cells, which only means something with negatives).
    assert len({key.rsplit(".", 1)[0] if key.startswith("loss.params.") else key for key in keys}) == 1, keys
    official = load_config(OFFICIAL).to_dict()
    fixed = apply_changes(OFFICIAL, [fix]).to_dict()
    baseline = load_config(BASELINE).to_dict()
    for key in keys:
        assert _get(fixed, key) != _get(official, key, None)
        # The flipped key is the baseline's value.
        assert _get(fixed, key) == _get(baseline, key)


def test_the_official_switches_hold_the_official_values():
    official = load_config(OFFICIAL)
    assert official.optim.train_decoder is False
    assert official.loss.params["detection.grid"] == {"box_weight": 8.0, "negatives": False}
    assert official.sampler.mode == "task_uniform"
    assert (official.data.val_fraction, official.data.val_split) == (0.2, "random")
    assert official.train.select == "official"
    assert official.augment.default == {"brightness_contrast": 0.2, "noise": 0.1}
    assert official.augment.seeded is False
    assert official.train.grad_clip is None
    assert official.schedule.to_dict() == {"name": "cosine", "min_lr": 1e-6, "warmup_steps": 0, "interval": "epoch"}
    assert (official.optim.lr, official.optim.weight_decay) == (1e-4, 0.01)
    assert official.optim.lr_multipliers.to_dict() == {"encoder": 1.0, "decoder": 10.0, "heads": 10.0,
                                                       "kinds": {}, "tasks": {}}
    assert (official.model.encoder, official.model.pretrained, official.model.image_size) == ("efficientnet_b4", "imagenet", 256)
    assert (official.train.batch_size, official.train.epochs, official.seed) == (8, 50, 42)


def test_the_improved_recipe_keeps_the_old_training_dynamics():
    improved = load_config(IMPROVED)
    assert improved.train.grad_clip == 1.0 and improved.schedule.interval == "step"
    assert improved.augment.default["brightness_contrast"] == 0.5 and improved.augment.default["noise"] == 0.0


@pytest.mark.parametrize("change", FIXES + IMPROVEMENTS + CANDIDATES, ids=lambda c: c.name)
def test_every_change_is_valid_and_changes_something(change):
    for base in (OFFICIAL, BASELINE):
        apply_changes(base, [change])  # a misspelt key or a bad value is a ConfigError
    # A fix changes the official recipe, an improvement or candidate the baseline.
    assert changed_keys(OFFICIAL if change in FIXES else BASELINE, change)
    assert change.what and all(isinstance(k, Kind) for k in change.kinds)
    assert find_change(change.name) is change


def test_one_change_alone_sets_only_its_keys():
    config = apply_changes(BASELINE, [find_change("centre detection")], extra={"train": {"max_steps": 7}}).to_dict()
    baseline = load_config(BASELINE).to_dict()
    assert config["model"]["heads"] == {"keypoints": "bounded_regression", "detection": "centernet"}
    assert config["train"]["max_steps"] == 7
    config["model"]["heads"], config["train"]["max_steps"] = baseline["model"]["heads"], baseline["train"]["max_steps"]
    assert config == baseline


def test_unknown_change_and_bad_override_are_config_errors():
    with pytest.raises(ConfigError, match="recipe change 'nope': unknown"):
        find_change("nope")
    bad = Change("typo", "a misspelt key", {"sampler": {"mdoe": "mixed"}})
    with pytest.raises(ConfigError, match="recipe change 'typo'.*sampler.mdoe"):
        apply_changes(BASELINE, [bad])


def test_a_change_that_sets_what_is_already_there_changes_no_key():
    assert changed_keys(BASELINE, find_change("every task visited")) == []


_REQUIRED = object()


def _get(tree, dotted: str, default=_REQUIRED):
    """The value at a dotted key; open mappings hold keys with dots ("detection.grid").
    A missing key gives ``default`` where one is given."""
    try:
        for part in _split(tree, dotted):
            tree = tree[part]
    except (StopIteration, KeyError):
        if default is _REQUIRED:
            raise
        return default
    return tree


def _split(tree, dotted: str) -> list[str]:
    parts, rest = [], dotted
    while rest:
        key = next(k for k in sorted(tree, key=len, reverse=True) if rest == k or rest.startswith(k + "."))
        parts.append(key)
        tree, rest = tree[key], rest[len(key) + 1:]
    return parts


@pytest.mark.parametrize("recipe", [OFFICIAL, BASELINE], ids=["official", "baseline"])
def test_official_and_baseline_train_briefly(recipe, tmp_path):
    import math

    from dataset_builders import materialise, training_rows
    from fmuia.config import merge
    from fmuia.train import train
    from train_helpers import TINY_MODEL

    root = str(tmp_path / "data")
    materialise(root, training_rows())
    config = merge(load_config(recipe), {
        "device": "cpu", "model": TINY_MODEL, "data": {"num_workers": 0, "val_fraction": 0.25},
        "train": {"epochs": 1, "max_steps": 3, "batch_size": 4, "progress": False, "plot": False},
    })
    result = train(config, root, str(tmp_path / "run"))
    assert result.steps == 3
    assert all(math.isfinite(row["train_loss"]) for row in result.history if row["train_loss"] is not None)
