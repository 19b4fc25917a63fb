"""The training state next to a checkpoint: everything a resumed run needs beyond the weights.

One ``torch.save`` of a dict holding only tensors and plain Python values (numbers,
strings, lists, dicts), so that it loads with ``torch.load(..., weights_only=True)``:
the optimiser and scheduler state, the sampler position, every RNG state (torch CPU and
CUDA, numpy, Python), the epoch and step, the best score so far and the metric history.
"""
from __future__ import annotations

import os
import random
import tempfile
from typing import Any

import numpy as np
import torch

from fmuia.errors import CheckpointError

STATE_NAME = "training_state.pt"

__all__ = ["STATE_NAME", "capture_rng", "load_state", "restore_rng", "save_state"]


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(state: dict[str, Any], folder: str) -> str:
    """Write ``folder/training_state.pt`` atomically."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, STATE_NAME)
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_NAME}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_state(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, STATE_NAME)
    if not os.path.isfile(path):
        raise CheckpointError(f"{folder}: no {STATE_NAME} (is this the 'last' folder of a training run?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or an object that is not weights-only loadable
        raise CheckpointError(f"{path}: unreadable training state: {exc}") from None
