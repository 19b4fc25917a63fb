"""Checkpoints: weights as safetensors plus a JSON sidecar that is enough to rebuild the model.

Layout: ``<dir>/model.safetensors`` + ``<dir>/model.json`` (``path`` a folder), or
``<name>.safetensors`` + ``<name>.json`` (``path`` a ``.safetensors`` file). The sidecar
holds the task registry, the model config, versions, the training config if any, free
extra metadata and the weights' SHA-256. Both files are written atomically.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import timm
import torch
from safetensors.torch import load_file, save_file

from fmuia import __version__
from fmuia.errors import CheckpointError, ConfigError
from fmuia.model.config import ModelConfig
from fmuia.model.network import MultiTaskModel
from fmuia.tasks import TaskRegistry

FORMAT = "fmuia-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"


def checkpoint_paths(path: "str | os.PathLike[str]") -> tuple[Path, Path]:
    """(weights file, sidecar file) for a checkpoint folder, weights file or sidecar file."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix(".safetensors"), path.with_suffix(".json")
    return path / WEIGHTS_NAME, path / Path(WEIGHTS_NAME).with_suffix(".json")


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    model: MultiTaskModel,
    path: "str | os.PathLike[str]",
    *,
    training_config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``path`` (folder or ``.safetensors`` file); returns the weights path."""
    weights_path, meta_path = checkpoint_paths(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _atomic_write(weights_path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fmuia_version": __version__,
        "torch_version": torch.__version__,
        "timm_version": timm.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "weights": weights_path.name,
        "weights_sha256": _sha256(weights_path),
        "registry": model.registry.to_list(),
        "model_config": model.config.to_dict(),
        "training_config": dict(training_config) if training_config is not None else None,
        "extra": dict(extra or {}),
    }
    text = json.dumps(meta, indent=2, default=str)
    _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    return weights_path


def read_checkpoint_meta(path: "str | os.PathLike[str]") -> dict[str, Any]:
    """The sidecar of a checkpoint (folder, weights file or sidecar path)."""
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
    naming the differing tasks). ``verify`` checks the weights' SHA-256."""
    weights_path, meta_path = checkpoint_paths(path)
    meta = read_checkpoint_meta(path)
    if not weights_path.is_file():
        raise CheckpointError(f"{path}: weights file {weights_path} is missing")
    if verify and meta.get("weights_sha256") and _sha256(weights_path) != meta["weights_sha256"]:
        raise CheckpointError(f"{weights_path}: SHA-256 differs from the one in {meta_path.name} (file changed or corrupt)")
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
        state = load_file(str(weights_path), device="cpu")
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
