import pytest

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
    sched = build_scheduler(opt, ScheduleConfig(name="cosine", min_lr=1e-6, warmup_steps=4), total_steps=24)
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
