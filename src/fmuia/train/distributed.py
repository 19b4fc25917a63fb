"""Several processes (torchrun): process group set-up and the few collectives the trainer needs.

Launched by ``torchrun``, a process finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its
environment; the backend is NCCL on GPUs and gloo on CPUs. Without them everything here
is a single-process no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist

__all__ = ["Dist", "init"]


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    owns_group: bool = False  # this code created the process group (and destroys it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Each parameter's gradient averaged over the ranks (sum / world size), for
        parameters outside the DDP-wrapped model, on the terms DDP gives the model's: a rank
        without a gradient adds zero, and a parameter none of the ranks has a gradient for
        keeps ``None`` (the optimiser skips it, as in a single process). Every rank must
        call this with the same parameters; one collective for all of them."""
        params = list(params)
        if not self.enabled or not params:
            return
        grads = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device, dtype=p.dtype)
                 for p in params]
        used = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device, dtype=params[0].dtype)
        flat = torch.cat(grads + [used])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p, anywhere in zip(params, flat[-len(params):].tolist()):
            mean = flat[offset:offset + p.numel()].view_as(p) / self.world_size
            offset += p.numel()
            p.grad = mean.clone() if anywhere else None

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm statistics) on every rank: DDP syncs them at the
        start of each forward, so after the last step each rank still holds its own."""
        if self.enabled:
            for buf in module.buffers():
                dist.broadcast(buf, src=0)

    def broadcast_object(self, value):
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def is_first_process() -> bool:
    """Rank 0 of a torchrun launch, or a single process: the one that writes files
    (known before the process group is joined)."""
    return int(os.environ.get("RANK", "0")) == 0


def init(device_type: str) -> Dist:
    """Join the process group named by torchrun's environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        owns = True
    return Dist(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world, owns_group=owns)
