"""An encoder's weights on their own: the output of ``fmuia pretrain`` and one input of
``fmuia finetune``.

A safetensors file holding the state dict of the timm feature extractor that
``fmuia.model.encoder.Encoder`` builds (``Encoder.model``), with exactly its keys
(``conv_stem.weight``, ``blocks.0.0...``), so that ``model.pretrained: FILE`` loads every
tensor (``Encoder._load_local``), and safetensors metadata saying what it is: the format
tag, the timm name (``encoder``) and free provenance (method, epochs, images).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save as dump_safetensors

from fmuia.errors import ConfigError
from fmuia.io.atomic import write_bytes

__all__ = ["ENCODER_FORMAT", "encoder_file_info", "save_encoder"]

ENCODER_FORMAT = "fmuia-encoder"


def save_encoder(encoder: torch.nn.Module, path: "str | os.PathLike[str]", name: str,
                 provenance: Mapping[str, object] | None = None) -> Path:
    """Write the weights of ``encoder`` (an ``Encoder``) to ``path`` atomically.

    Only the timm extractor's tensors are written (a ViT's simple feature pyramid is
    built anew by every model, so it is not part of what pretraining hands on)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"{path}: an encoder file must end in .safetensors")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in encoder.model.state_dict().items()}
    metadata = {"format": ENCODER_FORMAT, "encoder": name,
                **{str(k): str(v) for k, v in (provenance or {}).items()}}
    write_bytes(path, dump_safetensors(tensors, metadata=metadata))
    return path


def encoder_file_info(path: "str | os.PathLike[str]") -> dict[str, str] | None:
    """The metadata of an encoder file written by ``save_encoder``; None for any other
    safetensors file (a plain state dict, which ``model.pretrained`` also accepts)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
    except Exception as exc:  # not a safetensors file, truncated header, ...
        raise ConfigError(f"{path}: not a readable safetensors file: {exc}") from None
    return dict(metadata) if metadata.get("format") == ENCODER_FORMAT else None
