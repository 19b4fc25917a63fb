"""The ``predict:`` section: settings that change prediction only, never training.

It travels with the checkpoint (the sidecar's ``predict_config``) and with exported ONNX
graphs, so ``fmuia predict`` and submissions use it by default; command-line flags
(``--tta/--no-tta``, ``--box-voting/--no-box-voting``, ``--batch-size``, ``--backend``,
``--precision``) override it. Configs and checkpoints written before the section existed
carried ``model.tta`` and ``model.box_voting``; ``migrate_model_keys`` moves them here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from fmuia.config.schema import Section, key

__all__ = ["MOVED_TO_PREDICT", "PredictConfig", "migrate_model_keys", "saved_settings"]

log = logging.getLogger(__name__)

# Keys that sat under model: before the predict: section existed.
MOVED_TO_PREDICT = ("tta", "box_voting")


@dataclass
class PredictConfig(Section):
    """Prediction-only settings, saved with the checkpoint and overridden by the flags of ``fmuia predict``."""

    path: ClassVar[str] = "predict"

    tta: bool = key(False, "average a horizontally flipped view in, for every task whose label survives a flip")
    box_voting: bool = key(False, "centre-map detection heads: the box is the score-weighted mean of the boxes of the "
                                  "cells around the peak, not the peak cell's alone")
    batch_size: int = key(8, "images per forward pass of fmuia predict (a batch may mix tasks)", ge=1)
    backend: str = key("torch", "runtime: torch, onnxruntime (an exported graph) or openvino",
                       choices=("torch", "onnxruntime", "openvino"))
    precision: str = key("fp32", "arithmetic of the exported backends: fp32, or int8 (a quantised graph)",
                         choices=("fp32", "int8"))


def migrate_model_keys(data: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """``data`` (a whole config mapping) with ``model.tta``/``model.box_voting`` moved to
    ``predict:`` (a value already under ``predict:`` wins), and one log note saying so."""
    model, predict = data.get("model"), data.get("predict", {})
    if not isinstance(model, Mapping) or not isinstance(predict, Mapping) or not any(k in model for k in MOVED_TO_PREDICT):
        return dict(data)  # nothing to move, or a malformed section the checks will name
    moved = {k: model[k] for k in MOVED_TO_PREDICT if k in model}
    out = {**data, "model": {k: v for k, v in model.items() if k not in MOVED_TO_PREDICT}, "predict": {**moved, **predict}}
    names = ", ".join(f"model.{k}" for k in moved)
    log.warning("%s: %s moved to the predict: section; read as %s (write them there to silence this note)",
                where, names, ", ".join(f"predict.{k}" for k in moved))
    return out


def saved_settings(model_config: Mapping[str, Any], predict_config: "Mapping[str, Any] | None",
                   where: str) -> tuple[dict[str, Any], PredictConfig]:
    """(the model keys, the prediction settings) a checkpoint sidecar or ONNX graph saved;
    one written before the ``predict:`` section kept ``tta``/``box_voting`` with the model's."""
    data = migrate_model_keys({"model": model_config, "predict": predict_config or {}}, where)
    return dict(data["model"]), PredictConfig.from_dict(data["predict"])
