"""The pretraining config: shipped files load and round-trip; bad keys name themselves."""
import os

import pytest

from fmuia.config import dump_config, save_config
from fmuia.config.pretrain import PretrainConfig, load_pretrain_config
from fmuia.errors import ConfigError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
SHIPPED = sorted(f for f in os.listdir(CONFIGS) if f.startswith("pretrain_") and f.endswith(".yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pretraining_configs_load_and_round_trip(name, tmp_path):
    config = load_pretrain_config(os.path.join(CONFIGS, name))
    save_config(config, str(tmp_path / "config.yaml"))
    again = load_pretrain_config(str(tmp_path / "config.yaml"))
    assert again == config and dump_config(again) == dump_config(config)
    assert isinstance(config, PretrainConfig) and config.method.name == "simclr"


@pytest.mark.parametrize("override, message", [
    ("encoder.nme=resnet18", "unknown config key 'encoder.nme'"),
    ("views.speckle=1.5", "views.speckle: expected a probability in [0, 1]"),
    ("views.crop_scale=[0.5, 2]", "views.crop_scale: the area fraction cannot exceed 1"),
    ("method.name=byol", "method.name: expected one of simclr"),
    ("train.batch_size=1", "train.batch_size: must be at least 2"),
    ("model.image_size=100", "model.image_size: must be a multiple of 32"),
    ("model.image_size=0", "model.image_size: must be at least 32"),
    ("train.max_steps=0", "train.max_steps: expected a positive integer or null"),
])
def test_bad_values_name_their_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_pretrain_config(None, [override])
    assert message in str(info.value)


def test_pretraining_names_the_encoder_as_training_does(caplog):
    config = load_pretrain_config(None, ["model.encoder=resnet18", "model.pretrained=none", "model.image_size=64"])
    assert (config.model.encoder, config.model.pretrained, config.model.image_size) == ("resnet18", "none", 64)
    assert not caplog.records
    # An older file's encoder: section still loads, read as model:, with one note saying how to convert.
    old = load_pretrain_config({"encoder": {"name": "resnet18", "image_size": 64}})
    assert (old.model.encoder, old.model.image_size) == ("resnet18", 64) and "model" in old.to_dict()
    assert len(caplog.records) == 1 and "encoder.name -> model.encoder" in caplog.records[0].getMessage()
