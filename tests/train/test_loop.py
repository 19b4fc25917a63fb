"""The shared training loop on a toy run: steps, schedule, resume, stopping; and that
training and pretraining use it rather than loops of their own."""
import csv
import io
import os
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fmuia.config import ScheduleConfig
from fmuia.errors import ConfigError
from fmuia.pretrain.engine import Pretrainer
from fmuia.train.engine import Trainer
from fmuia.train.loop import NonFiniteLossError, TrainingLoop, epoch_seed
from train_helpers import stopped_after_first_epoch

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyRun(TrainingLoop):
    """Linear regression with dropout on 24 fixed points, batches of 4 in a seeded order;
    the checkpoint is one file, ``last/toy.pt``."""

    what = "toy"

    def __init__(self, run_dir, epochs=3, max_steps=None, grad_clip=1.0, resume=False, poison_step=None):
        settings = SimpleNamespace(epochs=epochs, max_steps=max_steps, precision="fp32", grad_clip=grad_clip,
                                   progress=False, plot=False)
        super().__init__(run_dir, settings, seed=5, device="cpu")
        self.seed_everything()
        self.model = nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 1))
        self.x = torch.linspace(-1, 1, 72).view(24, 3)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
        self.poison_step = poison_step
        self.prepare(self.model, torch.optim.AdamW(self.model.parameters(), lr=0.05),
                     ScheduleConfig(name="cosine", warmup_steps=2), steps_per_epoch=6)
        if resume:
            self._restore()
        self.open_run({"toy": True}, {"points": 24})

    def _set_epoch(self, epoch):
        self.order = torch.randperm(24, generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch, 0)))

    def _loader(self):
        return [self.order[i:i + 4] for i in range(0, 24, 4)]

    def _batch_loss(self, rows):
        with self.autocast():
            loss = nn.functional.mse_loss(self.forward_model(self.x[rows]), self.y[rows])
        if self.poison_step is not None and self.step + 1 == self.poison_step:
            loss = loss * float("nan")
        return loss, {}, ""

    def _save(self, row, validation):
        buffer = io.BytesIO()
        torch.save({"weights": self.model.state_dict(), "state": self._loop_state()}, buffer)
        os.makedirs(self.last_dir, exist_ok=True)
        with open(os.path.join(self.last_dir, "toy.pt"), "wb") as fh:
            fh.write(buffer.getvalue())

    def _restore(self):
        saved = torch.load(os.path.join(self.last_dir, "toy.pt"), weights_only=True)
        self._restore_weights(saved["weights"], saved["state"])
        self._restore_loop_state(saved["state"])

    def _result(self, history):
        return history


def _without_time(rows):
    return [{k: v for k, v in row.items() if k != "time_s"} for row in rows]


def test_a_resumed_run_continues_as_the_uninterrupted_one(tmp_path, monkeypatch):
    straight = ToyRun(str(tmp_path / "straight"))
    history = straight.fit()
    assert [row["epoch"] for row in history] == [1, 2, 3] and straight.step == 18
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert os.path.isfile(tmp_path / "straight" / "config.yaml") and os.path.isfile(tmp_path / "straight" / "run.json")
    assert len(list(csv.DictReader(open(tmp_path / "straight" / "metrics.csv")))) == 3

    interrupted = ToyRun(str(tmp_path / "interrupted"))
    stopped_after_first_epoch(monkeypatch, ToyRun, interrupted.fit)
    torch.manual_seed(123)  # whatever the process did in between
    resumed = ToyRun(str(tmp_path / "interrupted"), resume=True)
    assert (resumed.epoch, resumed.step) == (1, 6)
    assert _without_time(resumed.fit()) == _without_time(history)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_max_steps_stops_mid_epoch_and_the_schedule_spans_them(tmp_path):
    run = ToyRun(str(tmp_path / "run"), epochs=5, max_steps=8)
    history = run.fit()
    assert run.step == 8 and run.total_steps == 8 and [row["step"] for row in history] == [6, 8]


def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
    run = ToyRun(str(tmp_path / "run"), poison_step=9)
    with pytest.raises(NonFiniteLossError, match=r"non-finite toy loss at step 9 \(epoch 2\); training stopped, "
                                                 r"the last good checkpoint .* \(epoch 1\) is kept"):
        run.fit()


def test_fp16_on_the_cpu_is_refused_before_anything_is_written(tmp_path):
    class Fp16(ToyRun):
        def prepare(self, *args, **kwargs):
            self.settings.precision = "fp16"
            super().prepare(*args, **kwargs)

    with pytest.raises(ConfigError, match="fp16 training needs a CUDA device"):
        Fp16(str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("run", [Trainer, Pretrainer])
def test_training_and_pretraining_have_no_loop_of_their_own(run):
    for name in ("fit", "_train_epoch", "_train_step", "_check_finite", "_end_epoch", "_batches", "prepare",
                 "_loop_state", "_restore_loop_state", "_restore_weights"):
        assert getattr(run, name) is getattr(TrainingLoop, name), f"{run.__name__}.{name}"
