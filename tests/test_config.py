import dataclasses
import os

import pytest
import yaml

from fmuia.config import (AugmentConfig, Config, DataConfig, FinetuneConfig, LossConfig, LrMultipliers, ModelConfig, OptimConfig,
                          PredictConfig, SamplerConfig, ScheduleConfig, TrainConfig, dump_config, load_config, merge,
                          parse_override, save_config)
from fmuia.errors import ConfigError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
# Training configs; configs/pretrain_*.yaml are fmuia pretrain's (tests/pretrain/test_pretrain_config.py).
SHIPPED = sorted(f for f in os.listdir(CONFIGS) if f.endswith(".yaml") and not f.startswith("pretrain_"))


def test_sections_are_dataclasses():
    c = load_config(None)
    sections = {"model": ModelConfig, "data": DataConfig, "augment": AugmentConfig, "sampler": SamplerConfig,
                "loss": LossConfig, "optim": OptimConfig, "schedule": ScheduleConfig, "train": TrainConfig,
                "finetune": FinetuneConfig, "predict": PredictConfig}
    assert [f.name for f in dataclasses.fields(Config)] == ["seed", "device", *sections]
    for name, cls in sections.items():
        assert type(getattr(c, name)) is cls and dataclasses.is_dataclass(cls), name
    assert type(c.optim.lr_multipliers) is LrMultipliers
    assert (c.seed, c.device, c.train.epochs, c.optim.lr_multipliers.decoder) == (42, "auto", 50, 10.0)
    # open sections stay mappings
    assert c.loss.kind_weights == {"segmentation": 1.0, "classification": 1.0, "detection": 1.0, "keypoints": 1.0}
    assert c.augment.default == {"brightness_contrast": 0.2, "noise": 0.1} and c.model.heads == {"keypoints": "bounded_regression"}


def test_overrides_are_yaml_scalars_on_dotted_keys():
    c = load_config(None, ["model.encoder=resnet34", "train.epochs=2", "optim.lr=3e-4", "data.cache_dir=null",
                           "augment.tasks.lung={hflip: 0.5}", "optim.lr_multipliers.kinds.detection=20"])
    assert c.model.encoder == "resnet34" and c.train.epochs == 2
    assert c.optim.lr == pytest.approx(3e-4) and c.data.cache_dir is None
    assert c.augment.tasks["lung"] == {"hflip": 0.5}
    assert c.optim.lr_multipliers.kinds["detection"] == 20
    assert c.optim.lr_multipliers.heads == 10.0  # untouched defaults stay
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert load_config(yaml.safe_load(dump_config(c))) == c  # round-trips
    assert load_config(None, {"train.epochs": 2, "optim.lr": 3e-4}).train.epochs == 2
    assert isinstance(load_config(None, ["optim.lr_multipliers.encoder=2"]).optim.lr_multipliers.encoder, float)


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


@pytest.mark.parametrize("override, message", [
    ("train.epochz=2", "override train.epochz=2: unknown config key 'train.epochz' (known at this level: batch_size, "
                       "compile, ema_decay, epochs, grad_clip, log_dir, max_steps, plot, precision, progress, select, val_every)"),
    ("train.epochs=two", "override train.epochs='two': train.epochs: expected an integer, got 'two'"),
    ("optim.lr=fast", "override optim.lr='fast': optim.lr: expected a number, got 'fast'"),
    ("train.ema_decay=yes", "override train.ema_decay=True: train.ema_decay: expected a number or null, got True"),
    ("data.tasks=lung", "override data.tasks='lung': data.tasks: expected a list or null, got 'lung'"),
    ("train.compile=1", "override train.compile=1: train.compile: expected true or false, got 1"),
    ("optim.betas=0.9", "override optim.betas=0.9: optim.betas: expected a list, got 0.9"),
    ("optim=3", "override optim=3: optim: expected a mapping, got 3"),
    ("train.batch_size=0", "override train.batch_size=0: train.batch_size: must be at least 1, got 0"),
    ("sampler.mode=random", "override sampler.mode='random': sampler.mode: expected one of round_robin, task_uniform, mixed, "
                            "got 'random'"),
    ("train.ema_decay=1.5", "override train.ema_decay=1.5: train.ema_decay: expected a number in (0, 1) or null, got 1.5"),
    ("optim.betas=[0.9]", "override optim.betas=[0.9]: optim.betas: expected two numbers in [0, 1), got [0.9]"),
    ("loss.kind_weights.detection=-1", "override loss.kind_weights.detection=-1: loss.kind_weights.detection: must be >= 0, "
                                        "got -1.0"),
    ("loss.params={detection.grid: 3}", "override loss.params={'detection.grid': 3}: loss.params.detection.grid: expected a "
                                         "mapping, got 3"),
    ("optim.lr_multipliers.heads=-1", "override optim.lr_multipliers.heads=-1: optim.lr_multipliers.heads: must be >= 0, "
                                       "got -1.0"),
    ("data.val_fraction=1", "override data.val_fraction=1: data.val_fraction: expected a number in [0, 1), got 1.0"),
    ("model.image_size=100", "override model.image_size=100: model.image_size: must be a multiple of 32 (the encoder's "
                             "largest stride), got 100"),
])
def test_error_messages_are_unchanged(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == message


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 2\n  warmup: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.warmup"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"))


def test_sections_built_directly_are_checked_like_loaded_ones():
    assert OptimConfig(lr=1).lr == 1.0 and isinstance(OptimConfig(lr=1).lr, float)
    with pytest.raises(ConfigError, match=r"^optim\.lr: expected a number, got 'fast'$"):
        OptimConfig(lr="fast")
    with pytest.raises(ConfigError, match=r"^train\.epochs: must be >= 0, got -1$"):
        TrainConfig(epochs=-1)
    with pytest.raises(ConfigError, match=r"^sampler\.mode: expected one of"):
        SamplerConfig(mode="random")
    with pytest.raises(ConfigError, match=r"^optim\.lr_multipliers: expected a LrMultipliers"):
        OptimConfig(lr_multipliers={"heads": 2.0})
    with pytest.raises(ConfigError, match=r"^augment\.tasks: expected a mapping"):
        AugmentConfig(tasks=3)
    assert SamplerConfig.from_dict({"mode": "mixed"}) == SamplerConfig(mode="mixed")
    with pytest.raises(ConfigError, match=r"unknown config key 'sampler\.mod'"):
        SamplerConfig.from_dict({"mod": "mixed"})
    assert OptimConfig.from_dict({"lr_multipliers": {"kinds": {"detection": 2}}}).lr_multipliers.kinds == {"detection": 2}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_and_round_trip(name, tmp_path):
    c = load_config(os.path.join(CONFIGS, name))
    saved = tmp_path / "config.yaml"
    save_config(c, str(saved))
    assert saved.read_text(encoding="utf-8") == dump_config(c.to_dict())
    again = load_config(str(saved))
    assert again == c and dump_config(again) == dump_config(c)  # a saved config loads back to the same Config
    assert load_config(c) == c and Config.from_dict(c.to_dict()) == c
    if name.startswith("fmuia2026"):
        assert c.seed == 42
        assert (c.model.encoder, c.model.image_size, c.train.batch_size) == ("efficientnet_b4", 256, 8)
        assert c.optim.lr == pytest.approx(1e-4) and c.optim.lr_multipliers.heads == 10.0
        assert (c.schedule.min_lr, c.train.epochs, c.data.val_fraction) == (1e-6, 50, 0.2)


def test_resolved_yaml_is_in_schema_order():
    c = load_config(os.path.join(CONFIGS, "fmuia_plus.yaml"), ["train.epochs=3"])
    text = dump_config(c)
    assert list(yaml.safe_load(text)) == ["seed", "device", "model", "data", "augment", "sampler", "loss", "optim",
                                          "schedule", "train", "finetune", "predict"]
    assert text.splitlines()[:3] == ["seed: 42", "device: auto", "model:"]
    assert "train:\n  epochs: 3\n  batch_size: 8\n" in text
    assert "  betas:\n  - 0.9\n  - 0.999\n" in text


def test_merge_takes_a_config_and_keeps_checking():
    plus = load_config(os.path.join(CONFIGS, "fmuia_plus.yaml"))
    tree = merge(plus, {"train": {"epochs": 1}, "augment": {"tasks": {"lung": {"hflip": 0.0}}}})
    c = load_config(tree)
    assert c.train.epochs == 1 and c.augment.tasks == {"lung": {"hflip": 0.0}}
    assert c.augment.default == plus.augment.default  # open sections merge key by key
    with pytest.raises(ConfigError, match=r"train\.epochz"):
        merge(plus, {"train": {"epochz": 1}})


def test_config_files_layer_key_by_key(tmp_path):
    recipe, budget = tmp_path / "recipe.yaml", tmp_path / "budget.yaml"
    recipe.write_text("sampler: {mode: mixed}\ntrain: {epochs: 50, batch_size: 8}\naugment: {default: {hflip: 0.5}}\n")
    budget.write_text("train: {epochs: 3}\naugment: {default: {brightness_contrast: 0.0}}\n")
    c = load_config([str(recipe), str(budget)], ["train.batch_size=4"])
    assert (c.sampler.mode, c.train.epochs, c.train.batch_size) == ("mixed", 3, 4)
    assert c.augment.default == {"brightness_contrast": 0.0, "noise": 0.1, "hflip": 0.5}  # noise: the default's
    assert load_config([str(budget), str(recipe)]).train.epochs == 50  # the later file wins
    budget.write_text("train: {epochz: 3}\n")
    with pytest.raises(ConfigError, match=r"budget\.yaml: unknown config key 'train\.epochz'"):
        load_config([str(recipe), str(budget)])
    with pytest.raises(ConfigError, match="empty list"):
        load_config([])
