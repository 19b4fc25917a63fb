"""Checkpoints: weights as safetensors plus a JSON sidecar that is enough to rebuild the model.

Layout (the file names are defined here only): a checkpoint folder holds
``model.safetensors`` (weights), ``model.json`` (sidecar) and, for the ``last``
checkpoint of a training run, ``training_state.pt``; a file checkpoint (``path`` a
``.safetensors`` or ``.json`` file) is ``<name>.safetensors`` + ``<name>.json``.

The sidecar holds the task registry, the model config, versions, the training config if
any, free extra metadata, the SHA-256 of the weights (and of the training state when
there is one), ``field_sha256`` (the SHA-256 of the canonical JSON of each of its other
fields) and ``checkpoint_sha256`` (the SHA-256 of the canonical JSON of
``field_sha256``). So one value covers the weights, the training state and every sidecar
field, and a mismatch names the field; loading and resuming refuse any mismatch.

A folder checkpoint is written into a staging folder and published as one unit
(``fmuia.io.atomic.publish_folder``): a crash at any instant leaves the old or the new
checkpoint, never weights of one save beside the sidecar or state of another. A
publish interrupted between its two renames leaves the old folder aside under a hidden
name; loading finds it there and the next save puts it back. The two files of a file
checkpoint are written one after the other, each atomically; a crash between them is
caught by the hash.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import timm
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as dump_safetensors

from fmuia._version import __version__
from fmuia.errors import CheckpointError, ConfigError
from fmuia.io.atomic import find_folder, publish_folder, write_bytes, write_json
from fmuia.model.config import ModelConfig
from fmuia.model.network import MultiTaskModel
from fmuia.tasks import TaskRegistry

FORMAT = "fmuia-checkpoint"
FORMAT_VERSION = 2  # 2: checkpoint_sha256 over weights, training state and sidecar fields
WEIGHTS_NAME = "model.safetensors"
SIDECAR_NAME = "model.json"
STATE_NAME = "training_state.pt"
CHECKPOINT_FILES = (WEIGHTS_NAME, SIDECAR_NAME, STATE_NAME)

CHECKPOINT_HASH = "checkpoint_sha256"
FIELD_HASHES = "field_sha256"
WEIGHTS_HASH = "weights_sha256"
STATE_HASH = "training_state_sha256"


def _is_file_checkpoint(path: Path) -> bool:
    return path.suffix in (".safetensors", ".json")


def checkpoint_paths(path: "str | os.PathLike[str]") -> tuple[Path, Path]:
    """(weights file, sidecar file) for a checkpoint folder, weights file or sidecar file.

    A folder whose last save was interrupted between its two renames is read from the
    complete copy that save left aside (see ``fmuia.io.atomic``)."""
    path = Path(path)
    if _is_file_checkpoint(path):
        return path.with_suffix(".safetensors"), path.with_suffix(".json")
    folder = find_folder(path)
    return folder / WEIGHTS_NAME, folder / SIDECAR_NAME


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


def _seal(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` exactly as it will read back from its JSON file, plus the hash of each
    field and the checkpoint hash over those (so over every field)."""
    plain = json.loads(json.dumps(meta, default=str))
    plain[FIELD_HASHES] = {key: _sha256(_canonical(value)) for key, value in plain.items()}
    plain[CHECKPOINT_HASH] = _sha256(_canonical(plain[FIELD_HASHES]))
    return plain


def _check_sidecar(meta: Mapping[str, Any], meta_path: Path) -> None:
    """Refuse a sidecar without its checkpoint hash or whose fields do not match it."""
    if not isinstance(meta.get(CHECKPOINT_HASH), str):
        raise CheckpointError(
            f"{meta_path}: the sidecar has no {CHECKPOINT_HASH} (format_version {meta.get('format_version')!r}; "
            f"checkpoints written before format_version {FORMAT_VERSION} have none), so its weights and fields "
            "cannot be verified; if you trust it, load it with fmuia.model.load_checkpoint(path, verify=False) "
            "and save it again with fmuia.model.save_checkpoint")
    recorded = meta.get(FIELD_HASHES)
    if not isinstance(recorded, dict) or _sha256(_canonical(recorded)) != meta[CHECKPOINT_HASH]:
        raise CheckpointError(f"{meta_path}: the sidecar's {FIELD_HASHES} does not match its {CHECKPOINT_HASH} "
                              "(edited or corrupt since it was written)")
    body = {key: value for key, value in meta.items() if key not in (FIELD_HASHES, CHECKPOINT_HASH)}
    changed = [key for key in body if key in recorded and recorded[key] != _sha256(_canonical(body[key]))]
    added = [key for key in body if key not in recorded]
    removed = [key for key in recorded if key not in body]
    parts = [f"{label}: {', '.join(keys)}" for label, keys in
             (("changed", changed), ("added", added), ("removed", removed)) if keys]
    if parts:
        raise CheckpointError(f"{meta_path}: the sidecar does not match its {CHECKPOINT_HASH} "
                              f"(edited or corrupt since it was written): fields {'; '.join(parts)}")


def _read_verified(path: Path, expected: Any, field: str, meta_path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file is missing (the sidecar {meta_path.name} lists it with {field})") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable: {exc}") from None
    if expected is not None and _sha256(data) != expected:
        raise CheckpointError(f"{path}: SHA-256 differs from {field} in {meta_path.name} "
                              "(file changed or corrupt, or left from another save)")
    return data


@dataclass(frozen=True)
class CheckpointFiles:
    """The bytes of a checkpoint, read once and (unless unverified) checked against the sidecar."""

    meta: dict[str, Any]
    weights_path: Path
    sidecar_path: Path
    weights: bytes
    state_path: Path | None = None
    state: bytes | None = None


def open_checkpoint(path: "str | os.PathLike[str]", *, training_state: bool = False,
                    verify: bool = True) -> CheckpointFiles:
    """Read a checkpoint's sidecar and weights (and, with ``training_state``, the training
    state of a folder checkpoint) and check them against ``checkpoint_sha256``, the
    weights' and the state's SHA-256. Any mismatch, or a missing hash, is a
    ``CheckpointError`` naming the file and what differs."""
    weights_path, meta_path = checkpoint_paths(path)
    meta = read_checkpoint_meta(path)
    if not weights_path.is_file():
        raise CheckpointError(f"{path}: weights file {weights_path} is missing")
    if verify:
        _check_sidecar(meta, meta_path)
        if not isinstance(meta.get(WEIGHTS_HASH), str):
            raise CheckpointError(f"{meta_path}: the sidecar has no {WEIGHTS_HASH}")
    weights = _read_verified(weights_path, meta.get(WEIGHTS_HASH) if verify else None, WEIGHTS_HASH, meta_path)
    if not training_state:
        return CheckpointFiles(meta, weights_path, meta_path, weights)
    state_path = meta_path.parent / STATE_NAME
    if _is_file_checkpoint(Path(path)) or not state_path.is_file():
        raise CheckpointError(f"{path}: no {STATE_NAME} (is this the 'last' folder of a training run?)")
    if verify and not isinstance(meta.get(STATE_HASH), str):
        raise CheckpointError(f"{state_path}: not part of the checkpoint: {meta_path.name} has no {STATE_HASH} "
                              "(the training state was left from another save)")
    state = _read_verified(state_path, meta.get(STATE_HASH) if verify else None, STATE_HASH, meta_path)
    return CheckpointFiles(meta, weights_path, meta_path, weights, state_path, state)


def _refuse_foreign_files(folder: Path) -> None:
    """A folder checkpoint is replaced as a whole: never throw away files it does not own."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise CheckpointError(f"{folder}: exists and is not a folder")
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in CHECKPOINT_FILES)
        if foreign:
            more = f" ... ({len(foreign)} in all)" if len(foreign) > 5 else ""
            raise CheckpointError(f"{folder}: holds files that are not part of a checkpoint "
                                  f"({', '.join(foreign[:5])}{more}); refusing to replace the folder")


def save_checkpoint(
    model: MultiTaskModel,
    path: "str | os.PathLike[str]",
    *,
    training_config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``path`` (folder or ``.safetensors`` file); returns the weights path.

    A folder is replaced as one unit and must hold nothing but checkpoint files.
    ``training_state`` (folder checkpoints only): a dict of tensors and plain values
    (see ``fmuia.train.state``) saved as ``training_state.pt`` and covered by the hash."""
    path = Path(path)
    as_file = _is_file_checkpoint(path)
    if training_state is not None and as_file:
        raise CheckpointError(f"{path}: a training state is saved only in a checkpoint folder")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights = dump_safetensors(tensors, metadata={"format": "pt"})
    state = None
    if training_state is not None:
        buffer = io.BytesIO()
        torch.save(dict(training_state), buffer)
        state = buffer.getvalue()
    weights_path, meta_path = (path.with_suffix(".safetensors"), path.with_suffix(".json")) if as_file \
        else (path / WEIGHTS_NAME, path / SIDECAR_NAME)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fmuia_version": __version__,
        "torch_version": torch.__version__,
        "timm_version": timm.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "weights": weights_path.name,
        WEIGHTS_HASH: _sha256(weights),
        "registry": model.registry.to_list(),
        "model_config": model.config.to_dict(),
        "training_config": dict(training_config) if training_config is not None else None,
        "extra": dict(extra or {}),
    }
    if state is not None:
        meta[STATE_HASH] = _sha256(state)
    sealed = _seal(meta)
    if as_file:
        write_bytes(weights_path, weights)
        write_json(meta_path, sealed)
        return weights_path
    _refuse_foreign_files(path)
    with publish_folder(path) as staging:
        write_bytes(staging / WEIGHTS_NAME, weights)
        if state is not None:
            write_bytes(staging / STATE_NAME, state)
        write_json(staging / SIDECAR_NAME, sealed)
    return weights_path


def read_checkpoint_meta(path: "str | os.PathLike[str]") -> dict[str, Any]:
    """The sidecar of a checkpoint (folder, weights file or sidecar path), not verified."""
    weights_path, meta_path = checkpoint_paths(path)
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: no checkpoint sidecar {meta_path} (expected {WEIGHTS_NAME} and its .json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{meta_path}: unreadable checkpoint sidecar: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not an fmuia checkpoint sidecar (format != {FORMAT!r})")
    for key in ("registry", "model_config"):
        if key not in meta:
            raise CheckpointError(f"{meta_path}: the sidecar has no {key!r}")
    return meta


def _registry_difference(saved: TaskRegistry, wanted: TaskRegistry) -> str:
    parts = []
    only_saved = [t for t in saved.task_ids if t not in wanted]
    only_wanted = [t for t in wanted.task_ids if t not in saved]
    if only_saved:
        parts.append(f"tasks only in the checkpoint: {', '.join(only_saved)}")
    if only_wanted:
        parts.append(f"tasks not in the checkpoint: {', '.join(only_wanted)}")
    for task in wanted:
        old = saved.get(task.task_id)
        if old is not None and (old.kind, old.n) != (task.kind, task.n):
            parts.append(f"{task.task_id}: checkpoint {old.kind.value} n={old.n}, asked {task.kind.value} n={task.n}")
    if not parts and saved.task_ids != wanted.task_ids:
        parts.append("same tasks in a different order")
    return "; ".join(parts)


def _state_difference(saved: Mapping[str, torch.Tensor], model: MultiTaskModel) -> str:
    expected = model.state_dict()
    parts = []
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
    for label, items in (("missing from the checkpoint", missing), ("unexpected in the checkpoint", unexpected), ("shape differs", shapes)):
        if items:
            more = f" ... ({len(items)} in all)" if len(items) > 6 else ""
            parts.append(f"{label}: {'; '.join(items[:6])}{more}")
    return "; ".join(parts)


def load_checkpoint(
    path: "str | os.PathLike[str]",
    *,
    registry: TaskRegistry | None = None,
    map_location: "str | torch.device" = "cpu",
    verify: bool = True,
) -> MultiTaskModel:
    """Rebuild the model from a checkpoint alone (no pretrained weights are fetched) and
    return it in eval mode, with the sidecar as ``model.checkpoint_meta``.

    ``registry``: when given, it must equal the checkpoint's (else ``CheckpointError``
    naming the differing tasks). ``verify`` checks the weights and every sidecar field
    against the sidecar's hashes (``verify=False`` only to rescue a checkpoint written
    before those hashes existed)."""
    files = open_checkpoint(path, verify=verify)
    meta, weights_path, meta_path = files.meta, files.weights_path, files.sidecar_path
    try:
        saved_registry = TaskRegistry.from_list(meta["registry"])
        config = ModelConfig.from_dict({**meta["model_config"], "pretrained": "none"})
    except (ConfigError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{meta_path}: invalid registry or model config: {exc}") from None
    if registry is not None and registry != saved_registry:
        raise CheckpointError(f"{path}: task registry mismatch: {_registry_difference(saved_registry, registry)}")
    try:
        model = MultiTaskModel(saved_registry, config)
    except ConfigError as exc:
        raise CheckpointError(f"{meta_path}: cannot rebuild the model: {exc}") from None
    try:
        state = load_safetensors(files.weights)
    except Exception as exc:
        raise CheckpointError(f"{weights_path}: unreadable safetensors file: {exc}") from None
    difference = _state_difference(state, model)
    if difference:
        raise CheckpointError(f"{path}: weights do not match the model described by {meta_path.name}: {difference}")
    model.load_state_dict(state, strict=True)
    model.to(map_location)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    model.checkpoint_meta = meta
    return model.eval()
