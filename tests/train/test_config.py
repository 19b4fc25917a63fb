import os

import pytest
import yaml

from fmuia.config import dump_config, load_config, parse_override
from fmuia.errors import ConfigError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def test_overrides_are_yaml_scalars_on_dotted_keys():
    c = load_config(None, ["model.encoder=resnet34", "train.epochs=2", "optim.lr=3e-4", "data.cache_dir=null",
                           "augment.tasks.lung={hflip: 0.5}", "optim.lr_multipliers.kinds.detection=20"])
    assert c["model"]["encoder"] == "resnet34" and c["train"]["epochs"] == 2
    assert c["optim"]["lr"] == pytest.approx(3e-4) and c["data"]["cache_dir"] is None
    assert c["augment"]["tasks"]["lung"] == {"hflip": 0.5}
    assert c["optim"]["lr_multipliers"]["kinds"]["detection"] == 20
    assert c["optim"]["lr_multipliers"]["heads"] == 10.0  # untouched defaults stay
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert yaml.safe_load(dump_config(c)) == c  # round-trips


@pytest.mark.parametrize("override, named", [
    ("train.epochz=2", "train.epochz"),
    ("trian.epochs=2", "trian"),
    ("model.colour=red", "model.colour"),
    ("train.epochs=two", "train.epochs"),
    ("optim.lr=fast", "optim.lr"),
    ("train.batch_size=0", "train.batch_size"),
    ("sampler.mode=random", "sampler.mode"),
    ("model.image_size=100", "model.image_size"),
    ("noequals", "KEY=VALUE"),
])
def test_bad_keys_and_values_are_named(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, [override])


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 2\n  warmup: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.warmup"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("name", ["fmuia2026_baseline.yaml", "demo_cpu.yaml"])
def test_shipped_configs_load(name):
    c = load_config(os.path.join(CONFIGS, name))
    assert c["seed"] == 42
    if name.startswith("fmuia2026"):
        assert (c["model"]["encoder"], c["model"]["image_size"], c["train"]["batch_size"]) == ("efficientnet_b4", 256, 8)
        assert c["optim"]["lr"] == pytest.approx(1e-4) and c["optim"]["lr_multipliers"]["heads"] == 10.0
        assert (c["schedule"]["min_lr"], c["train"]["epochs"], c["data"]["val_fraction"]) == (1e-6, 50, 0.2)
