"""Datasets and loaders of a training run: reading the roots, the validation split,
per-task transforms, the task sampler and worker settings.

Validation split (``data.val_split``, when no validation root is given): ``per_task``
(default) holds out ``data.val_fraction`` of each task (``stratified_split``); ``random``
holds out that fraction of all rows at once, drawn with the run seed, as the official
code does (``random_split``): a task's share then varies, and a small task may get no
validation row. A task left with no training row is a ``DataError`` naming it rather
than a split quietly altered.

Augmentation (``augment.seeded``): true (default) reseeds each sample's pipeline from
the sampler's per-sample seed, so runs repeat exactly; false leaves albumentations its
own unseeded random state, as the official code does (see ``TrainSet``), and two runs
with one seed then differ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from fmuia.config import AugmentConfig, DataConfig, SamplerConfig
from fmuia.data.cache import SampleCache
from fmuia.data.torch_datasets import EvalSet, TrainSet, collate, seed_worker
from fmuia.data.dataset import FMUIADataset
from fmuia.data.layout import Layout, read_layout
from fmuia.data.validate import validate
from fmuia.data.samplers import TaskBatchSampler
from fmuia.data.transforms import build_eval_transform, build_train_transform, policy_for
from fmuia.errors import ConfigError, DataError
from fmuia.runtime import training_workers

__all__ = ["RunData", "RunDatasets", "build_data", "check_data", "random_split", "read_datasets", "stratified_split"]


def stratified_split(groups: Mapping[str, list[int]], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) indices: ``round(fraction * n)`` of each task's samples for validation,
    at least one when the task has two or more and ``fraction`` > 0."""
    rng = np.random.default_rng([seed, 7])
    train, val = [], []
    for ix in groups.values():
        ix = list(ix)
        n_val = int(round(fraction * len(ix)))
        if fraction > 0 and len(ix) >= 2:
            n_val = min(max(n_val, 1), len(ix) - 1)
        order = rng.permutation(len(ix))
        val += sorted(ix[i] for i in order[:n_val])
        train += sorted(ix[i] for i in order[n_val:])
    return sorted(train), sorted(val)


def random_split(groups: Mapping[str, list[int]], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) indices: ``round(fraction * n)`` of all ``n`` samples for validation,
    drawn at once whatever their task (the official code's split). A task whose every
    sample is drawn is a ``DataError`` naming it."""
    rng = np.random.default_rng([seed, 8])
    pooled = sorted(i for ix in groups.values() for i in ix)
    n_val = int(round(fraction * len(pooled)))
    order = rng.permutation(len(pooled))
    val = sorted(pooled[i] for i in order[:n_val])
    held = set(val)
    empty = [task for task, ix in groups.items() if ix and all(i in held for i in ix)]
    if empty:
        raise DataError(f"data.val_split: random: the validation draw (data.val_fraction={fraction}, seed {seed}) "
                        f"took every sample of task(s) {', '.join(empty)}, leaving none to train on; use "
                        f"data.val_split=per_task, a smaller data.val_fraction or another seed")
    return sorted(set(pooled) - held), val


_SPLITS = {"per_task": stratified_split, "random": random_split}


def _only_tasks(layout: Layout, tasks: list[str] | None) -> Layout:
    """The layout restricted to the rows (and row problems) of the chosen tasks."""
    if tasks is None:
        return layout
    wanted = set(tasks)
    problems = [p for p in layout.problems if p.task_id is None or p.task_id in wanted]
    entries = [e for e in layout.entries if e.task_id in wanted]
    return Layout(layout.root, entries, layout.registry, problems, layout.csv_files)


def check_data(data: DataConfig, data_root: str, val_root: str | None = None, workers: int | None = None) -> None:
    """Check the training (and validation) roots at the level ``data.check`` names, as
    ``fmuia validate`` does, before a run writes anything or takes a step.

    Every problem of both roots is listed in one ``DataError`` (CSV file and line or
    file, and the reason). ``header`` reads file headers only: on 40k images it costs
    a fraction of decoding them; ``full`` decodes every image and mask; ``none`` skips
    the check, and a bad file then stops the run when a loader reads it.
    """
    if data.check == "none":
        return
    level = "full" if data.check == "full" else "header"
    train_layout = read_layout(data_root)
    reports = [("training data", validate(data_root, require_labels=True, workers=workers, level=level,
                                          layout=_only_tasks(train_layout, data.tasks)))]
    if val_root:
        val_layout = read_layout(val_root, train_layout.registry)
        reports.append(("validation data", validate(val_root, require_labels=True, workers=workers, level=level,
                                                    layout=_only_tasks(val_layout, data.tasks))))
    bad = [(what, r) for what, r in reports if not r.ok]
    if not bad:
        return
    total = sum(len(r.problems) for _, r in bad)
    parts = [f"data check ({data.check}) found {total} problem(s); training did not start and nothing was written "
             f"(fix them, or list them with 'fmuia validate --require-labels'):"]
    for what, r in bad:
        parts.append(f"{what} {r.root}: {len(r.problems)} problem(s)")
        parts.extend(f"  {p}" for p in r.problems)
    raise DataError("\n".join(parts))


def _require_labels(dataset: FMUIADataset, what: str) -> None:
    missing = [e for e in dataset.entries if not e.labelled]
    if missing:
        shown = "; ".join(f"{e.where} (task {e.task_id})" for e in missing[:5])
        raise DataError(f"{what} {dataset.root}: {len(missing)} row(s) without a label, e.g. {shown}")


def _eval_batches(groups: Mapping[str, list[int]], batch_size: int) -> list[list[int]]:
    """One task per validation batch, in registry order."""
    return [ix[i : i + batch_size] for ix in groups.values() for i in range(0, len(ix), batch_size)]


@dataclass
class RunDatasets:
    """The training and validation datasets of a run; ``registry``: the tasks the model
    is built for (those of the training root, or ``data.tasks``)."""

    full: FMUIADataset
    train: FMUIADataset
    val: FMUIADataset | None

    @property
    def registry(self):
        return self.full.registry


@dataclass
class RunData:
    train: FMUIADataset
    val: FMUIADataset | None
    sampler: TaskBatchSampler
    train_loader: DataLoader
    val_loader: DataLoader | None
    generator: torch.Generator

    @property
    def registry(self):
        return self.train.registry


def read_datasets(data: DataConfig, data_root: str, val_root: str | None, seed: int) -> RunDatasets:
    """The datasets of a run from the ``data`` section: the validation root, or the
    ``data.val_split`` of the training root drawn with the run's ``seed``."""
    full = FMUIADataset(data_root, tasks=data.tasks)
    _require_labels(full, "training data")
    if val_root:
        train_set = full
        val_set = FMUIADataset(val_root, registry=full.registry)
        unknown = sorted(set(val_set.registry.task_ids) - set(full.registry.task_ids))
        if unknown and data.tasks is None:
            raise DataError(f"validation data {val_root}: task(s) not in the training data: {', '.join(unknown)}")
        if unknown:  # training on chosen tasks: validate on those
            val_set = FMUIADataset(val_root, registry=full.registry, tasks=[t for t in val_set.registry.task_ids if t in full.registry])
        _require_labels(val_set, "validation data")
    elif data.val_fraction > 0:
        train_ix, val_ix = _SPLITS[data.val_split](full.indices_by_task(), data.val_fraction, seed)
        train_set, val_set = full.subset(train_ix), full.subset(val_ix)
    else:
        train_set, val_set = full, None
    if not train_set.entries:
        raise DataError(f"{data_root}: no training samples")
    return RunDatasets(full, train_set, val_set)


def build_data(
    data: DataConfig, sampler: SamplerConfig, augment: AugmentConfig, datasets: RunDatasets, *,
    input_sizes: Mapping[str, int], batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
    local_world_size: int = 1, device_type: str = "cpu",
) -> RunData:
    """The loaders of a run over ``datasets`` (``read_datasets``) from the ``data``,
    ``sampler`` and ``augment`` sections. ``input_sizes``: each task's input side, the
    model's (``MultiTaskModel.input_sizes``); ``batch_size`` the training batch, ``seed``
    the run's seed (batch order)."""
    registry = datasets.registry
    missing = [t.task_id for t in registry if t.task_id not in input_sizes]
    if missing:
        raise ConfigError(f"the model has no input size for task(s) {', '.join(missing)} of the data")
    sizes = {t.task_id: int(input_sizes[t.task_id]) for t in registry}
    train_set, val_set = datasets.train, datasets.val
    # Every task's side is in ``sizes``; the cache's default side only names its base folder.
    common_side = max(set(sizes.values()), key=list(sizes.values()).count)
    cache = SampleCache(data.cache_dir, common_side, sizes) if data.cache_dir else None
    policies = {t.task_id: policy_for(t, augment) for t in registry}
    unknown = set(augment.tasks) - set(registry.task_ids)
    if unknown:
        raise ConfigError(f"augment.tasks: unknown task(s) {', '.join(sorted(unknown))}")
    transforms = {t.task_id: build_train_transform(sizes[t.task_id], t, policies[t.task_id]) for t in registry}
    batches = TaskBatchSampler(
        {t: ix for t, ix in train_set.indices_by_task().items()},
        batch_size=int(batch_size),
        mode=sampler.mode,
        weighting=sampler.weighting,
        temperature=float(sampler.temperature),
        num_batches=sampler.batches_per_epoch,
        seed=int(seed),
        rank=rank,
        world_size=world_size,
        sizes=sizes,
    )
    workers = data.num_workers if data.num_workers is not None else training_workers(local_world_size, device_type)
    pin_memory = device_type == "cuda"
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    common = {"num_workers": workers, "collate_fn": collate, "pin_memory": pin_memory, "worker_init_fn": seed_worker,
              "persistent_workers": workers > 0}
    if workers > 0:
        common["prefetch_factor"] = 2
    train_loader = DataLoader(TrainSet(train_set, transforms, cache, seeded=augment.seeded), batch_sampler=batches,
                              generator=generator, **common)
    val_loader = None
    if val_set is not None and val_set.entries:
        val_bs = int(data.val_batch_size or batch_size)
        eval_transforms = {size: build_eval_transform(size) for size in set(sizes.values())}
        val_loader = DataLoader(EvalSet(val_set, {t: eval_transforms[s] for t, s in sizes.items()}, cache),
                                batch_sampler=_eval_batches(val_set.indices_by_task(), val_bs), **common)
    return RunData(train_set, val_set, batches, train_loader, val_loader, generator)
