"""A config file that extends another and names the changes it applies: chains, paths
relative to the file that says them, changes found beside it or beside what it extends,
its own keys last; cycles, missing files, unknown changes and bad catalogues are
ConfigErrors naming the file; a resolved config names neither and loads alone."""
from __future__ import annotations

import os

import pytest

from fmuia.cli.main import main
from fmuia.config import load_config, save_config
from fmuia.config.loading import read_changes
from fmuia.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUS = os.path.join(ROOT, "configs", "fmuia_plus.yaml")
CANDIDATES = read_changes(os.path.join(ROOT, "configs", "changes", "candidates.yaml"))


def _write(path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_a_chain_resolves_relative_to_each_file_and_its_own_keys_come_last(tmp_path):
    _write(tmp_path / "base" / "root.yaml", "seed: 1\ntrain: {epochs: 3, batch_size: 4}\nsampler: {mode: mixed}\n")
    _write(tmp_path / "base" / "middle.yaml", "extends: root.yaml\ntrain: {epochs: 5}\n")
    leaf = _write(tmp_path / "mine" / "leaf.yaml", "extends: ../base/middle.yaml\nseed: 7\n")
    config = load_config(leaf)
    assert (config.seed, config.train.epochs, config.train.batch_size, config.sampler.mode) == (7, 5, 4, "mixed")
    # Later layers and overrides still win over the whole chain.
    assert load_config([leaf, {"train": {"epochs": 9}}], ["seed=3"]).train.epochs == 9


def test_a_users_config_extends_the_improved_recipe_with_a_candidate_and_overrides(tmp_path):
    mine = _write(tmp_path / "mine.yaml", f"extends: {PLUS}\nchanges: [EMA]\ntrain: {{epochs: 20, ema_decay: 0.99}}\n")
    ema = next(c for c in CANDIDATES if c.name == "EMA")
    config = load_config(mine)
    # The change is found in configs/changes/, beside the file it extends; the file's own keys win.
    assert config == load_config([PLUS, ema, {"train": {"epochs": 20, "ema_decay": 0.99}}])
    assert (config.train.epochs, config.train.ema_decay, config.model.tta) == (20, 0.99, True)


def test_changes_beside_the_file_come_before_those_beside_what_it_extends(tmp_path):
    _write(tmp_path / "changes" / "mine.yaml", "EMA:\n  what: a slower average\n  overrides:\n    train: {ema_decay: 0.9}\n")
    mine = _write(tmp_path / "mine.yaml", f"extends: {PLUS}\nchanges: [EMA, fine decoder stage]\n")
    config = load_config(mine)
    assert (config.train.ema_decay, config.model.decoder_stride) == (0.9, 2)


def test_the_saved_config_names_no_parent_and_loads_alone(tmp_path):
    mine = _write(tmp_path / "mine.yaml", f"extends: {PLUS}\nchanges: [EMA]\n")
    saved = str(tmp_path / "run" / "config.yaml")
    os.makedirs(os.path.dirname(saved))
    save_config(load_config(mine), saved)
    text = open(saved, encoding="utf-8").read()
    assert "extends" not in text and "changes" not in text
    assert load_config(saved) == load_config(mine)


@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, r"a\.yaml: extends itself \(.*a\.yaml -> .*b\.yaml -> .*a\.yaml\)"),
    ({"a.yaml": "extends: a.yaml\n"}, r"a\.yaml: extends itself"),
    ({"a.yaml": "extends: missing.yaml\n"}, r"a\.yaml: extends missing\.yaml: no such file"),
    ({"a.yaml": "extends: [b.yaml]\n"}, r"a\.yaml: extends: expected the path of a config file"),
    ({"a.yaml": "changes: EMA\n"}, r"a\.yaml: changes: expected a list of different change names"),
    ({"a.yaml": "changes: [x, x]\n"}, r"a\.yaml: changes: expected a list of different change names"),
    ({"a.yaml": "changes: [warp drive]\n"}, r"a\.yaml: changes: unknown change 'warp drive' \(looked in .*changes; known: none\)"),
    ({"a.yaml": "changes: [typo]\n", "changes/c.yaml": "typo:\n  what: a typo\n  overrides: {sampler: {mdoe: mixed}}\n"},
     r"a\.yaml: recipe change 'typo': unknown config key 'sampler\.mdoe'"),
    ({"a.yaml": "changes: [x]\n", "changes/c.yaml": "x:\n  what: no overrides\n"},
     r"changes/c\.yaml: change 'x': expected a mapping of what, kinds, overrides \(overrides required\)"),
    ({"a.yaml": "changes: [x]\n", "changes/c.yaml": "x:\n  what: w\n  kinds: detection\n  overrides: {seed: 1}\n"},
     r"changes/c\.yaml: change 'x': 'kinds' must be a list of kind names, got 'detection'"),
    ({"a.yaml": "changes: [x]\n", "changes/c.yaml": "'x, y':\n  what: w\n  overrides: {seed: 1}\n"},
     r"changes/c\.yaml: change 'x, y': a name is non-empty text without commas"),
    ({"a.yaml": "changes: [x]\n", "changes/c.yaml": "x:\n  what: w\n  overrides: {seed: 1}\n",
      "changes/d.yaml": "x:\n  what: w\n  overrides: {seed: 2}\n"}, r"changes/d\.yaml: change 'x' is also in .*changes/c\.yaml"),
])
def test_mistakes_are_config_errors_naming_the_file(tmp_path, files, message):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(tmp_path / "a.yaml"))


def test_a_mapping_cannot_extend(tmp_path):
    with pytest.raises(ConfigError, match="'extends' and 'changes' are read from config files only"):
        load_config({"extends": PLUS})


def test_the_cli_reads_the_chain_and_says_a_mistake_in_one_line(tmp_path, capsys):
    mine = _write(tmp_path / "mine.yaml", f"extends: {PLUS}\nmodel: {{encoder: resnet18, image_size: 64}}\n")
    assert main(["model", "summary", "--config", mine]) == 0
    # The improved recipe's dense tasks at 1.25x (80 px, rounded up to the encoder's stride 32).
    assert "  96x96 for 18 task(s): " in capsys.readouterr().out
    loop = _write(tmp_path / "loop.yaml", "extends: loop.yaml\n")
    before = sorted(os.listdir(tmp_path))
    assert main(["train", "--config", loop, "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {loop}: extends itself") and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == before  # no run folder
