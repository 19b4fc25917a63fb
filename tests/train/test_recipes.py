"""The three recipes and the named changes between them: the baseline extends the
official recipe and applies every fix, the improved recipe extends the baseline and
applies every improvement; they resolve as frozen in tests/snapshots/recipes.yaml; each
fix flips one switch of the official recipe; every change is valid, and its overrides are
stated in one place of the repository: its catalogue entry in configs/changes/."""
from __future__ import annotations

import ast
import functools
import os
import re
from typing import Any, Iterator, Mapping

import pytest
import yaml

from fmuia.config import load_config, parse_override
from fmuia.config.changes import Change
from fmuia.config.loading import read_changes, read_yaml
from fmuia.errors import ConfigError
from fmuia.tasks import Kind

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "configs")
OFFICIAL = os.path.join(CONFIGS, "fmuia2026_official.yaml")
BASELINE = os.path.join(CONFIGS, "fmuia2026_baseline.yaml")
IMPROVED = os.path.join(CONFIGS, "fmuia_plus.yaml")
FIXES = read_changes(os.path.join(CONFIGS, "changes", "fixes.yaml"))
IMPROVEMENTS = read_changes(os.path.join(CONFIGS, "changes", "improvements.yaml"))
CANDIDATES = read_changes(os.path.join(CONFIGS, "changes", "candidates.yaml"))
EVERY = FIXES + IMPROVEMENTS + CANDIDATES


def test_the_catalogues_name_the_changes_in_order():
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
    names = [c.name for c in EVERY]
    assert len(names) == len(set(names))


def test_the_recipes_are_built_from_the_named_changes():
    # Nothing but what they extend and the changes they apply: no value is restated.
    assert read_yaml(BASELINE) == {"extends": "fmuia2026_official.yaml", "changes": [c.name for c in FIXES]}
    assert read_yaml(IMPROVED) == {"extends": "fmuia2026_baseline.yaml", "changes": [c.name for c in IMPROVEMENTS]}
    assert "extends" not in read_yaml(OFFICIAL) and "changes" not in read_yaml(OFFICIAL)


@pytest.mark.parametrize("label, path", [("official", OFFICIAL), ("baseline", BASELINE), ("improved", IMPROVED)],
                         ids=["official", "baseline", "improved"])
def test_the_recipes_resolve_as_frozen(label, path):
    with open(os.path.join(ROOT, "tests", "snapshots", "recipes.yaml"), encoding="utf-8") as fh:
        frozen = yaml.safe_load(fh)[label]
    resolved = load_config(path).to_dict()
    for section, keys in frozen.items():
        if not isinstance(keys, dict):
            assert resolved[section] == keys, section
            continue
        for key, value in keys.items():
            assert _plain(resolved[section][key]) == value, f"{label}: {section}.{key}"


def test_official_plus_the_fixes_is_the_baseline_and_so_on():
    assert load_config([OFFICIAL, *FIXES]) == load_config(BASELINE)
    assert load_config([BASELINE, *IMPROVEMENTS]) == load_config(IMPROVED)
    # Leaving one out is noticed, and named by the key it sets.
    without = [c for c in FIXES if c.name != "per-task validation split"]
    assert _differences(load_config([OFFICIAL, *without]).to_dict(), load_config(BASELINE).to_dict()) == ["data.val_split"]


@pytest.mark.parametrize("fix", FIXES, ids=lambda c: c.name)
def test_each_fix_flips_exactly_one_official_switch(fix):
    keys = _changed_keys(OFFICIAL, fix)
    # One switch: one key, or the parameters of one loss (detection negatives also sets
    # the share of the centre cells, which only means something with negatives).
    assert len({key.rsplit(".", 1)[0] if key.startswith("loss.params.") else key for key in keys}) == 1, keys
    official = load_config(OFFICIAL).to_dict()
    fixed = load_config([OFFICIAL, fix]).to_dict()
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


@pytest.mark.parametrize("change", EVERY, ids=lambda c: c.name)
def test_every_change_is_valid_and_changes_something(change):
    for base in (OFFICIAL, BASELINE):
        load_config([base, change])  # a misspelt key or a bad value is a ConfigError
    # A fix changes the official recipe, an improvement or candidate the baseline.
    assert _changed_keys(OFFICIAL if change in FIXES else BASELINE, change)
    assert change.what and "\n" not in change.what
    assert all(Kind(k) == k for k in change.kinds)  # a kind of the registry (an unknown one raises)


def test_one_change_alone_sets_only_its_keys():
    centre = next(c for c in IMPROVEMENTS if c.name == "centre detection")
    config = load_config([BASELINE, centre, {"train": {"max_steps": 7}}]).to_dict()
    baseline = load_config(BASELINE).to_dict()
    assert config["model"]["heads"] == {"keypoints": "bounded_regression", "detection": "centernet"}
    assert config["train"]["max_steps"] == 7
    config["model"]["heads"], config["train"]["max_steps"] = baseline["model"]["heads"], baseline["train"]["max_steps"]
    assert config == baseline


def test_a_bad_override_names_its_change():
    bad = Change("typo", "a misspelt key", {"sampler": {"mdoe": "mixed"}})
    with pytest.raises(ConfigError, match="recipe change 'typo'.*sampler.mdoe"):
        load_config([BASELINE, bad])


def test_a_change_that_sets_what_is_already_there_changes_no_key():
    assert _changed_keys(BASELINE, next(c for c in FIXES if c.name == "every task visited")) == []


# -- each change stated once ---------------------------------------------------------------
SCANNED = ("configs", "src", "benchmarks")


def test_each_change_is_stated_in_its_catalogue_alone():
    homes = {c.name: c.overrides for c in EVERY}
    for change in EVERY:
        # No other change is the same set of overrides under another name.
        assert [n for n, o in homes.items() if o == change.overrides] == [change.name]
        assert _places_restating(change, ROOT) == [], f"{change.name!r} restated outside configs/changes/"


def test_a_restated_change_is_found(tmp_path):
    clipping = next(c for c in IMPROVEMENTS if c.name == "gradient clipping")
    heatmap = next(c for c in IMPROVEMENTS if c.name == "keypoint heatmap")
    (tmp_path / "configs").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("extends: x.yaml\nmodel:\n  heads: {keypoints: heatmap}\n"
                                                    "  routing: {keypoints: fpn, detection: fpn}\n")
    (tmp_path / "src" / "tool.py").write_text('EXTRA = {"train": {"grad_clip": 1.0}}\n')
    (tmp_path / "src" / "other.py").write_text('run(grad_clip=2.0, heads={"keypoints": "heatmap"})\n'
                                               'raise ValueError(f"set train.grad_clip=1.0 instead")\n')
    (tmp_path / "src" / "cli.py").write_text('argv = ["--set", "seed=3", "--set", "train.grad_clip=1"]\n')
    assert _places_restating(heatmap, str(tmp_path)) == [os.path.join("configs", "mine.yaml")]
    assert _places_restating(clipping, str(tmp_path)) == [os.path.join("src", "cli.py"), os.path.join("src", "tool.py")]


def _places_restating(change: Change, root: str) -> list[str]:
    """The files under ``root``'s configs/, src/ and benchmarks/ (the catalogues of
    configs/changes/ aside) that state every one of ``change``'s overrides: a YAML file
    holding each at its dotted key, or a Python file writing each key with its value."""
    leaves = list(_leaves(change.overrides))
    found = []
    for path, content in _scanned_files(root):
        if isinstance(content, str):
            hit = all(_written(content, key, value) for key, value in leaves)
        else:
            hit = all(key in content and content[key] == value for key, value in leaves)
        if hit:
            found.append(path)
    return found


@functools.lru_cache(maxsize=4)
def _scanned_files(root: str) -> tuple[tuple[str, Any], ...]:
    """(path under ``root``, content): a Python file's text, a YAML file's leaves by key path."""
    files = []
    for folder in SCANNED:
        for where, _, names in os.walk(os.path.join(root, folder)):
            if where == os.path.join(root, "configs", "changes"):
                continue
            for name in sorted(names):
                path = os.path.join(where, name)
                with open(path, encoding="utf-8") as fh:
                    if name.endswith((".yaml", ".yml")):
                        data = yaml.safe_load(fh)
                        files.append((os.path.relpath(path, root), dict(_leaves(data)) if isinstance(data, Mapping) else {}))
                    elif name.endswith(".py"):
                        files.append((os.path.relpath(path, root), fh.read()))
    return tuple(files)


def _leaves(tree: Mapping[str, Any], prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


_PY_LITERAL = r"""("[^"]*"|'[^']*'|True|False|None|[-+]?[0-9][0-9.]*(?:[eE][-+]?[0-9]+)?)"""


def _written(text: str, path: tuple, value: Any) -> bool:
    """Whether Python ``text`` writes the config key ``path`` with ``value``: as an item
    of its section's dict (``"section": {..., "key": value}``) or as a whole override
    string (``"section.key=value"``). A message or a keyword that mentions a setting is no
    restatement of a recipe."""
    key = re.escape(path[-1])
    inside = rf"""['"]{re.escape(path[-2])}['"]\s*:\s*\{{[^{{}}]*?""" if len(path) > 1 else ""
    literals = re.findall(rf"""{inside}['"]{key}['"]\s*:\s*{_PY_LITERAL}""", text)
    if any(_equal(ast.literal_eval(token), value) for token in literals):
        return True
    overrides = re.findall(rf"""["']{re.escape(".".join(path))}=([^"'\n]*)["']""", text)
    return any(_equal(parse_override(f"k={token}")[1], value) for token in overrides)


def _equal(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if isinstance(b, bool) or isinstance(a, bool) else a == b


# -- helpers -----------------------------------------------------------------------------
def _changed_keys(base: str, change: Change) -> list[str]:
    """Dotted config keys whose value ``change`` alters on ``base``."""
    return _differences(load_config(base).to_dict(), load_config([base, change]).to_dict())


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}{key}"
            if key not in a or key not in b:
                out.append(path)
            else:
                out += _differences(a[key], b[key], path + ".")
        return out
    return [] if a == b else [prefix.rstrip(".") or "config"]


def _plain(value: Any) -> Any:
    """Tuples as lists, as YAML reads them back."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
