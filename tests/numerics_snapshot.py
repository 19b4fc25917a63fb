"""Stored numbers of a tiny seeded network, so that a change in numerics fails a test.

For each recipe (the faithful tests/snapshots/seed_faithful.yaml and the improved
tests/snapshots/seed_improved.yaml, frozen copies so that the shipped configs may evolve
without moving these numbers; on a small network: resnet18 without pretrained weights, 64 px)
the network is built from a fixed seed for all 27 tasks and run on a fixed seeded batch
of two images per task. Stored: every task's raw output, its decoded prediction
(segmentation also as the class map), and one training step exactly as the trainer
takes it (losses per task before the update, the gradient norm before clipping, the
losses per task after the update).

Large segmentation tensors are stored on a strided grid (every 4th pixel of the raw
logits, every 8th of the probabilities): any change of weights, layers or operations
moves those samples as well, and the file stays small.

Tolerance (``RTOL`` 1e-4 relative plus ``ATOL`` 1e-5): the same code with another
thread count or CPU changes float32 results by a few 1e-6 (other kernels, other
summation order; measured: at most 3e-6 with 2 or 4 threads against the 1-thread
snapshot); a change of initialisation, layer, loss or optimiser moves them by far more
(a detection box weight of 8.001 instead of 8 already fails). Class maps are
argmaxes, which can flip where two logits are within that noise: at most
``MASK_FLIPS`` of a task's pixels may differ.

Regenerate deliberately, after a change that is meant to move the numbers:

    PYTHONPATH=src python tests/numerics_snapshot.py
    pytest tests/test_numerics_snapshot.py --update-snapshots
"""
from __future__ import annotations

import io
import os
import sys
from typing import Any

import numpy as np
import torch

from fmuia.io.atomic import write_bytes
from fmuia.config import load_config, merge
from fmuia.model import build_model
from fmuia.model.routing import group_indices
from fmuia.tasks import Kind, Task, fmuia2026
from fmuia.train.losses import TaskLoss
from fmuia.train.optim import build_optimizer, build_scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAPSHOT = os.path.join(ROOT, "tests", "snapshots", "numerics.npz")
RECIPES = {
    "faithful": os.path.join(ROOT, "tests", "snapshots", "seed_faithful.yaml"),
    "improved": os.path.join(ROOT, "tests", "snapshots", "seed_improved.yaml"),
}
SMALL_MODEL = {"encoder": "resnet18", "pretrained": "none", "image_size": 64, "decoder_channels": 32,
               "decoder_out_channels": 32, "channels_last": False}
SEED = 2026
PER_TASK = 2
RTOL, ATOL = 1e-4, 1e-5
MASK_FLIPS = 1e-3
RAW_STRIDE, PROB_STRIDE = 4, 8

__all__ = ["ATOL", "MASK_FLIPS", "RTOL", "SNAPSHOT", "compute", "load", "save"]


def _recipe(name: str) -> dict[str, Any]:
    return load_config(merge(load_config(RECIPES[name]), {"model": SMALL_MODEL}))


def _batch(tasks: list[Task], size: int) -> tuple[torch.Tensor, list[str], dict[str, list[torch.Tensor]]]:
    """Images (B, 3, S, S), their task ids (tasks interleaved, each twice) and per-sample
    targets in the model's frame, all from one seeded generator."""
    rng = np.random.default_rng(SEED)
    task_ids = [t.task_id for t in tasks] + [t.task_id for t in reversed(tasks)]
    images = torch.from_numpy(rng.standard_normal((len(task_ids), 3, size, size), dtype=np.float32))
    by_id = {t.task_id: t for t in tasks}
    targets: list[torch.Tensor] = []
    for task_id in task_ids:
        task = by_id[task_id]
        if task.kind is Kind.SEGMENTATION:  # blocks of 8x8 pixels of one class
            coarse = rng.integers(0, task.n, (size // 8, size // 8))
            targets.append(torch.from_numpy(np.kron(coarse, np.ones((8, 8), np.int64))))
        elif task.kind is Kind.CLASSIFICATION:
            targets.append(torch.tensor(int(rng.integers(0, task.n))))
        elif task.kind is Kind.DETECTION:
            x1, y1 = rng.uniform(0.05, 0.45, 2)
            w, h = rng.uniform(0.2, 0.5, 2)
            targets.append(torch.tensor([x1, y1, x1 + w, y1 + h], dtype=torch.float32))
        else:
            targets.append(torch.from_numpy(rng.uniform(0.1, 0.9, (task.n, 2)).astype(np.float32)))
    return images, task_ids, targets


def _stacked(targets: list[torch.Tensor], task_ids: list[str]) -> dict[str, torch.Tensor]:
    return {t: torch.stack([targets[i] for i in rows]) for t, rows in group_indices(task_ids).items()}


def _recipe_numbers(name: str) -> dict[str, np.ndarray]:
    config = _recipe(name)
    registry = fmuia2026()
    torch.manual_seed(SEED)
    model = build_model(config.model, registry)
    images, task_ids, targets = _batch(list(registry), int(config.model.image_size))
    out: dict[str, np.ndarray] = {f"{name}/input_sum": np.array(float(images.double().sum()))}

    model.eval()
    with torch.no_grad():
        raw = model(images, task_ids)
        decoded = model.decode(raw)
    for task in registry:
        r, d = raw[task.task_id].numpy(), decoded[task.task_id].numpy()
        if task.kind is Kind.SEGMENTATION:
            out[f"{name}/mask/{task.task_id}"] = d.argmax(axis=1).astype(np.uint8)
            r, d = r[..., ::RAW_STRIDE, ::RAW_STRIDE], d[..., ::PROB_STRIDE, ::PROB_STRIDE]
        out[f"{name}/raw/{task.task_id}"] = np.ascontiguousarray(r)
        out[f"{name}/decoded/{task.task_id}"] = np.ascontiguousarray(d)

    # One training step as the trainer takes it (fp32): loss, backward, clip, AdamW, schedule.
    model.train()
    loss_fn = TaskLoss(registry, model.head_types, config.loss)
    optimizer = build_optimizer(model, config.optim)
    scheduler = build_scheduler(optimizer, config.schedule, 10)
    stacked = _stacked(targets, task_ids)
    torch.manual_seed(SEED)  # dropout
    loss, per_task = loss_fn(model(images, task_ids), stacked)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float(config.train.grad_clip))
    optimizer.step()
    scheduler.step()
    torch.manual_seed(SEED)
    with torch.no_grad():
        loss_after, per_task_after = loss_fn(model(images, task_ids), stacked)
    out[f"{name}/step/loss"] = np.array(float(loss.detach()))
    out[f"{name}/step/grad_norm"] = np.array(float(norm))
    out[f"{name}/step/loss_after"] = np.array(float(loss_after))
    for task_id in per_task:
        out[f"{name}/step/loss/{task_id}"] = np.array(float(per_task[task_id].detach()))
        out[f"{name}/step/loss_after/{task_id}"] = np.array(float(per_task_after[task_id]))
    return out


def compute() -> dict[str, np.ndarray]:
    """The numbers of every recipe, computed now from the seed (single-threaded)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out: dict[str, np.ndarray] = {}
        for name in RECIPES:
            out.update(_recipe_numbers(name))
        return out
    finally:
        torch.set_num_threads(threads)


def save(numbers: dict[str, np.ndarray], path: str = SNAPSHOT) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **numbers)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_bytes(path, buffer.getvalue())


def load(path: str = SNAPSHOT) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {key: stored[key] for key in stored.files}


if __name__ == "__main__":
    save(compute())
    print(f"wrote {SNAPSHOT} ({os.path.getsize(SNAPSHOT) / 1024:.0f} KiB)", file=sys.stderr)
