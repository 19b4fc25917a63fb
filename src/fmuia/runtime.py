"""Where and how the network runs: the device, the numeric precision (autocast), and
how many DataLoader workers feed it. Training and prediction both use these."""
from __future__ import annotations

import contextlib
import functools
import os

import torch

from fmuia.config.schema import PRECISIONS
from fmuia.errors import ConfigError

__all__ = [
    "PRECISIONS", "autocast", "cpu_has_fast_bf16", "resolve_device", "resolve_precision",
    "training_precision", "training_workers",
]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: "str | torch.device | None", local_rank: int | None = None) -> torch.device:
    """``auto``/None: CUDA when available, else CPU. ``local_rank`` (one process per GPU)
    picks ``cuda:<local_rank>`` for ``auto`` and for a CUDA device named without an index.
    A CUDA device asked for on a machine without CUDA is a ``ConfigError``."""
    if name is None or name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda") if local_rank is None else torch.device(f"cuda:{local_rank}")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(name)!r} requested but no CUDA device is available (use device cpu or auto)")
        if device.index is None and local_rank is not None:
            device = torch.device(f"cuda:{local_rank}")
    return device


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), not by emulation."""
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: "torch.device | str" = "cpu") -> str:
    """Turn ``auto`` into a concrete precision for ``device``: bf16 where the hardware
    computes it natively (CUDA with bf16 support, CPUs with AVX512-BF16/AMX), else fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def training_precision(name: str, device: torch.device) -> str:
    """``auto``: bf16 on GPUs that have it (fp16 with a GradScaler on older ones), fp32 on
    CPUs. Unlike inference, CPU training gains nothing reliable from bf16 autocast even
    with AVX512-BF16: the backward pass is no faster (benchmarks/train_step.py)."""
    if name == "auto" and device.type != "cuda":
        return "fp32"
    return resolve_precision(name, device)


def autocast(precision: str, device: "torch.device | str" = "cpu"):
    """A context manager running the model in ``precision`` (``auto`` resolved for ``device``)."""
    device = torch.device(device)
    resolved = resolve_precision(precision, device)
    if resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[resolved])


def training_workers(local_world_size: int = 1, device_type: str = "cuda") -> int:
    """Training loader workers per process.

    GPU: the cores this process may use, minus one for the training loop, at most 8
    (more rarely helps and costs memory). CPU: none. The model's own OpenMP threads
    already use every core, and a loader process beside them makes the threads
    spin-wait for one another whenever it is scheduled: on two cores a step became
    several times slower. Loading in the training process (plus ``data.cache_dir``)
    is faster there."""
    if device_type != "cuda":
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(cores // max(1, local_world_size) - 1, 8))
