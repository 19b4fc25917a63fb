import math

import pytest
import torch

from fmuia.config import LrMultipliers, OptimConfig, ScheduleConfig
from fmuia.errors import ConfigError
from fmuia.model import build_model
from fmuia.tasks import fmuia2026
from fmuia.train.optim import build_optimizer, build_scheduler, lr_factor, param_groups

from train_helpers import TINY_MODEL

pytestmark = pytest.mark.usefixtures("one_thread")

REG = fmuia2026().subset(["lung", "organ_cls", "FUGC", "thyroid_nodule_det"])


@pytest.fixture(scope="module")
def model():
    return build_model(TINY_MODEL, REG)


def test_groups_encoder_decoder_and_one_per_head(model):
    cfg = OptimConfig(lr=1e-4, lr_multipliers=LrMultipliers(encoder=1.0, decoder=10.0, heads=10.0,
                                                            kinds={"classification": 5.0}, tasks={"FUGC": 2.0}))
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert set(groups) == {"encoder", "decoder", "head:lung", "head:organ_cls", "head:FUGC", "head:thyroid_nodule_det"}
    assert groups["encoder"]["lr"] == pytest.approx(1e-4)
    assert groups["decoder"]["lr"] == pytest.approx(1e-3)
    assert groups["head:lung"]["lr"] == pytest.approx(1e-3)
    assert groups["head:organ_cls"]["lr"] == pytest.approx(5e-4)  # kind multiplier
    assert groups["head:FUGC"]["lr"] == pytest.approx(2e-4)  # task multiplier wins
    n_params = sum(len(g["params"]) for g in groups.values())
    assert n_params == len(list(model.parameters()))  # every parameter exactly once
    with pytest.raises(ConfigError, match="optim.lr_multipliers.tasks.nope"):
        param_groups(model, OptimConfig(lr=1e-4, lr_multipliers=LrMultipliers(tasks={"nope": 1.0})))


def test_cosine_schedule_with_warmup_at_chosen_steps(model):
    opt = build_optimizer(model, OptimConfig(lr=1e-4, weight_decay=0.0))
    sched = build_scheduler(opt, ScheduleConfig(name="cosine", min_lr=1e-6, warmup_steps=4, interval="step"), total_steps=24)
    seen = []
    for step in range(24):
        seen.append([g["lr"] for g in opt.param_groups[:2]])  # rate used by update number `step`
        opt.step()
        sched.step()
    enc = [s[0] for s in seen]
    dec = [s[1] for s in seen]
    assert enc[0] == pytest.approx(1e-4 / 4) and enc[3] == pytest.approx(1e-4)  # linear warm-up
    assert enc[-1] == pytest.approx(1e-6) and dec[-1] == pytest.approx(1e-6)  # both anneal to min_lr
    # The cosine runs over updates 4..23 (19 intervals): update 13 is at 9/19 of it, so
    # 1e-4 * (0.01 + 0.99 * (1 + cos(9 pi / 19)) / 2), worked out by hand.
    assert enc[13] == pytest.approx(5.458767760088046e-05, rel=1e-9)
    # 25 updates, 4 of warm-up: update 14 is exactly half-way, floor 0.01 -> 0.505.
    assert lr_factor(14, 25, 4, 1e-4, 1e-6) == pytest.approx(0.505, rel=1e-12)
    assert lr_factor(4, 25, 4, 1e-4, 1e-6) == 1.0 and lr_factor(24, 25, 4, 1e-4, 1e-6) == pytest.approx(0.01, rel=1e-12)
    assert all(a >= b for a, b in zip(enc[3:], enc[4:]))  # monotone after warm-up
    assert lr_factor(5, 10, 0, 1e-4, 1e-6, name="constant") == 1.0


def test_frozen_decoder_has_no_group_and_no_gradient():
    model = build_model(TINY_MODEL, REG)  # its own model: build_optimizer freezes the decoder
    cfg = OptimConfig(lr=1e-4, train_decoder=False)
    names = [g["name"] for g in param_groups(model, cfg)]
    assert names == ["encoder"] + [f"head:{t.task_id}" for t in REG]
    decoder = {id(p) for p in model.decoder.parameters()}
    optimizer = build_optimizer(model, cfg)
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not held & decoder and len(held) + len(decoder) == len(list(model.parameters()))
    assert not any(p.requires_grad for p in model.decoder.parameters())
    assert all(p.requires_grad for p in model.encoder.parameters())
    # Gradients flow through the frozen decoder into the encoder.
    out = model(torch.randn(2, 3, 64, 64), ["lung", "lung"])
    out["lung"].sum().backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    # The default trains it.
    other = build_model(TINY_MODEL, REG)
    assert "decoder" in [g["name"] for g in build_optimizer(other, OptimConfig(lr=1e-4)).param_groups]
    assert all(p.requires_grad for p in other.decoder.parameters())


def _rates(optimizer, scheduler, steps):
    """The rate of each group at updates 0..steps-1."""
    seen = []
    for _ in range(steps):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


def _official(base, min_lr, epoch, epochs):
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def test_epoch_interval_moves_once_per_epoch_as_cosine_annealing_lr(model):
    schedule = ScheduleConfig(name="cosine", min_lr=1e-6, interval="epoch")
    opt = build_optimizer(model, OptimConfig(lr=1e-4, weight_decay=0.0))
    bases = [g["lr"] for g in opt.param_groups]
    seen = _rates(opt, build_scheduler(opt, schedule, total_steps=20, steps_per_epoch=5), 20)  # 4 epochs
    for step, rates in enumerate(seen):
        for base, rate in zip(bases, rates):
            assert rate == pytest.approx(_official(base, 1e-6, step // 5, 4), rel=1e-12), (step, base)
    assert seen[0][0] == 1e-4 and seen[4] == seen[0] and seen[5][0] < seen[4][0]  # steps of one epoch share a rate
    assert min(r[0] for r in seen) > 1e-6 * 1.5  # the last epoch stays above min_lr
    # The torch scheduler the official code steps after each epoch gives the same rates.
    ref_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-4)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=4, eta_min=1e-6)
    for epoch in range(4):
        assert seen[epoch * 5][0] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-9)
        ref_opt.step()
        ref.step()


def test_epoch_interval_cut_by_max_steps_and_with_warmup():
    # 17 steps of 5 per epoch: E = ceil(17 / 5) = 4, the fourth epoch partial.
    assert lr_factor(16, 17, 0, 1e-4, 1e-6, steps_per_epoch=5) == pytest.approx(
        _official(1e-4, 1e-6, 3, 4) / 1e-4, rel=1e-12)
    assert lr_factor(10, 17, 0, 1e-4, 1e-6, steps_per_epoch=5) == pytest.approx(0.505, rel=1e-12)  # e/E = 1/2
    # Warm-up still counts in steps; then the rate of the step's epoch.
    assert [lr_factor(s, 20, 3, 1e-4, 1e-6, steps_per_epoch=5) for s in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert lr_factor(3, 20, 3, 1e-4, 1e-6, steps_per_epoch=5) == 1.0
    assert lr_factor(5, 20, 3, 1e-4, 1e-6, steps_per_epoch=5) == pytest.approx(_official(1e-4, 1e-6, 1, 4) / 1e-4)
    assert lr_factor(7, 20, 0, 1e-4, 1e-6, name="constant", steps_per_epoch=5) == 1.0


def test_step_interval_ignores_the_epoch_length(model):
    opt = build_optimizer(model, OptimConfig(lr=1e-4, weight_decay=0.0))
    step = ScheduleConfig(name="cosine", min_lr=1e-6, warmup_steps=2, interval="step")
    plain = _rates(opt, build_scheduler(opt, step, total_steps=12), 12)
    opt = build_optimizer(model, OptimConfig(lr=1e-4, weight_decay=0.0))
    given = _rates(opt, build_scheduler(opt, step, total_steps=12, steps_per_epoch=4), 12)
    assert plain == given and plain[-1][0] == pytest.approx(1e-6)
    assert len({r[0] for r in plain[2:]}) == 10  # a new rate at every step after warm-up
    with pytest.raises(ConfigError, match="schedule.interval"):
        build_scheduler(opt, ScheduleConfig(interval="epoch"), total_steps=12)
