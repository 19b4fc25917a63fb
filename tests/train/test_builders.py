"""Each builder of a training run receives its own config section, not the whole config."""
import dataclasses

import pytest

from fmuia.config import (AugmentConfig, Config, DataConfig, LossConfig, ModelConfig, OptimConfig, SamplerConfig,
                          ScheduleConfig, load_config)
from fmuia.errors import ConfigError
from fmuia.train import Trainer
from fmuia.train import engine, loop
from fmuia.train.data import build_data, read_datasets
from train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_build_data_takes_its_sections_and_the_input_sizes(train_root):
    data = DataConfig(val_fraction=0.25, num_workers=0)
    datasets = read_datasets(data, train_root, None, seed=1)
    run = build_data(data, SamplerConfig(mode="mixed", batches_per_epoch=3), AugmentConfig(default={}), datasets,
                     input_sizes={t.task_id: 96 for t in datasets.registry}, batch_size=5, seed=1)
    assert len(run.sampler) == 3 and run.val is not None and len(run.val) > 0
    batch = next(iter(run.train_loader))
    assert tuple(batch["image"].shape) == (5, 3, 96, 96)
    val_batch = next(iter(run.val_loader))
    assert tuple(val_batch["image"].shape[1:]) == (3, 96, 96)
    sizes = {t.task_id: 96 for t in datasets.registry}
    missing = sorted(sizes)[0]
    sizes.pop(missing)
    with pytest.raises(ConfigError, match=rf"the model has no input size for task\(s\) {missing} of the data$"):
        build_data(data, SamplerConfig(), AugmentConfig(), datasets, input_sizes=sizes, batch_size=5, seed=1)


def test_trainer_hands_each_builder_its_section(train_root, tmp_path, monkeypatch):
    seen: dict[str, tuple] = {}

    def spy(name, real):
        def call(*args, **kwargs):
            seen[name] = (args, kwargs)
            return real(*args, **kwargs)
        return call

    for name in ("build_data", "build_model", "build_optimizer", "TaskLoss"):
        monkeypatch.setattr(engine, name, spy(name, getattr(engine, name)))
    monkeypatch.setattr(loop, "build_scheduler", spy("build_scheduler", loop.build_scheduler))  # the shared loop's
    config = load_config(tiny_config(), ["model.image_size=96", "train.batch_size=3", "loss.task_weights.FUGC=2"])
    trainer = Trainer(config, train_root, str(tmp_path / "run"))
    try:
        assert trainer.config is config  # built once, by load_config
        for name, (args, kwargs) in seen.items():
            assert not any(isinstance(a, Config) for a in (*args, *kwargs.values())), name
        args, kwargs = seen["build_data"]
        assert args[:3] == (config.data, config.sampler, config.augment)
        assert [type(a) for a in args[:3]] == [DataConfig, SamplerConfig, AugmentConfig]
        assert (kwargs["batch_size"], kwargs["seed"]) == (3, 3)
        assert kwargs["input_sizes"] is trainer.model.input_sizes  # the model's, not worked out again
        assert seen["build_model"][0][0] is config.model and isinstance(config.model, ModelConfig)
        assert trainer.model.config == config.model
        assert type(seen["build_optimizer"][0][1]) is OptimConfig
        assert type(seen["build_scheduler"][0][1]) is ScheduleConfig
        assert seen["TaskLoss"][0][2] is config.loss and type(config.loss) is LossConfig
        assert dataclasses.asdict(config.loss) == LossConfig(task_weights={"FUGC": 2}).to_dict()
    finally:
        trainer.close()
