"""The training state next to a checkpoint: everything a resumed run needs beyond the weights.

Saved by ``fmuia.model.save_checkpoint(..., training_state=...)`` inside the run's
``last`` checkpoint folder, covered by its hash, and published with it as one unit.
One ``torch.save`` of a dict holding only tensors and plain Python values (numbers,
strings, lists, dicts), so that it loads with ``torch.load(..., weights_only=True)``:
the optimiser and scheduler state, the sampler position, every RNG state (torch CPU and
CUDA, numpy, Python), the epoch and step, the best score so far and the metric history.
"""
from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch

from fmuia.errors import CheckpointError
from fmuia.model.checkpoint import STATE_NAME, CheckpointFiles, open_checkpoint

__all__ = ["STATE_NAME", "capture_rng", "load_state", "read_state", "restore_rng"]


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


def read_state(files: CheckpointFiles) -> dict[str, Any]:
    """The training state of a checkpoint opened with ``open_checkpoint(..., training_state=True)``,
    loaded from the bytes that were checked against the sidecar."""
    if files.state is None:
        raise CheckpointError(f"{files.sidecar_path.parent}: no {STATE_NAME} was read with this checkpoint")
    try:
        return torch.load(io.BytesIO(files.state), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or an object that is not weights-only loadable
        raise CheckpointError(f"{files.state_path}: unreadable training state: {exc}") from None


def load_state(folder: str) -> dict[str, Any]:
    """The training state of the checkpoint folder ``folder``, after checking the whole
    checkpoint (weights, sidecar, state) against the sidecar's hashes."""
    return read_state(open_checkpoint(folder, training_state=True))
