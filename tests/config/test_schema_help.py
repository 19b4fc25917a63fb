"""Every key has a help line; docs/config.md is generated from it and kept current;
``fmuia config show`` prints a resolved config with its help that loads back the same."""
import os
import subprocess
import sys

import pytest
import yaml

from fmuia.cli.main import main
from fmuia.config import load_config
from fmuia.config.describe import annotated_yaml, entry_help, leaf_keys, reference_markdown
from fmuia.config.pretrain import PretrainConfig, load_pretrain_config
from fmuia.config.schema import walk
from fmuia.config.sections import Config

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DOCS = os.path.join(ROOT, "docs", "config.md")


@pytest.mark.parametrize("schema", [Config, PretrainConfig])
def test_every_key_has_a_help_line(schema):
    missing = [path for path, _f, _hint, spec in walk(schema) if len(spec.help.strip()) < 8]
    assert not missing


def test_docs_config_md_is_current():
    with open(DOCS, encoding="utf-8") as fh:
        assert fh.read() == reference_markdown(), "docs/config.md is stale: run 'fmuia config docs'"


def test_every_key_of_the_improved_recipe_has_its_help_in_the_docs():
    with open(DOCS, encoding="utf-8") as fh:
        docs = fh.read()
    plus = load_config(os.path.join(ROOT, "configs", "fmuia_plus.yaml"))
    fields = {path: spec.help for path, f, _hint, spec in walk(Config) if f is not None}
    for path, inner, value in leaf_keys(plus):
        text = (entry_help(path, inner, value) if inner else "") or fields[path]
        assert text and text.replace("|", "\\|") in docs, (path, inner)


@pytest.mark.parametrize("recipe", ["fmuia_plus.yaml", "fmuia2026_official.yaml"])
def test_show_prints_the_resolved_config_with_help_that_loads_back(recipe, capsys):
    path = os.path.join(ROOT, "configs", recipe)
    assert main(["config", "show", "--config", path, "--set", "train.epochs=3"]) == 0
    text = capsys.readouterr().out
    assert "# passes over the training samples\n  epochs: 3\n" in text
    assert load_config(yaml.safe_load(text)) == load_config(path, ["train.epochs=3"])


def test_show_pretraining_and_mistakes(capsys):
    assert main(["config", "show", "--pretrain", "--set", "model.encoder=resnet18"]) == 0
    text = capsys.readouterr().out
    assert load_pretrain_config(yaml.safe_load(text)).model.encoder == "resnet18"
    assert annotated_yaml(load_pretrain_config()).startswith("# the run's random seed")
    assert main(["config", "show", "--set", "train.epochz=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: override train.epochz=3: unknown config key 'train.epochz'") and err.count("\n") == 1


def test_train_help_points_at_config_show(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "fmuia config show" in capsys.readouterr().out


def test_reading_a_config_imports_neither_torch_nor_opencv():
    code = ("import sys, fmuia.config, fmuia.config.pretrain, fmuia.config.describe\n"
            "fmuia.config.load_config('configs/fmuia_plus.yaml')\n"
            "print(sorted(m for m in ('torch', 'cv2', 'albumentations', 'timm', 'fmuia.kinds') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
