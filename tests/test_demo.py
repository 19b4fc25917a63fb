"""What `make demo` trains: the improved recipe and the official one under the CPU budget
overlay, the official run seeded so the demo repeats exactly."""
import os

from fmuia import demo
from fmuia.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _configs(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--config"]


def _sets(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]


def test_each_training_is_a_recipe_under_the_budget_overlay():
    argv = demo._train_argv("configs/fmuia_plus.yaml", "configs/demo_cpu.yaml", "/d", "/r", ["train.epochs=1"])
    assert argv[0] == "train" and _configs(argv) == ["configs/fmuia_plus.yaml", "configs/demo_cpu.yaml"]
    assert _sets(argv) == ["train.epochs=1"]
    assert argv[argv.index("--val") + 1] == os.path.join("/d", "val")


def test_the_budget_sets_size_and_length_and_keeps_the_recipes():
    budget = os.path.join(ROOT, "configs", "demo_cpu.yaml")
    for recipe in ("fmuia_plus.yaml", "fmuia2026_official.yaml"):
        path = os.path.join(ROOT, "configs", recipe)
        plain, budgeted = load_config(path).to_dict(), load_config([path, budget]).to_dict()
        assert budgeted["model"]["encoder"] == "tf_efficientnet_lite0" and budgeted["model"]["image_size"] == 128
        assert budgeted["train"]["batch_size"] == 16
        # Only the network and the training length differ from the recipe.
        for section in ("model", "train"):
            plain.pop(section), budgeted.pop(section)
        assert budgeted == plain, recipe


def test_the_official_run_is_seeded_by_a_recipe_that_extends_the_official_one(tmp_path):
    official = os.path.join(ROOT, "configs", "fmuia2026_official.yaml")
    budget = os.path.join(ROOT, "configs", "demo_cpu.yaml")
    seeded = demo._seeded_official(official, str(tmp_path / "official"))
    assert os.path.dirname(seeded) == str(tmp_path / "official")  # written in the demo's folder
    resolved, plain = load_config([seeded, budget]), load_config([official, budget])
    assert resolved.augment.seeded is True and plain.augment.seeded is False
    assert resolved == load_config([official, budget], ["augment.seeded=true"])  # and nothing else changes
    assert demo.LABELS == ("untrained", "official", "improved")
