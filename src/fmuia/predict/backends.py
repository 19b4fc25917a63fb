"""Where the network runs: PyTorch, or onnxruntime on an exported graph.

A backend carries the model's task registry, config and ``input_sizes`` (each task's
input side ``S``, as ``MultiTaskModel.input_sizes``). It takes a normalised batch
``(B, 3, S, S)`` and one task id per image and returns each task's raw head output (rows in batch order, as ``MultiTaskModel``
does); ``decode`` turns a task's raw output into normalised predictions with the
task's head. Everything after that is the same for both backends.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
import torch

from fmuia.errors import CheckpointError
from fmuia.config.predict import PredictConfig, saved_settings
from fmuia.model.config import ModelConfig
from fmuia.model.heads import Head, build_head, head_types
from fmuia.model.network import MultiTaskModel, task_input_sizes
import fmuia.predict.onnx_graph as onnx_graph
from fmuia.runtime import autocast, resolve_device, resolve_precision
from fmuia.tasks import TaskRegistry

log = logging.getLogger(__name__)


def inference_precision(requested: str | None, checkpoint_precision: str, device: torch.device) -> str:
    """The precision the torch backend runs in.

    ``requested`` None (the default): fp32 on CPU, so that the same command gives the
    same numbers on every CPU (``auto`` would pick bf16 only where the CPU has
    AVX512-BF16 or AMX); on GPU the checkpoint's precision, ``auto`` giving bf16 (fp16
    without bf16 support). An explicit ``fp32``/``bf16``/``fp16`` is used as is;
    ``auto`` is resolved for ``device`` (CPU-dependent on CPU)."""
    if requested is None:
        return "fp32" if device.type == "cpu" else resolve_precision(checkpoint_precision, device)
    return resolve_precision(requested, device)


class TorchBackend:
    name = "torch"

    def __init__(self, model: MultiTaskModel, device: "str | torch.device | None" = None, precision: str | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.registry: TaskRegistry = model.registry
        self.config: ModelConfig = model.config
        self.input_sizes: dict[str, int] = model.input_sizes  # each task's input side
        self.predict: PredictConfig = model.predict
        self.precision = inference_precision(precision, model.config.precision, self.device)

    def raw(self, images: torch.Tensor, task_ids: Sequence[str]) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), autocast(self.precision, self.device):
            return self.model(images.to(self.device, non_blocking=True), list(task_ids))

    def decode(self, task_id: str, raw: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.head(task_id).decode(raw)

    def set_decoding(self, predict: PredictConfig) -> None:
        """Decode with ``predict``'s settings (the weights stay as they are)."""
        self.predict = predict
        self.model.set_decoding(predict)


class OnnxBackend:
    """onnxruntime on a graph written by ``fmuia.predict.onnx_graph.export_onnx``.

    Decoding uses the heads' ``decode`` (which has no weights), built from the task
    registry and model config stored in the graph's metadata."""

    name = "onnx"

    def __init__(self, path: str, device: "str | torch.device | None" = None, threads: int | None = None) -> None:
        try:
            # onnxruntime is optional: only this backend needs it.
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - optional dependency
            raise CheckpointError("--backend onnx needs onnxruntime (pip install 'fmuia[onnx]')") from None
        self.device = resolve_device(device)
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise CheckpointError("device 'cuda' requested but this onnxruntime has no CUDA provider "
                                      "(install onnxruntime-gpu, or use --device cpu)")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
            meta = onnx_graph.read_onnx_meta(self.session)
            self.registry = TaskRegistry.from_list(meta["registry"])
            model_config, self.predict = saved_settings(meta["model_config"], meta.get("predict_config"), path)
            self.config = ModelConfig.from_saved({**model_config, "pretrained": "none"})
            self.routes: dict[str, str] = dict(meta["routes"])
            # The exported model's input sides; a graph exported without them: the model's rule.
            self.input_sizes: dict[str, int] = ({t: int(side) for t, side in meta["input_sizes"].items()}
                                                if "input_sizes" in meta else task_input_sizes(self.registry, self.config))
        except KeyError:
            raise CheckpointError(f"{path}: not an ONNX file exported by 'fmuia export onnx' (no fmuia metadata)") from None
        except Exception as exc:
            raise CheckpointError(f"{path}: cannot load the ONNX model ({type(exc).__name__}: {exc})") from None
        self.precision = "fp32"
        types = head_types(self.config.heads)
        self._heads: dict[str, Head] = {t.task_id: build_head(t, 1, self.config, types[t.kind]).eval() for t in self.registry}
        self.set_decoding(self.predict)
        self._outputs = [o.name for o in self.session.get_outputs()]

    def raw(self, images: torch.Tensor, task_ids: Sequence[str]) -> dict[str, torch.Tensor]:
        feeds = onnx_graph.routing_feeds(task_ids, self.routes, self.registry.task_ids)
        feeds[onnx_graph.IMAGES] = np.ascontiguousarray(images.detach().float().cpu().numpy())
        present = list(dict.fromkeys(task_ids))
        unknown = [t for t in present if t not in self.registry]
        if unknown:
            raise KeyError(f"unknown task(s) {', '.join(map(repr, unknown))}; the model's tasks: {', '.join(self.registry.task_ids)}")
        values = self.session.run(present, feeds)
        return {t: torch.from_numpy(v) for t, v in zip(present, values)}

    def decode(self, task_id: str, raw: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self._heads[task_id].decode(raw)

    def set_decoding(self, predict: PredictConfig) -> None:
        """Decode with ``predict``'s settings."""
        self.predict = predict
        for head in self._heads.values():
            head.set_decoding(predict)


def is_onnx_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(".onnx")
