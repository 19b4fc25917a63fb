from collections import Counter

import numpy as np
import pytest

from fmuia.data.samplers import TaskBatchSampler, quotas, task_weights
from fmuia.errors import ConfigError

GROUPS = {f"t{k}": list(range(100 * k, 100 * k + size)) for k, size in enumerate([5, 40, 12, 3, 80, 20])}
TASK_OF = {i: t for t, ix in GROUPS.items() for i in ix}


def batch_tasks(sampler, epoch=0):
    sampler.set_epoch(epoch)
    return [[TASK_OF[i] for i, _ in b] for b in sampler]


def test_round_robin_visits_every_task_in_short_runs():
    s = TaskBatchSampler(GROUPS, batch_size=4, mode="round_robin", num_batches=6, seed=1)
    tasks = batch_tasks(s)
    assert all(len(set(b)) == 1 for b in tasks)  # one task per batch
    assert sorted(b[0] for b in tasks) == sorted(GROUPS)  # each task exactly once


def test_task_uniform_is_iid_and_roughly_uniform():
    s = TaskBatchSampler(GROUPS, batch_size=2, mode="task_uniform", num_batches=6000, seed=3)
    counts = Counter(b[0] for b in batch_tasks(s))
    assert set(counts) == set(GROUPS)
    for c in counts.values():
        assert abs(c / 6000 - 1 / 6) < 0.02
    # a short i.i.d. run can skip tasks; the quota modes never do
    short = TaskBatchSampler(GROUPS, batch_size=2, mode="task_uniform", num_batches=6, seed=0)
    skipped = sum(len({b[0] for b in batch_tasks(short, e)}) < 6 for e in range(20))
    assert skipped > 0


def test_weightings():
    sizes = {t: len(ix) for t, ix in GROUPS.items()}
    prop = task_weights(sizes, "proportional")
    assert prop["t4"] == pytest.approx(80 / 160)
    temp = task_weights(sizes, "temperature", temperature=2.0)
    z = sum(n ** 0.5 for n in sizes.values())
    assert temp["t3"] == pytest.approx(3 ** 0.5 / z)
    assert task_weights(sizes, "uniform")["t0"] == pytest.approx(1 / 6)
    q = quotas(prop, 32)
    assert sum(q.values()) == 32 and min(q.values()) >= 1
    s = TaskBatchSampler(GROUPS, batch_size=4, mode="round_robin", weighting="proportional", num_batches=32, seed=0)
    assert Counter(b[0] for b in batch_tasks(s)) == Counter(q)


def test_mixed_batches_follow_quotas():
    s = TaskBatchSampler(GROUPS, batch_size=8, mode="mixed", num_batches=30, seed=2)
    tasks = batch_tasks(s)
    assert any(len(set(b)) > 1 for b in tasks)
    counts = Counter(t for b in tasks for t in b)
    assert all(c == 40 for c in counts.values())  # 240 slots, uniform over 6 tasks


def test_walk_covers_a_task_before_repeating():
    s = TaskBatchSampler({"a": list(range(10))}, batch_size=5, num_batches=2, seed=0)
    s.set_epoch(0)
    seen = [i for b in s for i, _ in b]
    assert sorted(seen) == list(range(10))


def test_deterministic_per_epoch_and_sharded_per_rank():
    a = TaskBatchSampler(GROUPS, batch_size=4, num_batches=12, seed=5)
    b = TaskBatchSampler(GROUPS, batch_size=4, num_batches=12, seed=5)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)
    ranks = [TaskBatchSampler(GROUPS, batch_size=4, num_batches=12, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(3)
    assert len(ranks[0]) == len(ranks[1]) == 6
    assert [x for pair in zip(list(ranks[0]), list(ranks[1])) for x in pair] == list(a)
    seeds = [s for batch in a for _, s in batch]
    assert len(set(seeds)) > len(seeds) * 0.9  # one augmentation seed per drawn sample


def test_errors():
    with pytest.raises(ConfigError, match="sampler.mode"):
        TaskBatchSampler(GROUPS, batch_size=4, mode="random")
    with pytest.raises(ConfigError, match="empty"):
        TaskBatchSampler({"a": []}, batch_size=4)
    np.testing.assert_equal(len(TaskBatchSampler(GROUPS, batch_size=8)), int(np.ceil(160 / 8)))


def test_mixed_batches_hold_one_input_size_each():
    sizes = {"t0": 192, "t1": 192, "t2": 128, "t3": 192, "t4": 128, "t5": 128}
    s = TaskBatchSampler(GROUPS, batch_size=8, mode="mixed", num_batches=30, seed=2, sizes=sizes)
    tasks = batch_tasks(s)
    assert len(tasks) == 30 and all(len(b) == 8 for b in tasks)
    assert all(len({sizes[t] for t in b}) == 1 for b in tasks)  # never two sizes in a batch
    assert any(len(set(b)) > 1 for b in tasks)  # still several tasks in a batch
    counts = Counter(t for b in tasks for t in b)
    assert all(c == 40 for c in counts.values())  # 15 batches per size, uniform over its 3 tasks
    big_first = [sizes[b[0]] for b in tasks]
    assert big_first != sorted(big_first) and big_first != sorted(big_first, reverse=True)  # sizes interleaved
    assert batch_tasks(s) == tasks  # a pure function of (seed, epoch)
    # one size for every task is the plain mixed sampler, batch for batch
    plain = TaskBatchSampler(GROUPS, batch_size=8, mode="mixed", num_batches=30, seed=2)
    same = TaskBatchSampler(GROUPS, batch_size=8, mode="mixed", num_batches=30, seed=2, sizes={t: 128 for t in GROUPS})
    plain.set_epoch(1)
    same.set_epoch(1)
    assert list(plain) == list(same)
    with pytest.raises(ConfigError, match="input sizes"):
        TaskBatchSampler(GROUPS, batch_size=8, mode="mixed", num_batches=1, seed=2, sizes=sizes)
