"""Which samples go into which training batch.

A ``TaskBatchSampler`` yields, for one epoch, lists of ``(dataset index, augmentation
seed)`` pairs. The batches of an epoch are a pure function of (seed, epoch): nothing
carries over between epochs, so a resumed run draws exactly the batches of an
uninterrupted one, and every rank of a distributed run computes the same global list
and keeps its own share.

Modes (``sampler.mode``):

* ``round_robin`` (default): one task per batch; the tasks' batch counts are fixed
  quotas (largest remainder of the weights) laid out in shuffled cycles, so a short
  run visits every task;
* ``task_uniform``: one task per batch, the task drawn i.i.d. for each batch (the
  reference recipe; a short run can skip tasks);
* ``mixed``: any tasks in a batch; the task of each slot comes from fixed quotas,
  shuffled over the epoch. When tasks see inputs of different sizes
  (``model.input_scale``), a batch holds tasks of one size only: the batches are shared
  among the sizes by their tasks' summed weights (largest remainder), each size's slots
  are shared among its tasks likewise, and the batches of all sizes are shuffled together.

Within a task, samples are taken in order from a shuffled list of its indices,
reshuffled when used up. Task weights (``sampler.weighting``): ``uniform``,
``proportional`` to the task's size, or ``temperature`` ``n_t ** (1 / T)``.
"""
from __future__ import annotations

import math
from typing import Hashable, Iterator, Mapping, Sequence

import numpy as np

from fmuia.errors import ConfigError

MODES = ("round_robin", "task_uniform", "mixed")
WEIGHTINGS = ("uniform", "proportional", "temperature")

__all__ = ["MODES", "WEIGHTINGS", "TaskBatchSampler", "quotas", "task_weights"]


def task_weights(sizes: Mapping[str, int], weighting: str = "uniform", temperature: float = 2.0) -> dict[str, float]:
    """Sampling probability of each task (sums to 1)."""
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"sampler.weighting: expected one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    n = np.array([float(sizes[t]) for t in sizes])
    if weighting == "uniform":
        w = np.ones_like(n)
    elif weighting == "proportional":
        w = n
    else:
        if temperature <= 0:
            raise ConfigError(f"sampler.temperature: must be > 0, got {temperature}")
        w = n ** (1.0 / temperature)
    w = w / w.sum()
    return {t: float(p) for t, p in zip(sizes, w)}


def quotas(weights: Mapping[Hashable, float], total: int) -> dict[Hashable, int]:
    """``total`` split by ``weights`` with the largest-remainder rule (ties: task order).

    When ``total`` is at least the number of tasks, every task gets at least one."""
    tasks = list(weights)
    exact = np.array([weights[t] for t in tasks]) * total
    count = np.floor(exact).astype(int)
    if total >= len(tasks):
        count = np.maximum(count, 1)
    rest = total - int(count.sum())
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    if rest > 0:
        for i in order[:rest]:
            count[i] += 1
    elif rest < 0:  # the minimum of one took too many: take back from the largest
        for i in np.argsort(-count, kind="stable"):
            if rest == 0:
                break
            take = min(count[i] - 1, -rest)
            count[i] -= take
            rest += take
    return {t: int(c) for t, c in zip(tasks, count)}


class _Walk:
    """Sequential walk through a reshuffled list of one task's indices."""

    def __init__(self, indices: Sequence[int], rng: np.random.Generator) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        self.rng = rng
        self.order = rng.permutation(self.indices)
        self.pos = 0

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            if self.pos == len(self.order):
                self.order = self.rng.permutation(self.indices)
                self.pos = 0
            step = min(k - len(out), len(self.order) - self.pos)
            out.extend(int(i) for i in self.order[self.pos : self.pos + step])
            self.pos += step
        return out


class TaskBatchSampler:
    """Batches of ``(index, augmentation seed)`` for ``torch.utils.data.DataLoader(batch_sampler=...)``.

    ``groups`` maps task ids to dataset indices. ``num_batches`` is the global number of
    batches per epoch (default: samples / batch size, rounded up); with ``world_size`` > 1
    each rank gets ``num_batches // world_size`` of them (rank r takes r, r + W, ...).
    ``sizes`` maps task ids to their input size where they differ: no batch mixes two.
    Call ``set_epoch`` before iterating.
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[int]],
        batch_size: int,
        mode: str = "round_robin",
        weighting: str = "uniform",
        temperature: float = 2.0,
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        sizes: Mapping[str, Hashable] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"sampler.mode: expected one of {', '.join(MODES)}, got {mode!r}")
        self.groups = {t: list(ix) for t, ix in groups.items() if len(ix)}
        if not self.groups:
            raise ConfigError("the training set is empty: no task has samples")
        if batch_size < 1:
            raise ConfigError(f"train.batch_size: must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.mode = mode
        self.weights = task_weights({t: len(ix) for t, ix in self.groups.items()}, weighting, temperature)
        total = sum(len(ix) for ix in self.groups.values())
        self.num_batches = int(num_batches) if num_batches else max(1, math.ceil(total / batch_size))
        if self.num_batches < world_size:
            raise ConfigError(f"{self.num_batches} batches per epoch cannot be shared by {world_size} processes")
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        sizes = dict(sizes or {})
        self.size_groups: dict[Hashable, list[str]] = {}
        for t in self.groups:
            self.size_groups.setdefault(sizes.get(t), []).append(t)
        if mode == "mixed" and len(self.size_groups) > self.num_batches:
            raise ConfigError(f"{self.num_batches} batches per epoch cannot hold the {len(self.size_groups)} input "
                              f"sizes of the tasks (a batch holds one size)")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches // self.world_size

    def _task_sequence(self, rng: np.random.Generator, length: int) -> list[str]:
        tasks = list(self.groups)
        if self.mode == "task_uniform":
            p = np.array([self.weights[t] for t in tasks])
            return [tasks[i] for i in rng.choice(len(tasks), size=length, p=p)]
        counts = quotas(self.weights, length)
        if self.mode == "mixed":
            seq = [t for t in tasks for _ in range(counts[t])]
            return [seq[i] for i in rng.permutation(len(seq))]
        # round_robin: cycle c holds every task that still has batches left, shuffled.
        left = dict(counts)
        seq: list[str] = []
        while len(seq) < length:
            cycle = [t for t in tasks if left[t] > 0]
            for i in rng.permutation(len(cycle)):
                seq.append(cycle[i])
                left[cycle[i]] -= 1
        return seq

    def global_batches(self, epoch: int | None = None) -> list[list[tuple[int, int]]]:
        """Every batch of the epoch (all ranks), as ``(index, augmentation seed)`` lists."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch])
        walks = {t: _Walk(ix, np.random.default_rng([self.seed, epoch, k + 1])) for k, (t, ix) in enumerate(self.groups.items())}
        if self.mode == "mixed" and len(self.size_groups) > 1:
            chunks = self._sized_mixed_chunks(rng, walks)
        elif self.mode == "mixed":
            slots = self._task_sequence(rng, self.num_batches * self.batch_size)
            indices = [walks[t].take(1)[0] for t in slots]
            chunks = [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        else:
            chunks = [walks[t].take(self.batch_size) for t in self._task_sequence(rng, self.num_batches)]
        # One augmentation seed per sample drawn: independent of workers and ranks.
        seeds = rng.integers(0, 2**31 - 1, size=(len(chunks), self.batch_size))
        return [[(i, int(s)) for i, s in zip(chunk, row)] for chunk, row in zip(chunks, seeds)]

    def _sized_mixed_chunks(self, rng: np.random.Generator, walks: Mapping[str, _Walk]) -> list[list[int]]:
        """Mixed batches of one input size each (see the module docstring)."""
        shares = {size: sum(self.weights[t] for t in tasks) for size, tasks in self.size_groups.items()}
        batches_of = quotas(shares, self.num_batches)
        chunks: list[list[int]] = []
        for size, tasks in self.size_groups.items():
            slots_of = quotas({t: self.weights[t] / shares[size] for t in tasks}, batches_of[size] * self.batch_size)
            seq = [t for t in tasks for _ in range(slots_of[t])]
            indices = [walks[seq[i]].take(1)[0] for i in rng.permutation(len(seq))]
            chunks += [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        return [chunks[i] for i in rng.permutation(len(chunks))]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches = self.global_batches()
        mine = batches[self.rank :: self.world_size][: len(self)]
        return iter(mine)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "seed": self.seed, "num_batches": self.num_batches}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.epoch = int(state["epoch"])
