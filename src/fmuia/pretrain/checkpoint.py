"""The checkpoint of a pretraining run, ``RUN/last/``, from which ``--resume`` continues.

Three files, published as one unit (``fmuia.io.atomic.publish_folder``: a crash leaves the
old folder or the new one, never a mix):

* ``weights.safetensors``: the whole SimCLR model (encoder and projection head);
* ``training_state.pt``: optimiser, scheduler, scaler, RNG states, epoch, step and the
  metric history; tensors and plain values only, read with ``torch.load(...,
  weights_only=True)``;
* ``checkpoint.json``: the SHA-256 of both, the epoch and the resolved config.

Reading checks both files against the record, so a resume never continues from
weights of one save and a state of another.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any, Mapping

import torch
from safetensors.torch import save as dump_safetensors
from torch import nn

from fmuia.errors import CheckpointError
from fmuia.io.atomic import publish_folder, write_bytes, write_json

__all__ = ["RECORD_NAME", "STATE_NAME", "WEIGHTS_NAME", "read_pretraining_checkpoint", "save_pretraining_checkpoint"]

WEIGHTS_NAME = "weights.safetensors"
STATE_NAME = "training_state.pt"
RECORD_NAME = "checkpoint.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_pretraining_checkpoint(folder: str, model: nn.Module, state: Mapping[str, Any],
                                config: Mapping[str, Any]) -> None:
    """Write ``model``'s weights, the training ``state`` (``epoch``, ``step``, ...) and
    their record into ``folder``, replacing it as one unit."""
    weights = dump_safetensors({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    buffer = io.BytesIO()
    torch.save({"format": "fmuia-pretraining-state", **state}, buffer)
    state_bytes = buffer.getvalue()
    record = {"format": "fmuia-pretraining-checkpoint", "epoch": state["epoch"], "step": state["step"],
              "weights_sha256": _sha256(weights), "training_state_sha256": _sha256(state_bytes),
              "config": dict(config)}
    with publish_folder(folder) as staging:
        write_bytes(staging / WEIGHTS_NAME, weights)
        write_bytes(staging / STATE_NAME, state_bytes)
        write_json(staging / RECORD_NAME, record)


def read_pretraining_checkpoint(folder: str) -> tuple[bytes, dict[str, Any]]:
    """(weights as safetensors bytes, training state) of ``folder``, both checked against
    the record's SHA-256; ``CheckpointError`` naming the file otherwise."""
    record_path = os.path.join(folder, RECORD_NAME)
    try:
        with open(record_path, encoding="utf-8") as fh:
            record = json.load(fh)
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {RECORD_NAME} (not the 'last' folder of a pretraining run)") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{record_path}: unreadable: {exc}") from None
    contents = {}
    for name, key in ((WEIGHTS_NAME, "weights_sha256"), (STATE_NAME, "training_state_sha256")):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as fh:
                contents[name] = fh.read()
        except OSError as exc:
            raise CheckpointError(f"{path}: unreadable: {exc.strerror}") from None
        if _sha256(contents[name]) != record.get(key):
            raise CheckpointError(f"{path}: SHA-256 differs from {key} in {RECORD_NAME} (changed, corrupt or from "
                                  "another save)")
    try:
        state = torch.load(io.BytesIO(contents[STATE_NAME]), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt bytes, or objects that are not weights-only loadable
        raise CheckpointError(f"{os.path.join(folder, STATE_NAME)}: unreadable training state: {exc}") from None
    if int(state.get("epoch", -1)) != int(record.get("epoch", -2)):
        raise CheckpointError(f"{folder}: {RECORD_NAME} and {STATE_NAME} disagree on the epoch")
    return contents[WEIGHTS_NAME], state
